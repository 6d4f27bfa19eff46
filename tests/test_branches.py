"""Branches end to end (socket → runner → simulator): edit, regenerate and switch make a tree;
each fork takes the cheapest route the upstream offers, and the simulator's context oracle
equals the branch's transcript after every step."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test.client import BOUNDARY, encode_multipart

from agents.live.registry import RUNNERS
from agents.models import Compare, Item, Lap, Session, Step, Tool
from agents.run import tree
from agents.upstream.delta import Chain
from agents.upstream.websocket import UpstreamSession
from playground.comparing import create_race
from playground.inspector.queries import detail
from simulator import context_hash
from tests.simserver import SimServer
from tests.tabs import Tab, new_browser, new_session
from tests.test_hostile_text import client_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]


async def branch_items(session: Session, head: int | None = None) -> list[Item]:
    """The session's current branch, as the page shows it (or the branch through ``head``)."""
    await session.arefresh_from_db()
    links = [link async for link in Item.objects.filter(session=session).values_list(
        "position", "parent")]  # fmt: skip
    path = tree.branch(links, session.head if head is None else head).path
    rows = Item.objects.filter(session=session, position__in=path).order_by("position")
    return [item async for item in rows]


async def last_step(session: Session) -> Step:
    step = await Step.objects.filter(session=session).exclude(mode="warm").alast()
    assert step is not None
    return step


async def assert_oracle_matches(
    server: SimServer, session: Session, step: Step, head: int | None = None
) -> None:
    """What the upstream rebuilt for the step is the branch's context before its output."""
    items = [item for item in await branch_items(session, head) if item.in_context]
    outputs = [index for index, item in enumerate(items) if item.step_id == step.pk]
    produced = [i for i in outputs if items[i].kind != "function_call_output"]
    context = [item.data for item in items[: produced[0]]]
    assert server.oracle(step.response_id)["context_hash"] == context_hash(context)


async def command(tab: Tab, **frame: Any) -> None:
    """Send a command and wait for what it does: a run's end, or a branch switch's redraw."""
    await tab.send_frame(json.dumps(frame))
    if frame["action"] == "branch":  # the redraw that shows the chosen item
        await tab.until(rf'(?s)id="transcript" hx-swap-oob="true".*id="item-{frame["target"]}"')
    else:
        await tab.until_idle()


async def steps_after(session: Session, seen: int) -> list[Step]:
    rows = Step.objects.filter(session=session, pk__gt=seen).exclude(mode="warm").order_by("id")
    return [step async for step in rows]


