"""Scenarios 3 and 4: the latency the playground adds to each token, and a burst's throughput.

Each delta is timed twice: when the simulator sent it (its ``--record-sends`` log, in
CLOCK_MONOTONIC, which every process on the host shares) and when the client had it. The browser
path and the direct SDK client read the same text from the same simulator, one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.bench.browser import Browser, Tab
from agents.bench.direct import direct_client
from agents.bench.results import Row, Target
from agents.bench.sizes import Sizes
from agents.bench.stack import Stack, stack
from agents.bench.stats import Delivery, Receipts, Sent, delivery, percentile, sends_of
from agents.transcript import user_message

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


async def through_playground(bench: Stack, browser: Browser, message: str) -> Stream:
    """One chat turn on a fresh session's page (prewarmed and warmed up by a short turn)."""
    session_id = await browser.new_session()
    before = await bench.connection_ids()
    tab = await Tab(browser, bench.playground.ws_base, session_id).open()
    try:
        await bench.wait_warm(before)
        await tab.turn("/chat 5 warm up", wait=60)
        with bench.playground.phase("turn"):
            turn = await tab.turn(message, wait=300)
    finally:
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


async def token_latency(sizes: Sizes) -> list[Row]:
    name, rate = "token-latency", sizes.latency_rate
    args = ["--profile", "zero", "--cost", f"tokens_per_s={rate:g}", "--record-sends"]
    message = f"/chat {sizes.latency_tokens} tide tables of the Atlantic coast"
    async with stack(name, args) as bench:
        browser = bench.browser()
        ours = await through_playground(bench, browser, message)
        theirs = await direct(bench, message)
        await browser.close()
    rows = []
    for q, limit in ((50, 1.0), (99, 5.0)):
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
            Target("ratio", ">=", 0.8),
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
