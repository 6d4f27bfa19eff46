"""The race: the compare page's preset (one research run over WebSocket, HTTP store=false and HTTP
store=true at once, playground/comparing.py), driven as a tab drives it, its results read from the
page."""

from __future__ import annotations

import json
import re
import statistics
from typing import Any

from bench.agentrun import playground_run, prompt, research_session
from bench.browser import Browser
from bench.overhead import WARMUP_STEPS, sim_args
from bench.results import Row, Target
from bench.sizes import Sizes
from bench.stack import Stack, stack
from devtools.tabs import Tab

COMPARE_RE = re.compile(r"/sessions/[0-9a-f-]{36}/compare/(\d+)/\?start=1$")
RESULT_ROW_RE = re.compile(r"<tr (data-column=[^>]*)>")
ATTRIBUTE_RE = re.compile(r'data-([a-z-]+)="([^"]*)"')
COLUMNS = (("websocket", False), ("http", False), ("http", True))  # the race's, in order
FASTER = 0.70  # WebSocket's run time at most this share of HTTP's: ≥ 30 % faster


async def export(browser: Browser, session_id: str) -> dict[str, Any]:
    """The session's export (items and steps, every field), as its page's link downloads it."""
    response = await browser.http.get(f"/sessions/{session_id}/export/")
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def reply_steps(data: dict[str, Any], message: int) -> list[dict[str, Any]]:
    """The model steps (no warm-up) of the run the user message at ``message`` started."""
    return [s for s in data["steps"] if s["turn_position"] == message and s["mode"] != "warm"]


def first_token(data: dict[str, Any], message: int) -> float:
    """The median time to first token of that run's steps, ms (the notes' "TTFT")."""
    return statistics.median(
        float(s["ttft_ms"]) for s in reply_steps(data, message) if s["ttft_ms"] is not None
    )


async def start_race(browser: Browser, session_id: str, text: str) -> int:
    """Click the race preset with ``text`` as its prompt: the new compare's id."""
    response = await browser.post(
        f"/sessions/{session_id}/compare/", {"preset": "race", "prompt": text}
    )
    match = COMPARE_RE.search(response.headers.get("location", ""))
    if response.status_code != 302 or match is None:
        raise RuntimeError(f"POST /sessions/{session_id}/compare/ answered {response.status_code}")
    return int(match[1])


async def run_compare(bench: Stack, browser: Browser, session_id: str, compare_id: int) -> None:
    """Open the compare page's socket, click "Run" (one round) and read until the round ended."""
    tab = browser.tab(bench.playground.ws_base, session_id)
    tab.path = f"/ws/sessions/{session_id}/compare/{compare_id}/"
    await tab.open()
    try:
        await send(tab, action="compare", target=str(compare_id), rounds="1")
        await tab.until_idle(wait=300)
    finally:
        await tab.close()


async def send(tab: Tab, **frame: str) -> None:
    """A ``ws-send`` form's frame (its fields and htmx's headers)."""
    await tab.send_frame(json.dumps({**frame, "HEADERS": {"HX-Request": "true"}}))


async def results(browser: Browser, session_id: str, compare_id: int) -> list[dict[str, str]]:
    """The compare page's results table: one row of ``data-*`` attributes per column."""
    page = await browser.http.get(f"/sessions/{session_id}/compare/{compare_id}/")
    page.raise_for_status()
    return [dict(ATTRIBUTE_RE.findall(row)) for row in RESULT_ROW_RE.findall(page.text)]


def checked(rows: list[dict[str, str]], steps: int) -> list[dict[str, str]]:
    """The race's three rows, in its order, each a run of every step."""
    found = [(row["transport"], row["store"] == "true") for row in rows]
    if found != list(COLUMNS):
        raise RuntimeError(f"expected the race's columns {COLUMNS}, got {found}")
    counts = [int(float(row["steps"])) for row in rows]
    if counts != [steps + 1] * len(COLUMNS):
        raise RuntimeError(f"expected {steps + 1} steps in each column, got {counts}")
    return rows


async def race(sizes: Sizes) -> list[Row]:
    """One round of the race on the research session at profile realistic."""
    name, steps = "race", sizes.research_steps
    async with stack(name, sim_args("realistic", sizes)) as bench:
        browser = bench.browser()
        await playground_run(bench, browser, WARMUP_STEPS)  # a fresh process's first run: untimed
        session_id = await research_session(browser, steps)
        compare_id = await start_race(browser, session_id, prompt(steps))
        with bench.playground.phase("race"):
            await run_compare(bench, browser, session_id, compare_id)
        ws, full, stored = checked(await results(browser, session_id, compare_id), steps)
        data = await export(browser, session_id)
        await browser.close()
    # Each column's user message, in the columns' order (positions are taken in that order).
    messages = sorted({s["turn_position"] for s in data["steps"] if s["mode"] != "warm"})
    labels = ("WebSocket", "HTTP store=false", "HTTP store=true")
    per_step = "; ".join(
        f"{label} {float(row['ms-per-step']):.0f} ms/step, TTFT {first_token(data, m):.0f} ms"
        for label, row, m in zip(labels, (ws, full, stored), messages, strict=True)
    )
    rows = []
    for label, http in (("store=false", full), ("store=true", stored)):
        value, baseline = float(ws["total-ms"]) / 1000, float(http["total-ms"]) / 1000
        saving = (1 - value / baseline) * 100
        rows.append(
            Row(
                name,
                f"run s, WebSocket vs HTTP {label} (columns at once)",
                value,
                baseline,
                Target("ratio", "<=", FASTER),
                note=f"WebSocket {saving:.1f} % faster than HTTP {label} (target ≥ 30 %)"
                + ("; " + per_step if label == "store=false" else ""),
            )
        )
    for metric, key in (
        ("upstream bytes/step", "bytes-per-step"),
        ("cached input tokens", "cached-tokens"),
    ):
        for label, http in (("store=false", full), ("store=true", stored)):
            rows.append(
                Row(name, f"{metric}, WebSocket vs HTTP {label}", float(ws[key]), float(http[key]))
            )
    return rows
