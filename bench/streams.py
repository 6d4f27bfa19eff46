"""Scenarios 3 and 4: the latency the playground adds to each token, and a burst's throughput.

Each delta is timed twice: when the simulator sent it (its ``--record-sends`` log, in
CLOCK_MONOTONIC, which every process on the host shares) and when the client had it. The browser
path and the direct SDK client read the same text from the same simulator, one after the other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agents.run.transcript import user_message
from bench.browser import Browser
from bench.direct import direct_client
from bench.results import Row, Target, not_run
from bench.sizes import Sizes
from bench.stack import Stack, Unavailable, stack
from bench.stats import Delivery, Receipts, Sent, delivery, percentile, sends_of
from devtools.tabs import Tab

CHAT_FIELDS = {
    "model": "sim",
    "store": False,
}  # a new session's defaults: no tools, no instructions


@dataclass
class Stream:
    delivery: Delivery
    sends: list[Sent]
    receipts: Receipts

    @property
    def throughput(self) -> float:
        """Deltas per second from the simulator's first send to the client's last receipt."""
        last = max(at for entries in self.receipts.values() for at, _ in entries)
        return len(self.sends) / (last - self.sends[0].at)


def last_request(sends: list[Sent]) -> list[Sent]:
    final = max(sent.request for sent in sends)
    return [sent for sent in sends if sent.request == final]


async def drain(tab: Tab) -> None:
    """Read a tab's frames as its page would, until cancelled."""
    while True:
        await tab.recv(None)


async def through_playground(bench: Stack, browser: Browser, message: str) -> Stream:
    """One chat turn on a fresh session's page (prewarmed and warmed up by a short turn).

    With several processes, a first tab on the first process makes it the session's owner, and
    the measured tab is on the last one: its deltas come in batches through the channel layer.
    """
    session_id = await browser.new_session()
    before = await bench.connection_ids()
    owner = tab = await browser.tab(bench.playground.ws_base, session_id).open()
    draining: asyncio.Task[None] | None = None
    if len(bench.playgrounds) > 1:
        draining = asyncio.create_task(drain(owner))
        tab = await browser.tab(bench.playgrounds[-1].ws_base, session_id).open()
    try:
        await bench.wait_warm(before)
        await tab.run("/chat 5 warm up", wait=60)
        with bench.playground.phase("turn"):
            turn = await tab.run(message, wait=300)
    finally:
        if draining is not None:
            draining.cancel()
            await owner.close()
        await tab.close()
    (log,) = await bench.new_logs(before)
    sends = last_request(sends_of(log))
    receipts = turn.receipts()
    return Stream(delivery(sends, receipts, turn.texts()), sends, receipts)


async def direct(bench: Stack, message: str) -> Stream:
    before = await bench.connection_ids()
    async with direct_client(bench.sim.base_url, bench.api_key, CHAT_FIELDS) as client:
        await client.prewarm()
        response = await client.create([user_message(message)])
    (log,) = await bench.new_logs(before)
    sends = last_request(sends_of(log))
    receipts = response.receipts()
    return Stream(delivery(sends, receipts, response.texts()), sends, receipts)


def errors_note(ours: Stream, theirs: Stream) -> str:
    return (
        f"{len(ours.sends)} deltas; playground: {ours.delivery.missing} missing, "
        f"{ours.delivery.wrong_items} item(s) with wrong text; direct: "
        f"{theirs.delivery.missing} missing, {theirs.delivery.wrong_items} wrong"
    )


async def latencies(name: str, sizes: Sizes, processes: int = 1) -> tuple[Stream, Stream]:
    """The playground's stream and the direct client's, of the same text at the same rate."""
    rate = sizes.latency_rate
    args = ["--profile", "zero", "--cost", f"tokens_per_s={rate:g}", "--record-sends"]
    message = f"/chat {sizes.latency_tokens} tide tables of the Atlantic coast"
    async with stack(name, args, processes) as bench:
        browser = bench.browser()
        ours = await through_playground(bench, browser, message)
        theirs = await direct(bench, message)
        await browser.close()
    return ours, theirs


def latency_rows(
    name: str, ours: Stream, theirs: Stream, rate: float, limits: tuple[float, float]
) -> list[Row]:
    rows = []
    for q, limit in zip((50, 99), limits, strict=True):
        value = percentile(ours.delivery.latencies_ms, q)
        baseline = percentile(theirs.delivery.latencies_ms, q)
        rows.append(
            Row(
                name,
                f"p{q} ms from simulator send to client, at {rate:g} tokens/s",
                value,
                baseline,
                Target("added", "<=", limit, " ms"),
                note=f"adds {value - baseline:.2f} ms; " + errors_note(ours, theirs),
            )
        )
    return rows


async def token_latency(sizes: Sizes) -> list[Row]:
    ours, theirs = await latencies("token-latency", sizes)
    return latency_rows("token-latency", ours, theirs, sizes.latency_rate, (0.5, 5.0))


async def token_latency_two_processes(sizes: Sizes) -> list[Row]:
    """The same with the tab on a process that does not run the session: the batches through
    the channel layer may add at most 50 ms (``FANOUT_INTERVAL_MS`` is 25)."""
    name = "token-latency-2p"
    try:
        ours, theirs = await latencies(name, sizes, processes=2)
    except Unavailable as missing:
        return [not_run(name, f"p{q} ms, tab on the other process", str(missing)) for q in (50, 99)]
    return latency_rows(name, ours, theirs, sizes.latency_rate, (50.0, 50.0))


async def token_burst(sizes: Sizes) -> list[Row]:
    name = "token-burst"
    message = f"/chat {sizes.burst_tokens} the history of tide prediction"
    async with stack(name, ["--profile", "zero", "--record-sends"]) as bench:
        browser = bench.browser()
        ours = await through_playground(bench, browser, message)
        theirs = await direct(bench, message)
        await browser.close()
    return [
        Row(
            name,
            f"deltas/s, one {len(ours.sends):,}-delta response at full speed",
            ours.throughput,
            theirs.throughput,
            Target("ratio", ">=", 0.9),
            note="from the simulator's first send to the client's last receipt",
        ),
        Row(
            name,
            "deltas missing, or items whose text differs from what was sent",
            ours.delivery.errors,
            theirs.delivery.errors,
            Target("value", "<=", 0),
            note=errors_note(ours, theirs),
        ),
    ]
