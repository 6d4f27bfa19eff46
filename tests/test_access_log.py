"""The access log: a line per request and per browser socket, through the configured console
handler (its filters and formatter, LOG_FORMAT), without secrets, share tokens or query strings."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from agents.models import Session
from devtools.tabs import HOST, ORIGIN

# Before the fixtures find the console handler: loading the ASGI app sets Django up again,
# which configures the logging again, with a new handler.
from playground.asgi import application
from playground.logging import JsonFormatter, RedactSecrets, TextFormatter, session_context
from tests.tabs import Tab, new_browser, new_session
from tests.test_configuration import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

Console = Callable[[], list[str]]


def console_handler() -> logging.Handler:
    """The root's console handler, as settings.LOGGING made it."""
    for handler in logging.getLogger().handlers:
        if any(isinstance(f, RedactSecrets) for f in handler.filters):
            return handler
    raise AssertionError("no console handler with the redaction filter")


def capture(formatter: logging.Formatter) -> Iterator[Console]:
    """What the console handler prints, with ``formatter``, at INFO and above."""
    handler = console_handler()
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    old_stream, old_formatter = handler.setStream(stream), handler.formatter
    handler.setFormatter(formatter)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        yield lambda: stream.getvalue().splitlines()
    finally:
        root.setLevel(old_level)
        handler.setFormatter(old_formatter)
        handler.setStream(old_stream)


@pytest.fixture
def text_console() -> Iterator[Console]:
    yield from capture(TextFormatter())


@pytest.fixture
def json_console() -> Iterator[Console]:
    yield from capture(JsonFormatter())


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "playground.access"]


# -- requests ------------------------------------------------------------------------------------


async def test_a_request_is_one_line_at_info_without_its_query_string(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="playground.access")
    response = await AsyncClient().get("/", {"token": "query-secret-123"})
    assert response.status_code == 200
    [record] = access_records(caplog)
    assert record.levelno == logging.INFO
    assert re.fullmatch(r"GET / 200 \d+\.\dms 127\.0\.0\.1", record.getMessage())
    fields = record.__dict__
    assert (fields["method"], fields["path"], fields["status"]) == ("GET", "/", 200)
    assert fields["client"] == "127.0.0.1"
    assert fields["duration_ms"] >= 0
    assert "query-secret-123" not in caplog.text


async def test_the_status_is_the_one_the_client_got(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="playground.access")
    client = AsyncClient(enforce_csrf_checks=True)
    assert (await client.get("/nowhere/")).status_code == 404
    assert (await client.post("/sessions/new/")).status_code == 403  # refused: no CSRF token
    messages = [r.getMessage() for r in access_records(caplog)]
    assert messages[0].startswith("GET /nowhere/ 404 ")
    assert messages[1].startswith("POST /sessions/new/ 403 ")


async def test_health_polls_are_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="playground.access")
    client = AsyncClient()
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    records = access_records(caplog)
    assert [r.getMessage().split()[:3] for r in records] == [
        ["GET", "/healthz", "200"],
        ["GET", "/readyz", "200"],
    ]
    assert {r.levelno for r in records} == {logging.DEBUG}


async def test_a_share_token_in_a_path_is_redacted_in_text(text_console: Console) -> None:
    token = secrets.token_urlsafe(32)
    response = await AsyncClient().get(f"/s/{token}/")  # an old-form link: its token is a path
    assert response.status_code in (302, 404, 429)
    lines = text_console()
    assert lines, "nothing was logged"
    assert not [line for line in lines if token in line]
    [access] = [line for line in lines if " playground.access " in line]
    assert " GET /s/[redacted]/ " in access


async def test_a_share_token_in_a_path_is_redacted_in_json_fields_too(
    json_console: Console,
) -> None:
    token = secrets.token_urlsafe(32)
    response = await AsyncClient().get(f"/s/{token}/")
    assert response.status_code in (302, 404, 429)
    lines = json_console()
    assert not [line for line in lines if token in line]
    [access] = [json.loads(line) for line in lines if '"playground.access"' in line]
    assert access["path"] == "/s/[redacted]/"  # the field, not only the message
    assert access["message"].startswith("GET /s/[redacted]/ ")


async def test_a_text_line_names_its_session(text_console: Console) -> None:
    browser = await new_browser()
    session = await new_session(browser)
    client = AsyncClient()
    client.cookies["sessionid"] = browser
    assert (await client.get(f"/sessions/{session.pk}/")).status_code == 200
    assert (await client.get("/")).status_code == 200
    [page, home] = [line for line in text_console() if " playground.access " in line]
    assert re.search(rf" INFO playground\.access GET /sessions/{session.pk}/ 200 ", page)
    assert page.endswith(f" session={session.pk}")
    assert "session=" not in home
    assert browser not in "\n".join(text_console())  # the browser's session key: never


# -- JSON ----------------------------------------------------------------------------------------


async def test_json_lines_parse_and_name_their_session(json_console: Console) -> None:
    browser = await new_browser()
    session = await new_session(browser)
    client = AsyncClient()
    client.cookies["sessionid"] = browser
    assert (await client.get(f"/sessions/{session.pk}/")).status_code == 200
    assert (await client.get("/nowhere/", {"token": "query-secret-123"})).status_code == 404
    tab = await Tab(str(session.pk), browser).open()
    await tab.until(r'id="transcript"')
    await tab.close()
    lines = [json.loads(line) for line in json_console()]  # every line is one JSON object
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
    access = [line for line in lines if line["logger"] == "playground.access"]
    page, missing_page, opened, closed = access
    assert page["session_id"] == str(session.pk)
    assert (page["method"], page["status"], page["level"]) == ("GET", 200, "INFO")
    assert "session_id" not in missing_page
    assert (opened["event"], opened["session_id"]) == ("socket_open", str(session.pk))
    assert (closed["event"], closed["code"], closed["closed_by"]) == (
        "socket_close",
        1000,
        "client",
    )
    assert closed["session_id"] == str(session.pk)
    # Django's "Not Found" line came with the request object (its repr holds the query
    # string): objects are left out, plain fields kept.
    [not_found] = [line for line in lines if line["logger"] == "django.request"]
    assert "request" not in not_found
    assert not_found["status_code"] == 404
    everything = "\n".join(json_console())
    assert "query-secret-123" not in everything
    assert browser not in everything


