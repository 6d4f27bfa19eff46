"""The agent loop over the real SDK and simulator: many steps, both transports, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agents.models import Item, Session, Step, Tool
from simulator import context_hash
from tests.simserver import API_KEY, SimServer
from tests.tabs import Tab, new_browser, new_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]
SharedSim = Callable[..., SimServer]
SEARCH_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
    "additionalProperties": False,
}


@dataclass
class SinceTestStart(SimServer):
    """A shared simulator as one test sees it: only the connections opened since it began, as if
    the simulator were its own (the tests count and read every connection they see)."""

    before: frozenset[str] = frozenset()

    def connections(self) -> list[dict[str, Any]]:
        return [c for c in super().connections() if c["id"] not in self.before]


@pytest.fixture(scope="module")
def module_sims() -> Iterator[dict[tuple[str, ...], SimServer]]:
    """One simulator per command line for the whole module: starting one costs ~2 s of CPU, and
    each test meets only fresh connections (faults, caches and limits are per connection)."""
    servers: dict[tuple[str, ...], SimServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def shared_sim(
    module_sims: dict[tuple[str, ...], SimServer], use_upstream: UseUpstream
) -> Iterator[SharedSim]:
    """The module's simulator with these arguments, as this test's upstream, no faults set.
    Each accepts only the key ``use_upstream`` gives the runners (a test may give another)."""

    def use(*args: str) -> SimServer:
        server = module_sims.get(args)
        if server is None:
            command = ["--api-key", API_KEY, *args]
            server = module_sims[args] = SimServer(command)  # stopped even if it fails
            server.start()
        clear_faults(server)  # a test that failed may have left its faults behind
        before = frozenset(c["id"] for c in server.connections())
        view = SinceTestStart(list(args), server.port, server.api_key, server.child, before)
        return use_upstream(view)

    yield use
    for server in module_sims.values():
        clear_faults(server)  # `always` faults would meet the next test's connections


def clear_faults(server: SimServer) -> None:
    status, body = server.request("DELETE", "/_sim/faults")
    assert status == 200, body


async def research_session(steps: int = 20, **fields: Any) -> tuple[Session, str]:
    browser = await new_browser()
    session = await new_session(browser, max_steps=steps + 5, **fields)
    await Tool.objects.acreate(
        session=session,
        name="search_notes",
        description="Search the research notes.",
        parameters=SEARCH_SCHEMA,
        mode=Tool.Mode.MOCK,
        mock_output="Notes on {{query}}: high tide at 6:05, low tide at 12:20.",
    )
    return session, browser


async def items_of(session: Session) -> list[Item]:
    return [i async for i in Item.objects.filter(session=session).order_by("position")]


async def model_steps(session: Session) -> list[Step]:
    return [s async for s in Step.objects.filter(session=session).exclude(mode="warm")]


def contexts_by_step(items: list[Item]) -> dict[int, list[dict[str, Any]]]:
    """For each step: the in-context items before its first output item."""
    contexts: dict[int, list[dict[str, Any]]] = {}
    for index, item in enumerate(items):
        if item.step_id is not None and item.kind != "function_call_output":
            contexts.setdefault(item.step_id, [i.data for i in items[:index] if i.in_context])
    return contexts


async def assert_oracle_matches(server: SimServer, session: Session) -> None:
    contexts = contexts_by_step(await items_of(session))
    for step in await model_steps(session):
        if step.status != "completed":
            continue  # the simulator keeps an oracle entry for completed responses only
        assert server.oracle(step.response_id)["context_hash"] == context_hash(contexts[step.pk])


def assert_each_call_answered_once(items: list[Item]) -> None:
    calls = [i.data["call_id"] for i in items if i.kind == "function_call"]
    outputs = [i.data["call_id"] for i in items if i.kind == "function_call_output"]
    assert sorted(calls) == sorted(outputs)
    assert len(set(outputs)) == len(outputs)


def ws_logs(server: SimServer) -> list[dict[str, Any]]:
    return [
        server.connection(c["id"]) for c in server.connections() if c["transport"] == "websocket"
    ]


async def warmed(session: Session) -> None:
    for _ in range(200):
        if await Step.objects.filter(session=session, mode="warm").aexists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the upstream was not warmed within 10 s")


async def run(session: Session, browser: str, message: str, wait: float = 60) -> str:
    tab = await Tab(str(session.pk), browser).open()
    frames = await tab.turn(message, wait)
    await tab.close()
    return frames


async def test_a_20_step_research_run_is_one_socket_of_deltas_matching_the_oracle(
    shared_sim: SharedSim,
) -> None:
    server = shared_sim("--seed", "5")
    session, browser = await research_session()
    frames = await run(session, browser, "/research 20 tide tables of the Atlantic coast")

    logs = ws_logs(server)
    assert len(logs) == 1
    requests = logs[0]["log"]
    assert [r["mode"] for r in requests] == ["warm"] + ["delta"] * 21
    assert all(r["cache"] == "hit" for r in requests[1:])

    steps = await model_steps(session)
    assert len(steps) == 21
    assert all(s.mode == "delta" and s.status == "completed" for s in steps)
    # Upstream bytes per step are bounded by the new items, not by the growing history.
    tool_steps = [s.bytes_sent for s in steps[1:]]
    assert max(tool_steps) < 1.3 * min(tool_steps)
    items = await items_of(session)
    assert_each_call_answered_once(items)
    assert sum(1 for i in items if i.kind == "function_call") == 20
    assert items[-1].kind == "message"
    assert items[-1].role == "assistant"
    await assert_oracle_matches(server, session)
    # The browser saw each call, its output and the run's waterfall.
    assert frames.count("function_call_output") >= 20
    assert 'class="waterfall"' in frames
    assert frames.count('<g class="bar"') == 21


async def final_transcript(session: Session) -> str:
    return context_hash([item.data for item in await items_of(session)])


@pytest.mark.parametrize(("store", "mode"), [(False, "create"), (True, "delta")])
async def test_over_http_the_same_run_gives_the_same_transcript(
    shared_sim: SharedSim, store: bool, mode: str
) -> None:
    server = shared_sim("--seed", "5")
    reference, browser = await research_session(6)
    await run(reference, browser, "/research 6 river deltas")
    over_http, browser = await research_session(6, transport="http", store=store)
    await run(over_http, browser, "/research 6 river deltas")

    assert await final_transcript(over_http) == await final_transcript(reference)
    steps = await model_steps(over_http)
    assert [s.mode for s in steps] == ["create"] + [mode] * 6
    assert {s.socket for s in steps} == {"http"}
    if not store:  # the whole context every step: the bytes grow with the history
        sizes = [s.bytes_sent for s in steps]
        assert sizes == sorted(sizes)
        assert sizes[-1] > 2 * sizes[1]
    http = [c for c in server.connections() if c["transport"] == "http"]
    assert len(http) == 7
    await assert_oracle_matches(server, over_http)


def inject(server: SimServer, spec: str, when: str = "always") -> None:
    status, body = server.request("POST", "/_sim/faults", {when: spec})
    assert status == 200, body


async def test_a_cache_miss_is_resent_once_in_full_without_the_user_noticing(
    shared_sim: SharedSim,
) -> None:
    server = shared_sim()
    inject(server, "forget_cache_before=3")
    session, browser = await research_session(4)
    frames = await run(session, browser, "/research 4 salt marshes")
    log = ws_logs(server)[0]["log"]
    assert [(r["mode"], r["status"]) for r in log[:4]] == [
        ("warm", "completed"),
        ("delta", "completed"),
        ("delta", "error:previous_response_not_found"),
        ("create", "completed"),
    ]
    steps = await model_steps(session)
    assert [s.status for s in steps] == ["completed"] * 5
    assert steps[1].mode == "create"
    assert 'data-code="completed"' not in frames or "not_found" not in frames
    assert "previous_response_not_found" not in frames
    assert_each_call_answered_once(await items_of(session))
    await assert_oracle_matches(server, session)


async def test_the_connection_age_limit_reconnects_with_a_full_create(
    shared_sim: SharedSim,
) -> None:
    server = shared_sim()
    inject(server, "connection_limit_at=3", when="next")
    session, browser = await research_session(4)
    frames = await run(session, browser, "/research 4 estuaries")
    logs = ws_logs(server)
    assert len(logs) == 2
    assert logs[0]["log"][2]["status"] == "error:websocket_connection_limit_reached"
    assert [r["mode"] for r in logs[1]["log"]] == ["create"] + ["delta"] * 3
    assert "connection_limit" not in frames
    steps = await model_steps(session)
    assert [(s.mode, s.socket) for s in steps][:2] == [("delta", "reused"), ("create", "fresh")]
    await assert_oracle_matches(server, session)


async def test_an_old_socket_is_rotated_before_break_and_the_next_step_stays_a_delta(
    shared_sim: SharedSim, settings: Any
) -> None:
    server = shared_sim()
    settings.ROTATE_AFTER_SECONDS = 0.0  # every step boundary finds the socket too old
    session, browser = await research_session(3)
    tab = await Tab(str(session.pk), browser).open()
    await warmed(session)  # so the first step finds the prewarmed socket to rotate
    await tab.turn("/research 3 lagoons")
    await tab.close()
    logs = ws_logs(server)
    # The prewarmed socket, then one new socket per step, each warmed before it is used.
    modes = [[r["mode"] for r in log["log"]] for log in logs]
    assert modes == [["warm"]] + [["warm", "delta"]] * 4
    assert all(log["closed"] for log in logs[:-1])
    steps = await model_steps(session)
    assert {(s.mode, s.socket) for s in steps} == {("delta", "rotated")}
    # No latency spike: the re-seeded socket's cache answers the step (cached tokens, no prefill).
    assert all(s.cached_tokens > 0 for s in steps[1:])
    await assert_oracle_matches(server, session)


async def test_a_transient_error_is_retried_with_backoff(shared_sim: SharedSim) -> None:
    server = shared_sim()
    inject(server, "error_frame=2:server_error", when="next")
    session, browser = await research_session(2)
    await run(session, browser, "/research 2 dunes")
    steps = await model_steps(session)
    assert steps[0].retries == 1
    assert all(s.status == "completed" for s in steps)
    log = ws_logs(server)[0]["log"]
    assert log[1]["status"] == "error:server_error"
    await assert_oracle_matches(server, session)


async def test_a_426_at_the_upgrade_falls_back_to_http_with_a_notice(shared_sim: SharedSim) -> None:
    server = shared_sim()
    inject(server, "upgrade_status=426", when="next")
    session, browser = await research_session(2)
    tab = await Tab(str(session.pk), browser).open()
    notice = await tab.until("Falling back to HTTP")
    assert "no WebSocket mode (HTTP 426)" in notice
    await tab.turn("/research 2 coves")
    await tab.close()
    steps = await model_steps(session)
    assert {s.socket for s in steps} == {"http"}
    assert all(s.status == "completed" for s in steps)
    await assert_oracle_matches(server, session)


async def test_after_the_retry_budget_the_session_falls_back_to_http(
    shared_sim: SharedSim, settings: Any
) -> None:
    server = shared_sim()
    settings.UPSTREAM_RETRIES = 2
    inject(server, "close_after_recv=1")  # every socket dies as its first request arrives
    session, browser = await research_session(2)
    frames = await run(session, browser, "/research 2 fjords")
    assert "Falling back to HTTP" in frames
    steps = await model_steps(session)
    assert {s.socket for s in steps} == {"http"}
    # 1 prewarm + 3 WebSocket attempts (the first try and 2 retries), then HTTP.
    assert len(ws_logs(server)) == 4
    assert_each_call_answered_once(await items_of(session))
    await assert_oracle_matches(server, session)


async def test_a_drop_after_visible_output_is_never_replayed(shared_sim: SharedSim) -> None:
    server = shared_sim()
    inject(server, "drop_after_events=8@2", when="next")
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    frames = await tab.turn("/chat 80 a long answer about waves")
    assert 'data-code="interrupted"' in frames
    items = await items_of(session)
    assert [(i.role, i.status) for i in items] == [
        ("user", "completed"),
        ("assistant", "interrupted"),
    ]
    assert items[1].text  # the partial the browser saw is kept
    logs = ws_logs(server)
    assert len(logs) == 1  # nothing was resent
    assert len(logs[0]["log"]) == 2
    # The user retries: a fresh socket, a full create of the transcript, partial included.
    await tab.turn("/chat 10 please go on")
    await tab.close()
    steps = await model_steps(session)
    assert (steps[-1].mode, steps[-1].socket, steps[-1].status) == ("create", "fresh", "completed")
    assert steps[0].status == "interrupted"


async def test_the_step_limit_ends_a_run_with_a_note(shared_sim: SharedSim) -> None:
    shared_sim()
    session, browser = await research_session(5)
    session.max_steps = 3
    await session.asave()
    frames = await run(session, browser, "/research 5 sandbars")
    assert "step limit (3)" in frames
    assert len(await model_steps(session)) == 3
    assert_each_call_answered_once(await items_of(session))


async def test_arguments_off_the_schema_go_back_to_the_model_as_an_error(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    browser = await new_browser()
    session = await new_session(browser)
    # The simulator satisfies types and `required`, not patterns: its argument breaks this one.
    schema = {
        "type": "object",
        "properties": {"query": {"type": "string", "pattern": "^[0-9]{6}$"}},
        "required": ["query"],
    }
    await Tool.objects.acreate(
        session=session, name="lookup", parameters=schema, mode=Tool.Mode.MOCK, mock_output="ok"
    )
    await run(session, browser, "/lookup postcode of the harbour")
    items = await items_of(session)
    (output,) = [i.data["output"] for i in items if i.kind == "function_call_output"]
    assert output.startswith("Error: The arguments do not match the tool's schema at query")
    assert (items[-1].kind, items[-1].status) == ("message", "completed")
    await run(session, browser, "/chat 10 thanks anyway")  # the session keeps working
    assert (await items_of(session))[-1].status == "completed"


async def test_stop_over_http_closes_the_request_and_keeps_the_partial(
    start_sim: Callable[..., SimServer], use_upstream: UseUpstream
) -> None:
    server = use_upstream(start_sim("--profile", "realistic", "--cost", "ttft_ms=0"))
    browser = await new_browser()
    session = await new_session(browser, transport="http")
    tab = await Tab(str(session.pk), browser).open()
    await tab.send("/chat 600 a very long answer")
    await tab.until(r"beforeend:#live-[^\"]+-text")
    await tab.stop()
    await tab.until(r'data-busy="false"')
    items = await items_of(session)
    assert [(i.role, i.status) for i in items] == [("user", "completed"), ("assistant", "stopped")]
    assert 0 < len(items[1].text.split()) < 600
    await tab.turn("/chat 10 shorter please")
    await tab.close()
    steps = await model_steps(session)
    assert [(s.socket, s.status) for s in steps] == [("http", "stopped"), ("http", "completed")]
    http = [c for c in server.connections() if c["transport"] == "http"]
    assert len(http) == 2
    await assert_oracle_matches(server, session)
    # The simulator goes on generating the stopped reply for a request nobody reads, and its
    # graceful shutdown would wait the ~5 s that takes: it has told all it had to tell.
    server.child.kill()


async def test_stop_during_a_backoff_ends_the_run_without_another_request(
    shared_sim: SharedSim,
) -> None:
    server = shared_sim()
    # A rate limit: the server asks for 1.5 s before a retry.
    inject(server, "error_frame=2:rate_limit_exceeded", when="next")
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    await warmed(session)
    await tab.send("/chat 10 hello")
    await tab.until(r'data-busy="true"')
    await asyncio.sleep(0.3)  # the error has arrived; the runner is waiting to retry
    await tab.stop()
    await tab.until(r'data-busy="false"', wait=1.0)  # well before the 1.5 s retry
    await asyncio.sleep(1.6)
    await tab.close()
    log = ws_logs(server)[0]["log"]
    assert [r["status"] for r in log] == ["completed", "error:rate_limit_exceeded"]


async def test_a_refused_key_fails_at_once_without_retries(
    shared_sim: SharedSim, settings: Any
) -> None:
    server = shared_sim()  # it accepts API_KEY only
    settings.OPENAI_API_KEY = "a-wrong-key"
    browser = await new_browser()
    session = await new_session(browser)
    tab = await Tab(str(session.pk), browser).open()
    frames = await tab.turn("/chat 10 hello")
    await tab.close()
    assert "HTTP 401" in frames
    assert "Check OPENAI_API_KEY" in frames
    assert ws_logs(server) == []  # every upgrade was refused: nothing was retried into a socket
