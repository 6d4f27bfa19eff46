"""Manual tools and approvals: the run waits for a person, in every tab of the session."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from agents.models import Item, Session, Tool
from agents.run.loop import STOPPED_CALL
from agents.tools.executor import DECLINED
from tests.simserver import SimServer
from tests.tabs import Tab, new_browser, new_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]
CALL_RE = re.compile(r'id="call-([^"]+)"')
SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


async def session_with_tool(**tool: object) -> tuple[Session, str]:
    browser = await new_browser()
    session = await new_session(browser)
    await Tool.objects.acreate(session=session, name="lookup", parameters=SCHEMA, **tool)
    return session, browser


async def outputs_of(session: Session) -> list[str]:
    items = Item.objects.filter(session=session).order_by("position")
    return [i.data["output"] async for i in items if i.kind == "function_call_output"]


def answer(call_id: str, output: str) -> str:
    return json.dumps({"action": "tool_output", "call_id": call_id, "output": output})


def decide(call_id: str, decision: str) -> str:
    return json.dumps({"action": "approve", "call_id": call_id, "decision": decision})


async def test_a_manual_tool_pauses_the_run_until_another_tab_answers(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    session, browser = await session_with_tool(mode=Tool.Mode.MANUAL)
    first = await Tab(str(session.pk), browser).open()
    second = await Tab(str(session.pk), browser).open()
    await first.send("/lookup tide tables for Brest")
    waiting = await second.until(r'class="waiting"')
    assert "type its output" in waiting
    call_id = CALL_RE.search(waiting).group(1)  # type: ignore[union-attr]
    await first.until(rf'id="call-{call_id}"')  # every tab shows the form
    await second.send_frame(answer(call_id, "High tide 06:05, low tide 12:20."))
    for tab in (first, second):
        await tab.until(rf'id="call-{call_id}" hx-swap-oob="delete"')
        await tab.until(r'data-busy="false"')
    await first.close()
    await second.close()
    assert await outputs_of(session) == ["High tide 06:05, low tide 12:20."]
    items = [i async for i in Item.objects.filter(session=session).order_by("position")]
    assert items[-1].kind == "message"
    assert "06:05" in items[-1].text  # the model read the person's output


async def test_a_tab_that_joins_while_a_call_waits_sees_its_form(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    session, browser = await session_with_tool(mode=Tool.Mode.MANUAL)
    first = await Tab(str(session.pk), browser).open()
    await first.send("/lookup harbour depths")
    waiting = await first.until(r'class="waiting"')
    call_id = CALL_RE.search(waiting).group(1)  # type: ignore[union-attr]
    late = await Tab(str(session.pk), browser).open()
    await late.until(rf'id="call-{call_id}"')
    await late.send_frame(answer(call_id, "12 m at low water."))
    await first.until(r'data-busy="false"')
    await first.close()
    await late.close()
    assert await outputs_of(session) == ["12 m at low water."]


@pytest.mark.parametrize(("decision", "runs"), [("yes", True), ("no", False)])
async def test_an_approval_is_asked_before_the_tool_runs(
    sim_server: SimServer, use_upstream: UseUpstream, decision: str, runs: bool
) -> None:
    use_upstream(sim_server)
    session, browser = await session_with_tool(
        mode=Tool.Mode.MOCK, mock_output="Found: {{query}}", requires_approval=True
    )
    tab = await Tab(str(session.pk), browser).open()
    await tab.send("/lookup storm surge")
    waiting = await tab.until(r'class="waiting"')
    assert "run it?" in waiting
    call_id = CALL_RE.search(waiting).group(1)  # type: ignore[union-attr]
    await tab.send_frame(decide(call_id, decision))
    await tab.until(r'data-busy="false"')
    await tab.close()
    (output,) = await outputs_of(session)
    assert output.startswith("Found: ") if runs else output == DECLINED


async def test_bad_answers_are_refused_and_the_call_keeps_waiting(
    sim_server: SimServer, use_upstream: UseUpstream, settings: object
) -> None:
    use_upstream(sim_server)
    settings.TOOL_OUTPUT_LIMIT = 50  # type: ignore[attr-defined]
    session, browser = await session_with_tool(mode=Tool.Mode.MANUAL)
    tab = await Tab(str(session.pk), browser).open()
    await tab.send("/lookup the moon")
    waiting = await tab.until(r'class="waiting"')
    call_id = CALL_RE.search(waiting).group(1)  # type: ignore[union-attr]
    await tab.send_frame(answer(call_id, "x" * 51))
    assert "over the limit of 50" in await tab.until(r'data-code="answer_refused"')
    await tab.send_frame(decide(call_id, "yes"))  # it waits for an output, not an approval
    assert "waits for output" in await tab.until(r'data-code="answer_refused"')
    await tab.send_frame(answer("call_nope", "hello"))
    assert "not waiting" in await tab.until(r'data-code="answer_refused"')
    await tab.send_frame(json.dumps({"action": "approve", "call_id": call_id, "decision": "maybe"}))
    await tab.until(r'data-code="invalid_frame"')
    assert await outputs_of(session) == []
    await tab.send_frame(answer(call_id, "Waxing gibbous."))
    await tab.until(r'data-busy="false"')
    await tab.close()
    assert await outputs_of(session) == ["Waxing gibbous."]


async def test_stop_while_a_call_waits_answers_it_and_the_session_goes_on(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    session, browser = await session_with_tool(mode=Tool.Mode.MANUAL)
    tab = await Tab(str(session.pk), browser).open()
    await tab.send("/lookup reefs")
    waiting = await tab.until(r'class="waiting"')
    call_id = CALL_RE.search(waiting).group(1)  # type: ignore[union-attr]
    await tab.stop()
    await tab.until(rf'id="call-{call_id}" hx-swap-oob="delete"')
    await tab.until(r'data-busy="false"')
    assert await outputs_of(session) == [STOPPED_CALL]
    # The transcript stays valid upstream: the next run works.
    await tab.turn("/chat 10 never mind")
    await tab.close()
    last = await Item.objects.filter(session=session).order_by("position").alast()
    assert last is not None
    assert (last.role, last.status) == ("assistant", "completed")