async def test_every_fork_is_a_cache_hit_and_each_step_matches_the_oracle(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    """Each run has a lane of its own, so the response before it stays cached as the latest of
    the lane before: a regenerate, an edit, a switch back and on are all forks from a cached
    response (route "lane"), sending only the new items."""
    server = use_upstream(start_sim("--seed", "5"))
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.turn("/chat 8 first question")
    first = await last_step(session)
    await tab.turn("/chat 8 second question")
    second = await last_step(session)
    line_a = [item.position for item in await branch_items(session)]
    assert line_a == [0, 1, 2, 3]

    # Regenerate the second reply: a sibling of it, forked from the first reply's response.
    seen = len(tab.frames)
    await command(tab, action="regenerate", target=3)
    step = await last_step(session)
    assert (step.route, step.mode, step.previous_response_id) == (
        "lane", "delta", first.response_id
    )  # fmt: skip
    assert step.bytes_sent < second.bytes_sent + 400  # the new items only, not the context
    await assert_oracle_matches(server, session, step)
    regenerated = step
    assert [item.position for item in await branch_items(session)] == [0, 1, 2, 4]
    assert 'id="transcript" hx-swap-oob="true"' in "".join(tab.frames[seen:])  # redrawn

    # Back to the first line and on from it: its last response is still cached.
    await command(tab, action="branch", target=3)
    assert [i.position for i in await branch_items(session)] == line_a
    await tab.turn("/chat 6 third on the first line")
    step = await last_step(session)
    assert (step.route, step.previous_response_id) == ("lane", second.response_id)
    await assert_oracle_matches(server, session, step)

    # Over to the regenerated line and on from it.
    await command(tab, action="branch", target=4)
    await tab.turn("/chat 6 third on the second line")
    step = await last_step(session)
    assert step.route == "lane"
    # The simulator answers one context with one text: the regenerated reply equals the first,
    # so either cached response is this branch's parent (the oracle below is the proof).
    assert step.previous_response_id in (regenerated.response_id, second.response_id)
    await assert_oracle_matches(server, session, step)

    # Edit the first message: a second root, forked from the warm-up (instructions, no items).
    await command(tab, action="edit", target=0, message="/chat 6 first question, edited")
    step = await last_step(session)
    assert step.route == "lane"
    await assert_oracle_matches(server, session, step)
    items = await branch_items(session)
    assert items[0].parent is None
    assert items[0].text == "/chat 6 first question, edited"
    assert len(items) == 2

    # On a new socket (the old one dropped) nothing is cached: the full context, once.
    RUNNERS[str(session.pk)].websocket.discard()
    await command(tab, action="regenerate", target=items[1].position)
    step = await last_step(session)
    assert (step.route, step.mode) == ("full", "create")
    await assert_oracle_matches(server, session, step)
    await tab.close()

    requests = [r for c in server.connections() for r in server.connection(c["id"])["log"]]
    assert {r["cache"] for r in requests if r["mode"] == "delta"} == {"hit"}  # never a miss

    # The inspector: the context is the branch shown; each fork follows an earlier response.
    found = await detail(str(session.pk))
    assert found is not None
    shown = [item for item in await branch_items(session) if item.in_context]
    assert found.context_items == len(shown) < found.items
    forks = [link for link in found.chain if link.step.route == "lane"]
    assert forks
    assert [(link.follows, link.miss) for link in forks] == [(True, "")] * len(forks)
    full = [link for link in found.chain if link.step.route == "full" and link.step.mode != "warm"]
    assert [link.miss.startswith("full context: a new connection") for link in full] == [True]


async def test_a_regenerate_chains_from_a_stored_parent_by_id(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    server = use_upstream(start_sim("--seed", "6"))
    browser = await new_browser()
    session = await new_session(browser, store=True)
    tab = await Tab(str(session.pk), browser).open()
    await tab.turn("/chat 8 first question")
    parent = await last_step(session)
    await tab.turn("/chat 8 second question")
    # A new socket caches nothing: the parent is found by id in the upstream's store.
    RUNNERS[str(session.pk)].websocket.discard()
    await command(tab, action="regenerate", target=3)
    await tab.close()
    step = await last_step(session)
    assert (step.route, step.previous_response_id, step.stored) == (
        "stored", parent.response_id, True
    )  # fmt: skip
    await assert_oracle_matches(server, session, step)
    request = server.last_connection()["log"][-1]
    assert request["cache"] == "hydrated"  # found in the upstream's store, not its socket cache


async def test_a_fork_from_another_lane_s_latest_response_is_a_cache_hit(
    sim_server: SimServer,
) -> None:
    """The lane route at the transport: a new lane's first request names the default lane's
    latest response, sends only the new items, and the upstream finds it in its cache."""
    upstream = UpstreamSession(sim_server.base_url + "/v1", "sk-test")
    fields = {"model": "sim", "store": False}
    first = [user_message("/chat 5 hello")]
    try:
        async with upstream.turn(fields, first) as turn:
            async for _ in turn:
                pass
        parent = turn.response_id
        assert upstream.socket is not None
        chain: Chain = upstream.socket.chains[None]
        context = [*first, *turn.output, user_message("/chat 5 and on a new lane")]
        async with upstream.turn(fields, context, lane="b7") as fork:
            async for _ in fork:
                pass
    finally:
        await upstream.close()
    assert len(chain.context) == 2
    # The socket names its lanes itself (l0, l1, ...: at most 32 per connection).
    assert (fork.metrics.route, fork.metrics.lane, fork.metrics.previous_response_id) == (
        "lane", "l0", parent
    )  # fmt: skip
    request = sim_server.last_connection()["log"][-1]
    assert (request["stream_id"], request["cache"]) == ("l0", "hit")
    assert sim_server.oracle(fork.response_id)["context_hash"] == context_hash(context)


def user_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def test_a_fork_of_a_message_not_on_the_branch_is_refused_and_changes_nothing(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.turn("/chat 5 hello")
    await command(tab, action="edit", target=0, message="/chat 5 hello again")
    before = [i async for i in Item.objects.filter(session=session).values_list("position")]
    # Position 0 is on the other branch now; 99 does not exist; -1 and "x" are not positions.
    await tab.send_frame(json.dumps({"action": "regenerate", "target": 1}))
    assert "not on the branch shown" in await tab.until("not on the branch shown")
    await tab.send_frame(json.dumps({"action": "branch", "target": 99}))
    assert "That branch is gone" in await tab.until("branch is gone")
    for target in (-1, "x", True, None, "1" * 12):
        await tab.send_frame(json.dumps({"action": "edit", "target": target, "message": "m"}))
        await tab.until("target")
    after = [i async for i in Item.objects.filter(session=session).values_list("position")]
    assert after == before
    await tab.close()


async def test_a_fork_is_a_new_session_up_to_the_reply_linked_both_ways_and_chains_by_id(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    server = use_upstream(start_sim("--seed", "7"))
    browser = await new_browser()
    source = await new_session(browser, store=True, instructions="Be brief.")
    await Tool.objects.acreate(session=source, name="lookup", mock_output="{{q}}")
    tab = await Tab(str(source.pk), browser).open()
    await tab.turn("/chat 8 first question")
    parent = await last_step(source)
    await tab.turn("/chat 8 second question")
    await command(tab, action="regenerate", target=3)  # 3 is now off the branch shown
    await tab.close()
    client = client_of(browser)

    for target, status in (("x", 422), ("", 422), ("1" * 12, 422), ("3", 409), ("99", 409)):
        answer = await client.post(f"/sessions/{source.pk}/fork/", {"target": target})
        assert answer.status_code == status, target
    stranger = client_of(await new_browser())
    assert (await stranger.post(f"/sessions/{source.pk}/fork/", {"target": "1"})).status_code == 404
    assert await Session.objects.acount() == 1  # nothing was created by any of them

    answer = await client.post(f"/sessions/{source.pk}/fork/", {"target": "1"})
    assert answer.status_code == 204
    fork = await Session.objects.select_related("forked_from").aget(forked_from=source)
    assert answer["HX-Redirect"] == f"/sessions/{fork.pk}/"
    await source.arefresh_from_db()
    assert fork.title == f"Fork of {source.title}"
    assert (fork.instructions, fork.store, fork.model) == ("Be brief.", True, source.model)
    assert [t.name async for t in Tool.objects.filter(session=fork)] == ["lookup"]
    items = [i async for i in Item.objects.filter(session=fork).order_by("position")]
    assert [(i.position, i.parent, i.role) for i in items] == [
        (0, None, "user"),
        (1, 0, "assistant"),
    ]
    assert "Forked from" in (await client.get(f"/sessions/{fork.pk}/")).content.decode()
    assert (
        f'href="/sessions/{fork.pk}/"'
        in (await client.get(f"/sessions/{source.pk}/")).content.decode()
    )

    # The fork's socket is warmed from the source's stored response by id, not with the whole
    # context; its first step then forks from the warm-up, cached.
    tab = await Tab(str(fork.pk), browser).open()
    await tab.turn("/chat 6 on from the fork")
    await tab.close()
    warm = await Step.objects.filter(session=fork, mode="warm").alast()
    assert warm is not None
    assert (warm.route, warm.previous_response_id) == ("stored", parent.response_id)
    assert server.last_connection()["log"][0]["cache"] == "hydrated"
    step = await last_step(fork)
    assert (step.route, step.previous_response_id) == ("lane", warm.response_id)
    await assert_oracle_matches(server, fork, step)


async def test_a_compare_runs_its_columns_at_once_each_a_branch_with_its_own_transport(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    server = use_upstream(start_sim("--seed", "8"))
    browser = await new_browser()
    session = await new_session(browser)
    await Tool.objects.acreate(session=session, name="search_notes", mode="mock", mock_output="n")
    tab = await Tab(str(session.pk), browser).open()
    await tab.turn("/chat 5 some context first")
    compare = await sync_to_async(create_race)(
        session, [t async for t in Tool.objects.filter(session=session)], 1
    )
    await command(tab, action="compare", target=compare.pk, rounds="1")
    await tab.close()

    laps = [
        lap async for lap in Lap.objects.filter(column__compare=compare).order_by("column__index")
    ]
    assert [lap.status for lap in laps] == ["completed"] * 3
    items = {i.position: i async for i in Item.objects.filter(session=session)}
    for lap, transport in zip(laps, ("websocket", "http", "http"), strict=True):
        assert items[lap.message].parent == 1  # each column follows the conversation shown
        steps = [s async for s in Step.objects.filter(session=session, turn_position=lap.message)]
        assert len(steps) >= 3  # the research task calls tools over several steps
        assert {s.socket == "http" for s in steps} == {transport == "http"}
        for step in steps:
            await assert_oracle_matches(server, session, step, head=lap.message)
    ws, http_off, http_on = [
        [
            s
            async for s in Step.objects.filter(session=session, turn_position=lap.message).order_by(
                "id"
            )
        ]
        for lap in laps
    ]
    assert [s.route for s in ws] == ["full"] + ["delta"] * (len(ws) - 1)
    assert {s.route for s in http_off} == {"full"}  # nothing stored: the whole context each step
    assert [s.route for s in http_on][1:] == ["delta"] * (len(http_on) - 1)  # chained by id
    # The columns ran at once: each started before any other ended.
    assert max(s.created for s in (ws[0], http_off[0], http_on[0])) < min(
        s.created for s in (ws[-1], http_off[-1], http_on[-1])
    )


async def test_a_compare_socket_is_refused_for_a_stranger_and_for_another_session_s_compare() -> (
    None
):
    owner, stranger = await new_browser(), await new_browser()
    mine, other = await new_session(owner), await new_session(owner)
    compare = await sync_to_async(create_race)(other, [], None)

    async def close_of(session: Session, browser: str) -> dict[str, Any]:
        tab = Tab(str(session.pk), browser)
        tab.path = f"/ws/sessions/{session.pk}/compare/{compare.pk}/"
        await tab.open()
        return await tab.close_output()

    assert (await close_of(other, stranger))["code"] == 4403  # not even told it exists
    refused = await close_of(mine, owner)  # a compare of another session, by its id
    assert refused["code"] == 4404
    assert "no such compare" in refused["reason"]
    tab = Tab(str(other.pk), owner)
    tab.path = f"/ws/sessions/{other.pk}/compare/{compare.pk}/"
    await tab.open()
    first = await tab.recv()
    assert 'id="board"' in first  # its board, drawn by the socket
    assert 'id="column-2"' in first
    await tab.close()


async def test_a_stopped_regenerate_keeps_its_partial_on_the_new_branch(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    use_upstream(start_sim("--profile", "realistic", "--cost", "ttft_ms=0"))
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await tab.turn("/chat 300 a reply long enough to stop", wait=60)  # ~3 s at 100 tokens/s
    await tab.send_frame(json.dumps({"action": "regenerate", "target": 1}))
    await tab.until(r"beforeend:#live-[^\"]+-text")  # the new reply streams
    await tab.stop()
    await tab.until(r'data-busy="false"')
    await tab.until(r'(?s)id="transcript" hx-swap-oob="true"')  # redrawn with the new branch
    await tab.close()
    items = await branch_items(session)
    assert [(i.position, i.role, i.status) for i in items] == [
        (0, "user", "completed"),
        (2, "assistant", "stopped"),
    ]
    assert (await Item.objects.aget(session=session, position=1)).status == "completed"
    step = await last_step(session)
    assert (step.status, step.route) == ("stopped", "lane")
    assert items[1].step_id == step.pk  # the partial is its step's: on this branch's chart


async def test_run_5_times_gives_five_rounds_and_the_board_their_medians(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    compare = await sync_to_async(create_race)(session, [], None, "/chat 5 quick")
    tab = Tab(str(session.pk), browser)
    tab.path = f"/ws/sessions/{session.pk}/compare/{compare.pk}/"
    await tab.open()
    await command(tab, action="compare", target=compare.pk, rounds="5")
    board = [frame for frame in tab.frames if 'id="board"' in frame][-1]  # the last redraw
    assert "medians of 5 rounds" in board
    await tab.close()
    laps = [(lap.round, lap.status) async for lap in Lap.objects.filter(column__compare=compare)]
    assert sorted(laps) == [(n, "completed") for n in range(1, 6) for _ in range(3)]
    assert board.count('class="total"') == 3  # one row per column, of medians


async def test_a_hostile_compare_form_is_refused_with_its_reasons_and_creates_nothing() -> None:
    browser = await new_browser()
    session = await new_session(browser)
    await Tool.objects.acreate(session=session, name="lookup", mock_output="x")
    client = client_of(browser)
    url = f"/sessions/{session.pk}/compare/"

    def form(**fields: str) -> dict[str, str]:
        base = {"prompt": "/chat 5 hi"}
        for index in (0, 1):
            base |= {f"c{index}-include": "on", f"c{index}-label": f"C{index}",
                     f"c{index}-model": "sim", f"c{index}-transport": "websocket",
                     f"c{index}-max_steps": "5"}  # fmt: skip
        return base | fields

    # A form may name its charset; UTF-7's decoder yields a lone surrogate ("+2AA-" is U+D800).
    surrogate = await client.post(
        url,
        encode_multipart(BOUNDARY, form(prompt="bad +2AA- text")),
        content_type=f'multipart/form-data; boundary={BOUNDARY}; charset="utf-7"',
    )
    assert surrogate.status_code == 422
    assert "not valid Unicode" in surrogate.content.decode()
    cases = [
        (form(prompt="x" * 100_001), "100,000"),  # past the prompt's limit
        (form(**{"c1-include": ""}), "Choose 2 to 4 columns"),  # one column only
        (form(**{"c0-max_steps": "0"}), "greater than or equal to 1"),
        (form(**{"c0-tools": "not_a_tool_here"}), "not one of the available choices"),
        (form(**{"c0-transport": "carrier-pigeon"}), "not one of the available choices"),
        (form(**{"c0-label": "{" * 10_000}), "at most 60 characters"),
    ]
    for fields, reason in cases:
        answer = await client.post(url, fields)
        assert answer.status_code == 422, reason
        assert reason in answer.content.decode(), reason
    assert await Compare.objects.acount() == 0
    stranger = client_of(await new_browser())
    assert (await stranger.post(url, form())).status_code == 404
    assert (await stranger.get(f"{url}1/")).status_code == 404
    # A good one is made; an unticked column's fields are not checked (its label cleared).
    answer = await client.post(url, form(**{"c2-label": "", "c2-max_steps": "0"}))
    assert answer.status_code == 302
    assert await Compare.objects.acount() == 1
