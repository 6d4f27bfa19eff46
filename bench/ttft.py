"""Time to first token through the page: from the tab sending a message to the first text delta
of its reply arriving in the tab, against the direct SDK client creating the same response on
the same simulator (profile zero: the simulator answers at once, so what remains is the path)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agents.run.transcript import user_message
from bench.direct import DirectClient, direct_client
from bench.results import Row, Target
from bench.sizes import Sizes
from bench.stack import stack
from bench.stats import Sent, median, percentile, sends_of
from bench.streams import CHAT_FIELDS
from devtools.tabs import DELTA_RE, Tab

NAME = "ttft"
MESSAGE = "/chat 20 when the next spring tide comes"
WARM_UP = "/chat 5 warm up"


@dataclass
class Tries:
    """One side's tries: when each message left and when its first delta arrived."""

    sent: list[float] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)

    def add(self, sent: float, arrived: float) -> None:
        self.sent.append(sent)
        self.arrived.append(arrived)

    @property
    def ms(self) -> list[float]:
        return [(a - s) * 1000 for s, a in zip(self.sent, self.arrived, strict=True)]

    def split(self, logs: list[dict[str, Any]]) -> str:
        """Medians of the way to the simulator (message sent to the request's arrival there),
        through it (arrival to its first delta: the same model work on both sides) and back
        (that delta's send to its arrival), from the simulator's logs of the tries' responses."""
        firsts = sorted(min(s.at for s in sends) for sends in responses(logs).values())
        firsts = firsts[-len(self.sent) :]
        inside = [
            (r["first_token_ms"] - r["received_ms"]) / 1000
            for log in logs
            for r in log["log"]
            if r["first_token_ms"] is not None
        ][-len(self.sent) :]
        if len(firsts) != len(self.sent) or len(inside) != len(self.sent):
            return "no split (the simulator's logs are short)"
        tries = zip(self.sent, firsts, inside, self.arrived, strict=True)
        parts = [(f - i - s, i, a - f) for s, f, i, a in tries]
        there, through, back = (median([part[k] * 1000 for part in parts]) for k in range(3))
        return f"{there:.2f} ms there + {through:.2f} ms in the simulator + {back:.2f} ms back"


def responses(logs: list[dict[str, Any]]) -> dict[tuple[str, int], list[Sent]]:
    """The deltas the simulator sent, by connection and request."""
    found: dict[tuple[str, int], list[Sent]] = {}
    for log in logs:
        for sent in sends_of(log):
            found.setdefault((str(log["id"]), sent.request), []).append(sent)
    return found


async def through_page(tab: Tab, tries: Tries) -> None:
    """The tab sends the message; its reply's first text delta arrives."""
    turn = await tab.run(MESSAGE, wait=60)
    for frame in turn.frames:
        if DELTA_RE.search(frame.text):
            tries.add(turn.sent_at, frame.at)
            return
    raise RuntimeError("the reply showed no text")


async def direct(client: DirectClient, tries: Tries) -> None:
    """The direct client sends the create; its first delta event arrives."""
    sent_at = time.monotonic()
    response = await client.create([user_message(MESSAGE)])
    if not response.deltas:
        raise RuntimeError("the direct client's response had no delta")
    tries.add(sent_at, response.deltas[0][0])


async def ttft(sizes: Sizes) -> list[Row]:
    """Each side prewarmed and warmed up by a short reply, then ``sizes.ttft_tries`` replies
    each, alternating; both chain on their previous response, as a session does."""
    ours, theirs = Tries(), Tries()
    async with stack(NAME, ["--profile", "zero", "--record-sends"]) as bench:
        browser = bench.browser()
        session_id = await browser.new_session()
        before = await bench.connection_ids()
        tab = await browser.tab(bench.playground.ws_base, session_id).open()
        try:
            await bench.wait_warm(before)
            await tab.run(WARM_UP, wait=60)
            before_direct = await bench.connection_ids()
            async with direct_client(bench.sim.base_url, bench.api_key, CHAT_FIELDS) as client:
                await client.prewarm()
                await client.create([user_message(WARM_UP)])
                with bench.playground.phase("turns"):
                    for _ in range(sizes.ttft_tries):
                        await through_page(tab, ours)
                        await direct(client, theirs)
        finally:
            await tab.close()
            await browser.close()
        logs = await bench.new_logs(before, "websocket")
    page_logs = [log for log in logs if log["id"] in before_direct]
    direct_logs = [log for log in logs if log["id"] not in before_direct]
    value, baseline = median(ours.ms), median(theirs.ms)
    return [
        Row(
            NAME,
            f"ms from sending a message to its first text delta, median of {len(ours.sent)}",
            value,
            baseline,
            Target("added", "<=", 3.0, " ms"),
            note=f"adds {value - baseline:.2f} ms; page's first try {ours.ms[0]:.2f} ms, last "
            f"{ours.ms[-1]:.2f} ms; p90: page {percentile(ours.ms, 90):.2f} ms, "
            f"direct {percentile(theirs.ms, 90):.2f} ms; split by the simulator's logs, "
            f"page {ours.split(page_logs)}, direct {theirs.split(direct_logs)}; baseline: the "
            "direct SDK client on the same simulator, alternating with the tab",
        )
    ]
