"""Bad input on the browser socket gets a clear error, changes nothing and keeps the socket."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from django.test import AsyncClient

from agents.models import Item, Step
from tests.simserver import API_KEY, SimServer
from tests.tabs import CODE_RE, Tab, new_browser, new_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]
OVERSIZE = json.dumps({"action": "send", "message": "x" * (1024 * 1024 + 1), "HEADERS": {}})


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param("this is not json", "invalid_json", id="not-json"),
        pytest.param("[1, 2, 3]", "invalid_frame", id="not-an-object"),
        pytest.param('{"action": "delete_everything"}', "unknown_action", id="unknown-action"),
        pytest.param('{"message": "no action"}', "unknown_action", id="missing-action"),
        pytest.param('{"action": "send", "message": "   "}', "empty_message", id="blank-message"),
        pytest.param('{"action": "send", "message": 42}', "empty_message", id="message-not-text"),
        pytest.param(OVERSIZE, "frame_too_large", id="over-1-MiB"),
        pytest.param(b"\x00\x01binary", "binary_frame", id="binary"),
    ],
)
async def test_a_bad_frame_gets_an_error_fragment_and_changes_nothing(
    sim_server: SimServer, use_upstream: UseUpstream, frame: str | bytes, code: str
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.send_frame(frame)
    reply = await tab.until(r'id="notice"')
    match = CODE_RE.search(reply)
    assert match is not None
    assert match.group(1) == code
    assert await Item.objects.filter(session=session).acount() == 0
    # The socket is still open and usable.
    await tab.turn("/chat 10 still here")
    await tab.close()
    assert await Item.objects.filter(session=session).acount() == 2


async def test_stop_with_nothing_running_says_so() -> None:
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.stop()
    reply = await tab.until(r'id="notice"')
    assert 'data-code="idle"' in reply
    await tab.close()


@pytest.mark.parametrize("origin", ["http://evil.example", None], ids=["other-site", "missing"])
async def test_a_cross_origin_socket_is_accepted_then_closed_4403(origin: str | None) -> None:
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser, origin=origin).open()
    closed = await tab.close_output()
    assert closed["code"] == 4403
    assert "Cross-origin" in closed["reason"]


async def test_a_socket_for_another_browsers_session_is_closed_4403() -> None:
    owner, intruder = await new_browser(), await new_browser()
    session = await new_session(owner)
    tab = await Tab(str(session.pk), intruder).open()
    closed = await tab.close_output()
    assert closed["code"] == 4403
    assert "not yours" in closed["reason"]


async def test_a_socket_for_an_unknown_session_is_closed_4403() -> None:
    browser = await new_browser()
    tab = await Tab("00000000-0000-0000-0000-000000000000", browser).open()
    assert (await tab.close_output())["code"] == 4403


async def test_a_logged_in_users_session_refuses_an_anonymous_socket(
    django_user_model: type,
) -> None:
    from agents.models import Session

    user = await django_user_model.objects.acreate_user("ada", password="pw")  # type: ignore[attr-defined]
    session = await Session.objects.acreate(owner=user, model="sim")
    tab = await Tab(str(session.pk), await new_browser()).open()
    assert (await tab.close_output())["code"] == 4403


async def test_the_api_key_reaches_no_page_frame_or_log_line(
    start_sim: Callable[..., SimServer],
    use_upstream: UseUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-proj-RECOGNISABLE-5ecret-0123456789abcdef"
    server = start_sim("--api-key", secret, "--api-key", API_KEY)
    server.api_key = secret
    use_upstream(server)
    caplog.set_level(logging.DEBUG)
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.turn("/chat 20 is my key safe")
    await tab.close()
    steps = [s async for s in Step.objects.filter(session=session)]
    assert [s.status for s in steps] == ["completed", "completed"]  # the key was used upstream

    client = AsyncClient()
    client.cookies["sessionid"] = browser
    pages = [(await client.get(path)).content for path in ("/", f"/sessions/{session.pk}/")]
    assert b"is my key safe" in pages[1]
    assert all(secret.encode() not in page for page in pages)
    assert all(secret not in frame for frame in tab.frames)
    assert caplog.records, "debug logging was captured"
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert secret not in caplog.text


def test_the_log_filter_redacts_bearer_tokens_and_the_configured_key(settings: object) -> None:
    from playground.logging import RedactSecrets

    settings.OPENAI_API_KEY = "sk-configured-key-123456"  # type: ignore[attr-defined]
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "%s and %s",
        ("Bearer abc.def", "sk-configured-key-123456"),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == "Bearer [redacted] and [redacted]"