def test_the_text_and_json_formats_of_one_record() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "a %s\nline", ("two",), None)
    session_id = "0f0e0d0c-0000-4000-8000-000000000000"
    record.session_id = session_id
    text = TextFormatter().format(record)
    assert text.endswith(f"WARNING x a two\nline session={session_id}")
    line = JsonFormatter().format(record)
    assert "\n" not in line  # one line, always
    parsed = json.loads(line)
    assert parsed["message"] == "a two\nline"
    assert parsed["session_id"] == session_id
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == "x"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", parsed["time"])


def test_a_line_in_a_sessions_context_carries_it_unless_it_names_its_own() -> None:
    handler = console_handler()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "inside", (), None)
    own = logging.LogRecord("x", logging.INFO, __file__, 1, "named", (), None)
    own.session_id = "another"
    token = session_context.set("the-session")
    try:
        assert handler.filter(record)
        assert handler.filter(own)
    finally:
        session_context.reset(token)
    assert record.__dict__["session_id"] == "the-session"
    assert own.__dict__["session_id"] == "another"
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "outside", (), None)
    assert handler.filter(outside)
    assert "session_id" not in outside.__dict__


# -- browser sockets -----------------------------------------------------------------------------


async def test_a_socket_has_an_open_line_and_a_close_line_with_its_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="playground.access")
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.until(r'id="transcript"')
    await tab.close()
    # Someone else's session: accepted, then closed by the server with 4403.
    other = await Session.objects.acreate(browser_key="someone-else", model="sim")
    refused = await Tab(str(other.pk), browser).open()
    assert (await refused.close_output())["code"] == 4403
    await refused.close()
    lines = [(r.levelno, r.getMessage(), r.__dict__) for r in access_records(caplog)]
    path, other_path = f"/ws/sessions/{session.pk}/", f"/ws/sessions/{other.pk}/"
    assert [(level, message.split(" code=")[0]) for level, message, _ in lines] == [
        (logging.INFO, f"Socket open {path} from -"),  # the test's scope has no client
        (logging.INFO, f"Socket close {path}"),
        (logging.INFO, f"Socket open {other_path} from -"),
        (logging.INFO, f"Socket close {other_path}"),
    ]
    assert re.fullmatch(r".* code=1000 by client after \d+ ms", lines[1][1])
    assert re.fullmatch(r".* code=4403 by server after \d+ ms", lines[3][1])
    assert lines[3][2]["code"] == 4403
    assert lines[3][2]["duration_ms"] >= 0
    assert lines[1][2]["session_id"] == str(session.pk)
    assert browser not in caplog.text


async def test_a_share_viewers_socket_lines_hold_no_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The viewer's socket path has no token (it comes in the first frame); an unknown link is
    closed 4404, and neither line holds what it sent."""
    caplog.set_level(logging.INFO, logger="playground.access")
    token = secrets.token_urlsafe(32)
    viewer = WebsocketCommunicator(
        application, "/ws/share/", headers=[HOST, (b"origin", ORIGIN.encode())]
    )
    viewer.scope["client"] = ("127.0.0.1", 50000)  # as daphne gives it
    connected, _ = await viewer.connect()
    assert connected
    await viewer.send_to(text_data=json.dumps({"action": "open", "token": token, "view": True}))
    while (output := await viewer.receive_output(5))["type"] != "websocket.close":
        pass
    assert output["code"] == 4404
    await viewer.disconnect()
    messages = [r.getMessage() for r in access_records(caplog)]
    assert messages[0] == "Socket open /ws/share/ from 127.0.0.1"
    assert re.fullmatch(r"Socket close /ws/share/ code=4404 by server after \d+ ms", messages[1])
    assert token not in caplog.text


# -- LOG_FORMAT ----------------------------------------------------------------------------------

LOGGING_SCRIPT = """
import logging, os
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "playground.settings"
django.setup()
logging.getLogger("playground.test").warning("hello %s", "world", extra={"answer": 42})
"""


def run_with(**values: str) -> subprocess.CompletedProcess[str]:
    unset = ("LOG_FORMAT", "LOG_LEVEL", "DJANGO_SETTINGS_MODULE")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-c", LOGGING_SCRIPT],
        cwd=ROOT,
        env={**environment, **values},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_log_format_json_makes_every_line_a_json_object() -> None:
    result = run_with(LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    [line] = [json.loads(line) for line in result.stderr.splitlines()]
    assert (line["message"], line["level"], line["answer"]) == ("hello world", "WARNING", 42)
    assert line["logger"] == "playground.test"


def test_log_format_text_is_the_default_and_anything_else_stops_the_start() -> None:
    result = run_with()
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("WARNING playground.test hello world")
    refused = run_with(LOG_FORMAT="xml")
    assert refused.returncode != 0
    assert "LOG_FORMAT='xml' is not one of text, json" in refused.stderr


def test_the_console_handler_is_configured_as_the_settings_say() -> None:
    handler = console_handler()
    assert isinstance(handler.formatter, TextFormatter)  # LOG_FORMAT's default
