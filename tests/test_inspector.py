"""The staff inspector: who may see it, what it shows live, and its audited actions."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import AsyncClient

from agents.live.registry import RUNNERS
from agents.models import Item, Step, Tool
from agents.upstream.clients import shared_client
from devtools.tabs import HOST, ORIGIN
from playground import share
from playground.asgi import application
from playground.protocol import CLOSE_RESTART
from tests.simserver import SimServer, free_port
from tests.tabs import Tab, new_browser, new_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]
UPSTREAM_PAGE = "/admin/inspector/upstream/"
FAKE_KEY = "sk-fake-upstream-page-key-7f3c9a1e5b"  # distinctive: it must appear nowhere
CALL_RE = re.compile(r'id="call-([^"]+)"')


async def logged_in(staff: bool) -> AsyncClient:
    user = await User.objects.acreate_user(
        f"{'staff' if staff else 'someone'}-{await User.objects.acount()}", is_staff=staff
    )
    client = AsyncClient()
    await client.aforce_login(user)
    return client


class Inspector:
    """The inspector's socket, as its page opens it."""

    def __init__(self, client: AsyncClient, path: str = "/ws/inspector/") -> None:
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        headers = [HOST, (b"cookie", cookie.encode()), (b"origin", ORIGIN.encode())]
        self.communicator = WebsocketCommunicator(application, path, headers=headers)
        self.frames: list[str] = []

    async def open(self) -> Inspector:
        connected, _ = await self.communicator.connect(timeout=10)
        assert connected
        return self

    async def until(self, pattern: str, wait: float = 20) -> str:
        while True:
            output = await self.communicator.receive_output(wait)
            if output["type"] == "websocket.close":
                raise ConnectionError(f"closed with {output.get('code')}")
            frame = str(output["text"])
            self.frames.append(frame)
            if re.search(pattern, frame, re.DOTALL):
                return frame

    async def until_row(self, session_id: str, *parts: str, wait: float = 20) -> str:
        """Frames until the session's row shows every one of ``parts`` within ``wait`` seconds
        in all (the list is resent every second, so a row that never matches must end)."""
        row, seen = "", []
        try:
            async with asyncio.timeout(wait):
                while True:
                    row = row_of(await self.until(rf'id="row-{session_id}"', wait), session_id)
                    seen.append(row)
                    if all(part in row for part in parts):
                        return row
        except TimeoutError:
            raise AssertionError(f"the row never showed {parts}; seen: {seen}") from None

    async def close_code(self) -> int:
        output = await self.communicator.receive_output(5)
        assert output["type"] == "websocket.close", output
        return int(output["code"])

    async def close(self) -> None:
        await self.communicator.disconnect()


def row_of(frame: str, session_id: str) -> str:
    match = re.search(rf'<tr id="row-{session_id}".*?</tr>', frame, re.DOTALL)
    return match.group(0) if match else ""


async def test_a_user_without_staff_rights_gets_no_inspector_page_and_no_socket() -> None:
    session = await new_session(await new_browser())
    for client in (AsyncClient(), await logged_in(staff=False)):
        for path in ("/admin/inspector/", f"/admin/inspector/{session.pk}/", UPSTREAM_PAGE):
            response = await client.get(path)
            assert response.status_code == 302
            assert response["Location"].startswith("/admin/login/")
        response = await client.post(f"/admin/inspector/{session.pk}/action/", {"action": "drop"})
        assert response.status_code in (302, 403)
    outsider = await logged_in(staff=False)
    for path in ("/ws/inspector/", f"/ws/inspector/{session.pk}/"):
        socket = await Inspector(outsider, path).open()
        assert await socket.close_code() == 4403
    assert not await LogEntry.objects.aexists()


