"""Each run event as the HTML fragments a page applies: what the user sees, and hostile text
from the model, tools and people shown as text, never as markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from agents.models import Item
from agents.run.events import (
    CallResolved,
    CallWaiting,
    ItemAdded,
    ItemDone,
    ItemStarted,
    Notice,
    Retitled,
    RunEvent,
    StepDone,
    TextDelta,
    TurnEnded,
    TurnStarted,
)
from playground.render import event_html, viewer_event_html, waterfall
from tests.unit.helpers import step

pytestmark = pytest.mark.unit

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def message(role: str, text: str, position: int = 3, status: str = "completed") -> Item:
    kind = "input_text" if role == "user" else "output_text"
    data = {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}
    return Item(position=position, data=data, status=status)


class Elements(HTMLParser):
    """The tags and attribute names of a fragment, as a browser would parse them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def assert_no_markup_from(html: str) -> None:
    """Nothing of HOSTILE became an element or an attribute: it is all text."""
    parsed = Elements(html)
    assert not parsed.tags & {"script", "img"}
    assert not {name for name in parsed.attributes if name.startswith("on")}
    assert "<script" not in html


def oob_targets(html: str) -> list[str]:
    return re.findall(r'hx-swap-oob="([^"]*)"', html)


def test_a_turn_start_appends_the_user_message_and_shows_busy() -> None:
    html = event_html(TurnStarted(message("user", "Tides\nof the Atlantic", position=0)))
    assert 'id="item-0"' in html
    assert 'class="item message user completed"' in html
    assert "Tides<br>of the Atlantic" in html
    assert 'data-busy="true"' in html
    assert 'id="stop"' in html
    assert 'id="composer"' in html  # the composer is reset
    assert oob_targets(html)[0] == "beforeend:#transcript"


def test_a_viewer_s_turn_start_has_no_controls() -> None:
    html = viewer_event_html(TurnStarted(message("user", "hi", position=0)))
    assert 'data-busy="true"' in html
    assert 'id="stop"' not in html
    assert 'id="composer"' not in html


def test_a_streamed_item_gets_a_live_element_its_deltas_fill() -> None:
    started = event_html(ItemStarted("msg_1", "function_call", "lookup"))
    assert 'id="live-msg_1"' in started
    assert 'id="live-msg_1-text"' in started
    assert "item live function_call" in started
    assert ">lookup<" in started

    delta = event_html(TextDelta("msg_1", "Hello <b>"))
    assert delta == (
        '<template hx-swap-oob="beforeend:#live-msg_1-text">Hello &lt;b&gt;</template>'
    )


def test_a_done_item_replaces_its_live_element_rendered_as_markdown() -> None:
    html = event_html(ItemDone("msg_1", message("assistant", "Tides are **strong**", 4)))
    assert oob_targets(html) == ["outerHTML:#live-msg_1"]
    assert 'id="item-4"' in html
    assert "<strong>strong</strong>" in html
    assert 'class="badge"' not in html


def test_a_stopped_partial_reply_is_marked() -> None:
    html = event_html(ItemDone("msg_1", message("assistant", "Half a", 4, status="stopped")))
    assert '<div class="badge">stopped</div>' in html
    assert "item message assistant stopped" in html


def test_a_tool_s_output_is_appended_as_a_collapsed_detail() -> None:
    data = {"type": "function_call_output", "call_id": "c1", "output": "High tide at 6:05."}
    html = event_html(ItemAdded(Item(position=5, data=data)))
    assert oob_targets(html) == ["beforeend:#transcript"]
    assert "tool output" in html
    assert "<pre>High tide at 6:05.</pre>" in html


