"""Every run of a session on one waterfall scale (the longest run's ms per pixel): on a page
drawn whole, and when a run ends live, also when it is the new longest."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agents.models import Item, Step
from agents.run.events import TurnEnded
from playground import waterfall
from playground.render import event_html, partial, transcript_rows

pytestmark = pytest.mark.unit

SESSION = str(uuid.uuid4())


@pytest.fixture(autouse=True)
def forget() -> Iterator[None]:
    waterfall.session_runs.clear()
    yield
    waterfall.session_runs.clear()


def run(position: int, *durations: float, session: Any = SESSION) -> list[Step]:
    """A run of back-to-back steps of these durations (ms)."""
    steps, start = [], 0.0
    for number, duration in enumerate(durations):
        steps.append(
            Step(
                pk=position * 100 + number,
                session_id=session,
                mode="delta",
                socket="reused",
                status="completed",
                duration_ms=duration,
                started_ms=start,
                turn_position=position,
            )
        )
        start += duration
    return steps


def figures(html: str) -> dict[str, str]:
    """The waterfall figures of some HTML: ms per pixel by id."""
    found = re.findall(
        r'<figure class="waterfall" id="(waterfall-\d+)" data-ms-per-px="([^"]+)"', html
    )
    return dict(found)


def test_a_run_is_drawn_on_the_span_it_is_given() -> None:
    short = waterfall.geometry(run(0, 100, 100))  # 200 ms
    assert short["ms_per_px"] == pytest.approx(200 / 440, abs=1e-4)
    assert short["ticks"][-1]["x"] == pytest.approx(600, abs=0.5)  # its own end at the edge
    scaled = waterfall.geometry(run(0, 100, 100), span_ms=880)
    assert scaled["ms_per_px"] == 2.0
    assert scaled["rows"][1]["x"] == 160 + 50  # 100 ms at 2 ms/px
    assert scaled["total_ms"] == 200  # the caption keeps the run's own length
    assert [tick["label"] for tick in scaled["ticks"]][-1] == "800 ms"  # the axis spans 880
    # A span shorter than the run never cuts it.
    assert waterfall.geometry(run(0, 300), span_ms=100)["span_ms"] == 300


def test_a_page_draws_every_run_on_the_longest_runs_scale() -> None:
    runs = {0: run(0, 100), 4: run(4, 400, 480), 9: run(9, 50)}
    charts = waterfall.session_geometries(SESSION, runs)
    assert {chart["ms_per_px"] for chart in charts.values()} == {2.0}  # 880 ms over 440 px
    assert charts[0]["rows"][0]["model"] == 50.0


def test_a_shorter_run_ending_live_takes_the_sessions_scale_and_changes_nothing_else() -> None:
    waterfall.session_runs.drawn(SESSION, {0: run(0, 880)})
    charts = waterfall.session_runs.finished(run(2, 220))
    assert len(charts) == 1
    assert charts[0]["ms_per_px"] == 2.0
    assert not charts[0]["oob"]


def test_a_new_longest_run_redraws_the_earlier_charts_on_its_scale() -> None:
    waterfall.session_runs.drawn(SESSION, {0: run(0, 220), 2: run(2, 440)})
    charts = waterfall.session_runs.finished(run(5, 880, 880))  # 1,760 ms: 4 ms/px
    assert [(chart["run"], chart["oob"], chart["ms_per_px"]) for chart in charts] == [
        (5, False, 4.0),
        (0, True, 4.0),
        (2, True, 4.0),
    ]
    # Asked again (another tab of the session in this process): the same charts.
    assert [c["run"] for c in waterfall.session_runs.finished(run(5, 880, 880))] == [5, 0, 2]


def test_a_run_of_an_unknown_session_is_drawn_on_its_own_scale() -> None:
    charts = waterfall.session_runs.finished(run(3, 440, session=None))
    assert [(chart["oob"], chart["ms_per_px"]) for chart in charts] == [(False, 1.0)]


def test_the_memory_keeps_the_latest_sessions_only() -> None:
    runs = waterfall.SessionRuns(kept=2)
    for session in ("a", "b", "c"):
        runs.drawn(session, {0: run(0, 10, session=session)})
    assert runs.drawn("a", {}) == 0.0  # forgotten
    assert runs.drawn("c", {}) == 10.0


def message(position: int, role: str, step_id: int | None = None) -> Item:
    kind = "input_text" if role == "user" else "output_text"
    data = {"type": "message", "role": role, "content": [{"type": kind, "text": "hi"}]}
    return Item(position=position, data=data, status="completed", step_id=step_id)


def test_the_page_and_the_live_end_of_a_run_share_one_scale() -> None:
    """What the browser receives: the transcript's figures, then a longer run's end, which
    appends its chart and replaces the earlier ones, all at the same ms per pixel."""
    first, second = run(0, 100), run(2, 300)
    steps: dict[int, Step] = {s.pk: s for s in first + second}
    items = [message(0, "user"), message(1, "assistant", first[0].pk)]
    items += [message(2, "user"), message(3, "assistant", second[0].pk)]
    page: Any = partial("transcript", rows=transcript_rows(items, steps))
    assert figures(page) == {"waterfall-0": "0.6818", "waterfall-2": "0.6818"}  # 300 ms / 440

    longer = run(4, 440, 440)
    html = event_html(TurnEnded("completed", "", tuple(longer)))
    assert figures(html) == {"waterfall-4": "2.0", "waterfall-0": "2.0", "waterfall-2": "2.0"}
    assert 'hx-swap-oob="beforeend:#transcript"' in html  # the new chart is appended
    redrawn = re.findall(
        r'<figure class="waterfall" id="(waterfall-\d)"[^>]*hx-swap-oob="true"', html
    )
    assert redrawn == ["waterfall-0", "waterfall-2"]

    shorter = event_html(TurnEnded("completed", "", tuple(run(6, 110))))
    assert figures(shorter) == {"waterfall-6": "2.0"}  # on the session's scale, alone


def test_a_run_end_from_another_process_keeps_its_session_for_the_scale() -> None:
    """The fan-out's wire form is JSON: the steps' session id goes as text, and comes back."""
    import json

    from agents.run.events import decode, encode

    ended = TurnEnded("completed", "", tuple(run(0, 10.0, session=uuid.UUID(SESSION))))
    back = decode(json.loads(json.dumps(encode(ended))))
    assert isinstance(back, TurnEnded)
    assert [str(step.session_id) for step in back.steps] == [SESSION]