async def test_the_list_follows_a_session_live_while_a_run_streams(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    use_upstream(start_sim("--cost", "tokens_per_s=400"))
    staff = await logged_in(staff=True)
    page = await staff.get("/admin/inspector/")
    assert page.status_code == 200
    assert 'ws-connect="/ws/inspector/"' in page.content.decode()
    browser = await new_browser()
    session = await new_session(browser, title="Tide tables")
    sid = str(session.pk)
    inspector = await Inspector(staff).open()
    tab = await Tab(sid, browser).open()
    # Long enough (~5 s) for several list updates after the run opened its upstream socket:
    # a prewarm waits behind connects (agents/live/admission.py), so the run may open it itself.
    await tab.send("/chat 2000 a reply the inspector watches")
    # Live, without a reload: the run, its socket, its upstream connection, its process.
    row = await inspector.until_row(
        sid, 'data-state="running"', '<td class="sockets">1</td>', "connected · websocket"
    )
    assert "Tide tables" in row
    assert '<td class="steps">0</td>' in row
    # The run ends: one model step, the socket stays connected.
    await inspector.until_row(sid, 'data-state="connected"', '<td class="steps">1</td>', wait=30)
    await tab.close()
    await inspector.until_row(sid, 'data-state="idle grace"', '<td class="sockets">0</td>')
    # Filters: by state, by owner, by title.
    await inspector.communicator.send_json_to({"state": "running", "owner": "", "q": ""})
    assert sid not in await inspector.until(r'id="sessions"')
    await inspector.communicator.send_json_to({"state": "", "owner": "anonymous", "q": "tide"})
    assert sid in await inspector.until(r'id="sessions"')
    await inspector.communicator.send_json_to({"state": "", "owner": "nobody", "q": ""})
    assert sid not in await inspector.until(r'id="sessions"')
    await inspector.close()


async def test_dropping_the_upstream_mid_run_recovers_and_shows_the_new_connection_and_the_miss(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    schema = {"type": "object", "properties": {"query": {"type": "string"}}}
    await Tool.objects.acreate(
        session=session, name="lookup", parameters=schema, mode=Tool.Mode.MANUAL
    )
    sid = str(session.pk)
    tab = await Tab(sid, browser).open()
    await tab.send("/lookup tide tables for Brest")
    waiting = await tab.until(r'class="waiting"')
    call_id = CALL_RE.search(waiting).group(1)  # type: ignore[union-attr]
    staff = await logged_in(staff=True)
    detail = await Inspector(staff, f"/ws/inspector/{sid}/").open()
    await detail.until(r'class="connections">1<')
    # Mid-run (the run waits for a person), staff drops the upstream socket.
    response = await staff.post(f"/admin/inspector/{sid}/action/", {"action": "drop"})
    assert response.status_code == 302
    await tab.until("dropped by staff")
    answer = {"action": "tool_output", "call_id": call_id, "output": "High tide 06:05."}
    await tab.send_frame(json.dumps(answer))
    await tab.until(r'data-busy="false"')
    # The run went on: its next step on a new connection, with the full context.
    items = [i async for i in Item.objects.filter(session=session).order_by("position")]
    assert [i.kind for i in items] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert all(i.status == "completed" for i in items)
    steps = [s async for s in Step.objects.filter(session=session).order_by("id")]
    assert [(s.mode, s.socket) for s in steps][-1] == ("create", "fresh")
    frame = await detail.until(r'class="connections">2<')
    assert "miss: full context: a new connection" in frame
    assert "response.output_text.delta" in frame  # the frames of the new connection
    entry = await LogEntry.objects.select_related("user").aget()
    assert entry.user.is_staff
    assert entry.object_id == sid
    assert "Dropped the upstream socket (done)" in entry.change_message
    page = (await staff.get(f"/admin/inspector/{sid}/")).content.decode()
    assert "Dropped the upstream socket (done)" in page  # the audit log, on the page
    await detail.close()
    await tab.close()


async def test_rotate_end_and_close_are_audited_and_done(
    sim_server: SimServer, use_upstream: UseUpstream, settings: Any
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    sid = str(session.pk)
    tab = await Tab(sid, browser).open()
    await tab.turn("/chat 20 a first reply")
    staff = await logged_in(staff=True)
    before = len([c for c in sim_server.connections() if c["transport"] == "websocket"])
    action = f"/admin/inspector/{sid}/action/"
    # Rotate while idle: a new socket, warmed, replaces the old one; the next step is a delta.
    await staff.post(action, {"action": "rotate"})
    runner = RUNNERS[sid]
    for _ in range(100):
        if runner.websocket.sockets_opened == 2 and runner.prewarm.task is None:
            break
        await asyncio.sleep(0.05)
    assert runner.websocket.sockets_opened == 2
    await tab.turn("/chat 20 after the rotation")
    last = await Step.objects.filter(session=session).alast()
    assert last is not None
    assert last.mode == "delta"
    assert last.socket == "rotated"  # it said "reused": the warm-up had used the new socket
    after = [c for c in sim_server.connections() if c["transport"] == "websocket"]
    assert len(after) == before + 1
    # The new connection was warmed with the whole context, then the step was a delta on it.
    modes = [r["mode"] for r in sim_server.connection(str(after[-1]["id"]))["log"]]
    assert modes == ["warm", "delta"]
    # End the run when none runs: said, and audited with what happened.
    await staff.post(action, {"action": "stop"})
    # Close every browser socket: the tab is closed with "restart", so the page reconnects (the
    # code on the wire, through daphne: tests/test_close_codes.py).
    await staff.post(action, {"action": "close_sockets"})
    closed = await tab.close_output()
    assert closed["code"] == CLOSE_RESTART
    # Revoke the share links: the active one goes; with none left, it says so.
    link, _ = await share.create_link(session, label="", include_instructions=False, expiry="1h")
    await staff.post(action, {"action": "revoke_links"})
    await link.arefresh_from_db()
    assert link.revoked is not None
    await staff.post(action, {"action": "revoke_links"})
    messages = [e.change_message async for e in LogEntry.objects.order_by("id")]
    assert messages == [
        "Inspector: Rotated the upstream socket (done).",
        "Inspector: Ended the run (Nothing is running.).",
        "Inspector: Closed all browser sockets (done).",
        "Inspector: Revoked the share links (done).",
        "Inspector: Revoked the share links (there was no active link).",
    ]
    page = (await staff.get(f"/admin/inspector/{sid}/")).content.decode()
    assert settings.OPENAI_API_KEY not in page  # frames and state never show the key
    assert "response.create" in page
    # The raw export: the session's documented JSON, and its live state.
    exported = (await staff.get(f"/admin/inspector/{sid}/export.json")).json()
    assert exported["format"] == "agent-playground.session"
    assert len(exported["items"]) == 4
    assert exported["live"]["upstream"] in ("connected", "idle grace")
    assert settings.OPENAI_API_KEY not in json.dumps(exported)


def probe_line(page: str) -> str:
    match = re.search(r'<dd id="upstream-probe" data-answering="(\w+)">(.*?)</dd>', page, re.DOTALL)
    assert match, page
    return f"{match[1]}: {match[2]}"


async def test_the_upstream_page_names_an_unreachable_upstreams_failure_and_never_the_key(
    settings: Any,
) -> None:
    settings.UPSTREAM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings.OPENAI_API_KEY = FAKE_KEY
    settings.UPSTREAM_IS_EMBEDDED = False
    settings.UPSTREAM_MODEL = "gpt-5-mini"
    staff = await logged_in(staff=True)
    index = (await staff.get("/admin/")).content.decode()
    assert f'href="{UPSTREAM_PAGE}"' in index  # linked from the admin's home page
    response = await staff.get(UPSTREAM_PAGE)
    assert response.status_code == 200
    page = response.content.decode()
    assert FAKE_KEY not in page
    assert FAKE_KEY[:12] not in page
    assert FAKE_KEY[-8:] not in page
    assert '<dd id="upstream-key">a key is set</dd>' in page
    assert "a gateway or server of your own" in page
    assert settings.UPSTREAM_BASE_URL in page
    assert "gpt-5-mini" in page
    line = probe_line(page)
    assert line.startswith("false: not answering: cannot connect (ConnectError:"), line
    assert "UPSTREAM_BASE_URL" in page
    assert "OPENAI_API_KEY" in page


async def test_the_upstream_page_shows_an_answering_upstream_with_its_latency(
    sim_server: SimServer, use_upstream: UseUpstream, settings: Any
) -> None:
    use_upstream(sim_server)
    staff = await logged_in(staff=True)
    page = (await staff.get(UPSTREAM_PAGE)).content.decode()
    assert sim_server.api_key not in page
    assert re.fullmatch(r"true: answering: <code>GET /v1/models</code> in \d+ ms", probe_line(page))
    assert "listed by the upstream" in page  # "sim" is in the simulator's list
    assert '<dd id="upstream-key">a key is set</dd>' in page
    # The probe's client keeps its connection for the next probe: closed with this test's loop,
    # or a later test on this worker meets its ResourceWarning.
    await shared_client(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY).close()
