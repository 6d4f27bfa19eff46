"""Text that is not Unicode scalar text (lone surrogates) and JSON nested too deep.

Both once broke a session for good: a lone surrogate was saved, then the page answered 500 and
every new socket closed 1011; a 40 KB frame of brackets closed the socket with 1011 (a
RecursionError in ``json.loads``). Each is refused at the entry with a clear error, nothing is
saved, the socket stays open; and whatever is already stored still renders.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from django.db import connection
from django.test import AsyncClient
from django.test.client import BOUNDARY, encode_multipart

from agents.models import Item, Session, Step, Tool
from agents.upstream.delta import Chain
from agents.upstream.turn import UpstreamTurn
from playground import share
from tests.simserver import SimServer
from tests.tabs import Tab, new_browser, new_session
from tests.test_share import Viewer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]
CALL_RE = re.compile(r'id="call-([^"]+)"')
LONE = "/chat 10 lone \ud800 surrogate"
DEEP = "[" * 20_000 + "]" * 20_000  # 40 KB


def client_of(browser: str) -> AsyncClient:
    client = AsyncClient()
    client.cookies["sessionid"] = browser
    return client


async def refused(tab: Tab, code: str) -> str:
    """The notice that refuses what the tab sent, with its code (other notices are skipped)."""
    return await tab.until(rf'id="notice"[^>]*data-code="{code}"')


async def assert_usable(session: Session, browser: str) -> None:
    """The page renders and a new socket gets its snapshot (no 500, no 1011)."""
    page = await client_of(browser).get(f"/sessions/{session.pk}/")
    assert page.status_code == 200
    tab = await Tab(str(session.pk), browser).open()
    assert 'id="transcript"' in await tab.until(r'id="transcript"')
    await tab.close()


# -- lone surrogates -------------------------------------------------------------------------------


async def test_a_message_with_a_lone_surrogate_is_refused_and_nothing_is_saved(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.recv()  # the snapshot
    frame = json.dumps({"action": "send", "message": LONE, "HEADERS": {}})
    assert "\\ud800" in frame  # the JSON escape a browser's JSON.stringify also sends
    await tab.send_frame(frame)
    await refused(tab, "invalid_text")
    assert not await Item.objects.filter(session=session).aexists()
    # The socket stays open and works.
    await tab.turn("/chat 3 after the refusal")
    await tab.close()
    assert await Item.objects.filter(session=session).acount() == 2
    await assert_usable(session, browser)


async def test_a_manual_tool_output_with_a_lone_surrogate_is_refused(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    schema = {"type": "object", "properties": {"query": {"type": "string"}}}
    await Tool.objects.acreate(
        session=session, name="lookup", parameters=schema, mode=Tool.Mode.MANUAL
    )
    tab = await Tab(str(session.pk), browser).open()
    await tab.send("/lookup harbour depths")
    call_id = CALL_RE.search(await tab.until(r'class="waiting"')).group(1)  # type: ignore[union-attr]
    bad = {"action": "tool_output", "call_id": call_id, "output": "depth \udc00 m"}
    await tab.send_frame(json.dumps(bad))
    await refused(tab, "invalid_text")
    outputs = Item.objects.filter(session=session, data__type="function_call_output")
    assert not await outputs.aexists()
    good = {"action": "tool_output", "call_id": call_id, "output": "12 m"}
    await tab.send_frame(json.dumps(good))
    await tab.until(r'data-busy="false"')
    await tab.close()
    assert [i.data["output"] async for i in outputs] == ["12 m"]
    await assert_usable(session, browser)


async def test_settings_with_a_lone_surrogate_are_refused_and_change_nothing() -> None:
    browser = await new_browser()
    session = await new_session(browser, title="Before")
    # A form may name its charset; UTF-7's decoder yields lone surrogates ("+2AA-" is U+D800).
    fields = {"title": "a+2AA-b", "model": "sim", "transport": "websocket", "max_steps": "5"}
    response = await client_of(browser).post(
        f"/sessions/{session.pk}/settings/",
        encode_multipart(BOUNDARY, fields),
        # Quoted, so that the test client sends the bytes as they are (it re-encodes otherwise).
        content_type=f'multipart/form-data; boundary={BOUNDARY}; charset="utf-7"',
    )
    assert response.status_code == 422
    assert "not valid Unicode" in response.content.decode()
    await session.arefresh_from_db()
    assert session.title == "Before"
    await assert_usable(session, browser)


async def test_stored_items_with_lone_surrogates_still_render() -> None:
    """What an older version let in (SQLite keeps a JSON field's ``\\ud800`` escape): the page
    and the socket show it as U+FFFD, never a 500 or a 1011."""
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL refuses to store a lone surrogate: this state cannot arise there")
    browser = await new_browser()
    session = await new_session(browser)
    step = await Step.objects.acreate(session=session, mode="create", socket="fresh", status="x")
    user = {"type": "message", "role": "user", "content": "u \ud800"}
    reply = {"type": "message", "role": "assistant", "content": [{"text": "**a** \udc00"}]}
    call = {"type": "function_call", "name": "t", "arguments": "{\ud800}", "call_id": "c\ud800"}
    output = {"type": "function_call_output", "call_id": "c\ud800", "output": "o \udfff"}
    for position, data in enumerate((user, reply, call, output)):
        parent = position - 1 if position else None
        await Item.objects.acreate(
            session=session, position=position, parent=parent, data=data, step=step
        )
    page = await client_of(browser).get(f"/sessions/{session.pk}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "u \ufffd" in text
    assert "<strong>a</strong> \ufffd" in text
    assert "o \ufffd" in text
    tab = await Tab(str(session.pk), browser).open()
    snapshot = await tab.until(r'id="transcript"')
    assert "u \ufffd" in snapshot
    assert "o \ufffd" in snapshot
    await tab.close()


async def test_upstream_output_with_lone_surrogates_is_replaced_not_crashed() -> None:
    class Holder:
        chains: dict[str | None, Chain] = {}
        requests = 0
        rotated_in = False

    class Turn(UpstreamTurn):
        async def frames(self) -> AsyncIterator[bytes | str]:
            yield '{"type": "response.output_text.delta", "delta": "a\\ud800b"}'
            yield (
                b'{"type": "response.output_item.done", "item": {"type": "message",'
                b' "content": [{"type": "output_text", "text": "x\\uDC00"}]}}'
            )
            yield '{"type": "response.output_text.delta", "delta": "pair \\ud83d\\ude00"}'
            yield "[" * 5000 + "]" * 5000  # garbage: skipped, as any unparsable frame
            yield '{"type": "response.failed", "response": {"id": "r", "error": {}}}'

    turn = Turn(Holder(), {}, [])
    events: list[dict[str, Any]] = [event async for event in turn]
    assert events[0]["delta"] == "a\ufffdb"
    assert events[1]["item"]["content"][0]["text"] == "x\ufffd"
    assert turn.output[0]["content"][0]["text"] == "x\ufffd"
    assert events[2]["delta"] == "pair \U0001f600"
    assert events[-1]["type"] == "response.failed"


# -- deep JSON -------------------------------------------------------------------------------------


async def test_a_deeply_nested_frame_on_the_owners_socket_is_refused_and_it_stays_open(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.recv()
    await tab.send_frame(DEEP)
    await refused(tab, "too_deep")
    deep_message = {"action": "send", "message": "hi", "x": json.loads("[" * 200 + "]" * 200)}
    await tab.send_frame(json.dumps(deep_message))
    await refused(tab, "too_deep")
    assert not await Item.objects.filter(session=session).aexists()
    await tab.turn("/chat 3 still here")
    await tab.close()


async def test_a_deeply_nested_frame_on_a_viewers_socket_is_refused_and_it_stays_open(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    _, token = await share.create_link(session, label="", include_instructions=False, expiry="1d")
    viewer = await Viewer(token, "").open()
    await viewer.send_frame(DEEP)
    await refused(viewer, "read_only")
    # Still open: another one is refused silently (one notice a while), with no close (1011).
    await viewer.send_frame(DEEP)
    assert viewer.communicator is not None
    assert await viewer.communicator.receive_nothing(0.5)
    await viewer.close()
    assert not await Item.objects.filter(session=session).aexists()


async def test_a_deeply_nested_frame_on_the_inspector_socket_is_ignored() -> None:
    from tests.test_inspector import Inspector, logged_in

    inspector = await Inspector(await logged_in(staff=True)).open()
    await inspector.communicator.send_to(text_data=DEEP)
    await inspector.communicator.send_to(text_data=json.dumps({"q": ""}))
    await asyncio.sleep(0.5)
    # Not closed (1011): the frame was not a filter form, so it changed nothing.
    assert not inspector.communicator.future.done()
    while not await inspector.communicator.receive_nothing(0.2):
        output = await inspector.communicator.receive_output(1)
        assert output["type"] == "websocket.send", output
    await inspector.close()