def test_a_function_call_shows_its_name_and_arguments() -> None:
    data = {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": 1}'}
    html = event_html(ItemDone("fc_1", Item(position=2, data=data)))
    assert "calls <code>lookup</code>" in html
    assert "{&quot;q&quot;: 1}" in html


@pytest.mark.parametrize("kind", ["output", "approval"])
def test_a_waiting_call_asks_the_owner_and_tells_a_viewer(kind: str) -> None:
    event = CallWaiting("call_9", "lookup", '{"q": "tides"}', kind)
    owner = event_html(event)
    assert oob_targets(owner) == ["beforeend:#waiting"]
    assert 'id="call-call_9"' in owner
    assert 'name="call_id" value="call_9"' in owner
    if kind == "approval":
        assert 'value="approve"' in owner
        assert 'class="approve"' in owner
        assert 'class="decline"' in owner
    else:
        assert 'value="tool_output"' in owner
        assert "<textarea" in owner

    viewer = viewer_event_html(event)
    assert "<form" not in viewer
    assert "The agent called <code>lookup</code>" in viewer
    assert ("approval" in viewer) == (kind == "approval")


def test_a_resolved_call_removes_its_question() -> None:
    assert event_html(CallResolved("call_9")) == (
        '<div id="call-call_9" hx-swap-oob="delete"></div>'
    )


def test_a_step_shows_its_metrics() -> None:
    html = event_html(StepDone(step(retries=2, tool_ms=12.0, status="interrupted")))
    assert 'class="step" data-mode="delta"' in html
    for shown in (
        "step delta",
        "socket reused",
        "1234 B sent",
        "TTFT 42 ms",
        "310 ms",
        "900 in (800 cached)",
        "55 out",
        "tools 12 ms",
        "2 retries",
        "interrupted",
    ):
        assert shown in html


def test_a_turn_end_shows_the_waterfall_ready_and_its_message() -> None:
    steps = (step(started_ms=0.0), step(mode="create", started_ms=320.0, duration_ms=200.0))
    html = event_html(TurnEnded("incomplete", "Stopped at the step limit (2).", steps))
    assert html.count('<g class="bar"') == 2
    assert "2 steps in 520 ms" in html
    assert 'data-busy="false"' in html
    assert 'data-code="incomplete"' in html
    assert 'class="notice error"' in html
    assert "Stopped at the step limit (2)." in html


def test_a_completed_turn_without_steps_or_message_is_just_ready() -> None:
    html = event_html(TurnEnded("completed"))
    assert 'data-busy="false"' in html
    assert "waterfall" not in html
    assert 'id="notice"' not in html


def test_a_notice_is_shown_as_information() -> None:
    html = event_html(Notice("Falling back to HTTP for this session."))
    assert 'class="notice info"' in html
    assert "Falling back to HTTP for this session." in html


HOSTILE_EVENTS: list[RunEvent] = [
    TurnStarted(message("user", HOSTILE, 0)),
    ItemStarted(HOSTILE, "message", HOSTILE),
    TextDelta(HOSTILE, HOSTILE),
    ItemDone(HOSTILE, message("assistant", HOSTILE)),
    ItemAdded(Item(position=5, data={"type": "function_call_output", "output": HOSTILE})),
    ItemDone(
        "fc",
        Item(position=2, data={"type": "function_call", "name": HOSTILE, "arguments": HOSTILE}),
    ),
    CallWaiting(HOSTILE, HOSTILE, HOSTILE, "output"),
    CallWaiting(HOSTILE, HOSTILE, HOSTILE, "approval"),
    CallResolved(HOSTILE),
    TurnEnded("failed", HOSTILE),
    Notice(HOSTILE),
    Retitled("6f1c2a4e-9d1b-4c8e-8f1a-2b3c4d5e6f70", HOSTILE, pinned=True),
]


@pytest.mark.parametrize(
    "event", HOSTILE_EVENTS, ids=[f"{type(e).__name__}-{n}" for n, e in enumerate(HOSTILE_EVENTS)]
)
def test_hostile_text_is_shown_as_text(event: RunEvent) -> None:
    for html in (event_html(event), viewer_event_html(event)):
        assert_no_markup_from(html)
    assert "&lt;script&gt;alert(" in event_html(event)  # shown, as text


def test_a_lone_surrogate_from_the_upstream_is_shown_as_a_replacement() -> None:
    assert "a\ufffdb" in event_html(TextDelta("k", "a\ud800b"))
    assert "a\ufffdb" in event_html(ItemDone("k", message("assistant", "a\udfffb")))


def test_a_waterfall_has_a_time_axis_with_round_ticks_and_a_legend() -> None:
    steps = (step(started_ms=0.0, duration_ms=300.0, tool_ms=150.0), step(started_ms=450.0))
    chart = waterfall(steps)
    assert [tick["label"] for tick in chart["ticks"]] == ["0 ms", "200 ms", "400 ms", "600 ms"]
    assert chart["ticks"][0]["x"] == 160  # the rows' time starts there
    assert chart["height"] > chart["axis_y"] >= len(steps) * 18
    html = event_html(TurnEnded("completed", "", steps))
    for key in ("model (delta)", "model (full context)", "warm-up", "tools"):
        assert key in html
    assert html.count('text-anchor="middle"') == 4
