"""Regenerate after a long run: a fork from a cached response costs what a plain next message
costs, not a resend of the whole context (agents/upstream/delta.py, route "lane")."""

from __future__ import annotations

import statistics
from typing import Any

from bench.agentrun import INSTRUCTIONS, prompt, research_session
from bench.browser import SESSION_RE, Browser
from bench.overhead import sim_args
from bench.race import export, reply_steps, send
from bench.results import Row, Target
from bench.sizes import Sizes
from bench.stack import Stack, stack

FOLLOW_UP = "/chat 40 sum up what the notes found"  # a plain message: one step, no tool calls
REPEATS = 3  # rounds: a follow-up, a regenerate of its reply, a fork sending it in full
NEAR = 1.10  # a regenerate's first step costs at most this much of the plain follow-ups''


def user_message(data: dict[str, Any], text: str) -> dict[str, Any]:
    """The (last) user message item with ``text``, from a session's export."""
    content = [{"type": "input_text", "text": text}]
    found: list[dict[str, Any]] = [
        item for item in data["items"] if item["data"].get("content") == content
    ]
    if not found:
        raise RuntimeError(f"no user message {text!r} in the session")
    return found[-1]


def replies(data: dict[str, Any], message: int) -> list[dict[str, Any]]:
    """The first item of each reply to the user message at ``message``, oldest first: the
    original, then each regenerate's."""
    found = [item for item in data["items"] if item["parent"] == message]
    return sorted(found, key=lambda item: item["position"])


def first_steps(data: dict[str, Any], message: int) -> list[dict[str, Any]]:
    """The first step of each reply (a reply's first item is its first step's)."""
    return [checked(data["steps"][item["step"]]) for item in replies(data, message)]


def checked(step: dict[str, Any]) -> dict[str, Any]:
    if step["status"] != "completed" or step["ttft_ms"] is None:
        raise RuntimeError(f"a step ended {step['status']} (TTFT {step['ttft_ms']})")
    return step


async def full_create(bench: Stack, browser: Browser, session_id: str, upto: int) -> dict[str, Any]:
    """Fork the session after item ``upto`` and send the follow-up there over HTTP with
    ``store=false``: its step is the same context sent whole (a WebSocket fork would warm up with
    it, generate: false, and its step would be a cache hit)."""
    response = await browser.post(f"/sessions/{session_id}/fork/", {"target": str(upto)})
    match = SESSION_RE.search(response.headers.get("HX-Redirect", ""))
    if response.status_code != 204 or match is None:
        raise RuntimeError(f"POST /sessions/{session_id}/fork/ answered {response.status_code}")
    fork_id = match[1]
    await browser.save_settings(fork_id, instructions=INSTRUCTIONS, transport="http", store=False)
    tab = await browser.tab(bench.playground.ws_base, fork_id).open()
    try:
        await tab.run(FOLLOW_UP)
    finally:
        await tab.close()
    data = await export(browser, fork_id)
    return checked(reply_steps(data, user_message(data, FOLLOW_UP)["position"])[0])


async def fork(sizes: Sizes) -> list[Row]:
    """The research run through the page, then rounds of a plain follow-up and a regenerate of
    its reply; the same follow-up with the full context in forks of the session, for
    comparison."""
    name, steps = "fork", sizes.research_steps
    async with stack(name, sim_args("realistic", sizes)) as bench:
        browser = bench.browser()
        session_id = await research_session(browser, steps)
        before = await bench.connection_ids()
        tab = await browser.tab(bench.playground.ws_base, session_id).open()
        plain: list[dict[str, Any]] = []
        regenerated: list[dict[str, Any]] = []
        parents: list[int] = []
        try:
            await bench.wait_warm(before)
            await tab.run(prompt(steps), wait=300)
            for _ in range(REPEATS):
                await tab.run(FOLLOW_UP)
                data = await export(browser, session_id)
                follow_up = user_message(data, FOLLOW_UP)
                reply = replies(data, follow_up["position"])[-1]["position"]
                await send(tab, action="regenerate", target=str(reply))
                await tab.until_idle()
                data = await export(browser, session_id)
                first, *again = first_steps(data, follow_up["position"])
                if len(again) != 1:
                    raise RuntimeError(f"expected one regenerated reply, got {len(again)}")
                plain.append(first)
                regenerated += again
                parents.append(follow_up["parent"])
        finally:
            await tab.close()
        full = [await full_create(bench, browser, session_id, upto) for upto in parents]
        await browser.close()
    return rows(name, plain, regenerated, full)


def rows(
    name: str,
    plain: list[dict[str, Any]],
    regenerated: list[dict[str, Any]],
    full: list[dict[str, Any]],
) -> list[Row]:
    def median(steps: list[dict[str, Any]], field: str) -> float:
        return float(statistics.median(step[field] for step in steps))

    def cached(step: dict[str, Any]) -> bool:
        return bool(step["route"] == "lane" and step["cached_tokens"] > 0)

    def how(steps: list[dict[str, Any]]) -> str:
        return ", ".join(
            f"{s['mode']} {s['route']} ({s['cached_tokens']:,} cached, TTFT {s['ttft_ms']:.0f} ms)"
            for s in steps
        )

    routes = f"plain follow-ups: {how(plain)}; their regenerates: {how(regenerated)}"
    whole = (
        f"full create: mode {full[0]['mode']}, route {full[0]['route']}, over HTTP store=false "
        "(its TTFT has the request's cost, 25 ms at profile realistic), "
        f"median of {len(full)} forks"
    )
    bytes_, ttft = median(regenerated, "bytes_sent"), median(regenerated, "ttft_ms")
    of = f"medians of {len(regenerated)}"
    return [
        Row(
            name,
            f"regenerate's first step on a cached route (lane), % (of {len(regenerated)})",
            100.0 * sum(cached(s) for s in regenerated) / len(regenerated),
            100.0 * sum(cached(s) for s in plain) / len(plain),
            Target("value", ">=", 100.0, " %"),
            note=routes,
        ),
        Row(
            name,
            f"regenerate upstream bytes, vs a plain follow-up step ({of})",
            bytes_,
            median(plain, "bytes_sent"),
            Target("ratio", "<=", NEAR),
            note="each sends only the user message after a cached response (the follow-up: its "
            "run's parent, on the lane before; the regenerate: the same one, on a new lane)",
        ),
        Row(
            name,
            f"regenerate TTFT ms, vs a plain follow-up step ({of})",
            ttft,
            median(plain, "ttft_ms"),
            Target("ratio", "<=", NEAR),
        ),
        Row(
            name,
            "regenerate upstream bytes, vs a full-context create",
            bytes_,
            median(full, "bytes_sent"),
            note=whole,
        ),
        Row(name, "regenerate TTFT ms, vs a full-context create", ttft, median(full, "ttft_ms")),
    ]
