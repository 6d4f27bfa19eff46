"""Scenario 7: reconnects at random points of long streams, on one process and across two.

A tab drops its socket at a random moment of a streaming reply and opens a new one, as a reload
or a network drop does, again and again; with two processes, each time to either of them. Each
reconnect is timed from opening the socket to the snapshot that replays the in-flight partial,
and every piece of text it shows is checked against what the simulator sent (``--record-sends``):
a piece that repeats text already shown is a duplicate, one that skips text is a gap.

Baselines from the same run: for the time, the raw server's first frame over a new socket; for
gaps and duplicates, a tab on the same session that never reconnects.
"""

from __future__ import annotations

import asyncio
import html
import logging
import random
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import connect

from bench.browser import Browser
from bench.results import Row, Target, not_run
from bench.scale import raw_server
from bench.sizes import Sizes
from bench.stack import Stack, Unavailable, stack
from bench.stats import percentile, sends_of
from devtools.page import Page
from devtools.tabs import DELTA_RE, Frame, Tab

log = logging.getLogger(__name__)

SCENARIO = "resume"
FIRST_REPLAY_MS = 50.0  # the target for the time to the first replayed delta


@dataclass
class Observation:
    """What one tab's socket showed: its pieces of live text in order, by item."""

    opened_at: float = 0.0
    replayed_ms: float | None = None  # to the snapshot, when it replayed a partial
    pieces: list[tuple[str, str]] = field(default_factory=list)

    def add(self, frame: Frame) -> None:
        for key, text in DELTA_RE.findall(frame.text):
            self.pieces.append((key, html.unescape(text)))


@dataclass
class Check:
    gaps: int = 0  # observations that skipped text
    duplicates: int = 0  # observations that showed text twice
    unknown: int = 0  # pieces of an item the simulator never sent (counted as gaps)


def check(observations: list[Observation], sent: dict[str, str]) -> Check:
    """Each observation's pieces must tile each item's sent text from its start, in order."""
    result = Check()
    for observation in observations:
        shown: dict[str, int] = {}
        gap = duplicate = False
        for key, piece in observation.pieces:
            truth = sent.get(key)
            if truth is None:
                result.unknown += 1
                gap = True
                continue
            at = shown.get(key, 0)
            if truth.startswith(piece, at):
                shown[key] = at + len(piece)
            elif 0 <= truth.rfind(piece, 0, at + len(piece) - 1) < at:
                duplicate = True
                shown[key] = at + len(piece)
            else:
                gap = True
                shown[key] = at + len(piece)
        result.gaps += gap
        result.duplicates += duplicate
    return result


async def texts_sent(bench: Stack) -> dict[str, str]:
    """Every item's text as the simulator streamed it, by item id."""
    summaries = (await bench.get("/_sim/connections"))["data"]
    parts: dict[str, list[str]] = {}
    for summary in summaries:
        for sent in sends_of(await bench.get(f"/_sim/connections/{summary['id']}")):
            parts.setdefault(sent.item, []).append(sent.delta)
    return {item: "".join(pieces) for item, pieces in parts.items()}


@dataclass
class Follower:
    """A tab that stays: the baseline for gaps and duplicates, and the one that types."""

    tab: Tab
    page: Page = field(default_factory=Page)
    seen: Observation = field(default_factory=Observation)
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        assert self.tab.first_frame is not None
        self.page.apply(self.tab.first_frame.text)
        self.seen.add(self.tab.first_frame)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            frame = await self.tab.recv_frame(None)
            self.page.apply(frame.text)
            self.seen.add(frame)
            self.changed.set()

    async def until(self, busy: bool, wait: float = 120) -> None:
        """Until the page's status line says busy (or ready)."""
        async with asyncio.timeout(wait):
            while self.page.busy is not busy:
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.tab.close()


async def reconnect_once(
    browser: Browser, ws_base: str, session_id: str, rng: random.Random
) -> Observation:
    """Open a socket, read for a random while, drop it."""
    observation = Observation(opened_at=time.monotonic())
    tab = browser.tab(ws_base, session_id)
    await tab.open()
    assert tab.first_frame is not None
    first = tab.first_frame
    observation.add(first)
    if observation.pieces:  # the snapshot replayed the in-flight partial
        observation.replayed_ms = (first.at - observation.opened_at) * 1000
    deadline = time.monotonic() + rng.uniform(0.0, 0.1)
    try:
        while (left := deadline - time.monotonic()) > 0:
            observation.add(await tab.recv_frame(left))
    except TimeoutError:
        pass
    await tab.close()
    return observation


@dataclass
class Outcome:
    observations: list[Observation]
    follower: list[Observation]
    sent: dict[str, str]

    @property
    def replayed_ms(self) -> list[float]:
        return [o.replayed_ms for o in self.observations if o.replayed_ms is not None]


async def reconnects(bench: Stack, sizes: Sizes, seed: int) -> Outcome:
    """``sizes.resume_reconnects`` reconnects during long replies, a few replies per session
    (so a snapshot renders a realistic transcript, not an ever longer one)."""
    rng = random.Random(seed)
    browser = bench.browser()
    observations: list[Observation] = []
    followers: list[Observation] = []
    bases = [playground.ws_base for playground in bench.playgrounds]
    try:
        while len(observations) < sizes.resume_reconnects:
            session_id = await browser.new_session()
            # The follower's process runs the session (the first socket claims it).
            follower = Follower(await browser.tab(bases[0], session_id).open())
            follower.start()
            try:
                for turn in range(sizes.resume_turns):
                    await follower.tab.send(f"/chat {sizes.resume_tokens} tide tables {turn}")
                    await follower.until(busy=True)
                    with bench.playground.phase("reconnects"):
                        while follower.page.busy and len(observations) < sizes.resume_reconnects:
                            base = rng.choice(bases)
                            observed = await reconnect_once(browser, base, session_id, rng)
                            observations.append(observed)
                    await follower.until(busy=False)
                    if len(observations) >= sizes.resume_reconnects:
                        break
            finally:
                await follower.close()
            followers.append(follower.seen)
            log.info("%s: %d reconnects", SCENARIO, len(observations))
    finally:
        await browser.close()
    return Outcome(observations, followers, await texts_sent(bench))


async def raw_first_frames(count: int) -> list[float]:
    """Milliseconds from opening a socket to the raw server to its first frame, ``count`` times."""
    times: list[float] = []
    async with raw_server() as raw:
        for _ in range(count):
            opened = time.monotonic()
            async with connect(raw.ws_url, compression=None, max_size=None) as socket:
                await socket.recv()
                times.append((time.monotonic() - opened) * 1000)
    return times


def rows_of(outcome: Outcome, raw_ms: list[float], where: str) -> list[Row]:
    replayed = outcome.replayed_ms
    mine, baseline = (
        check(outcome.observations, outcome.sent),
        check(outcome.follower, outcome.sent),
    )
    total = len(outcome.observations)
    rows = [
        Row(
            SCENARIO,
            f"ms from opening a socket to the replayed partial, p{q}, {where}",
            percentile(replayed, q),
            percentile(raw_ms, q),
            Target("value", "<=", FIRST_REPLAY_MS, " ms"),
            note=f"{len(replayed)} of {total} reconnects landed mid-reply (a partial to "
            "replay); baseline: the raw server's first frame",
        )
        for q in (50, 99)
    ]
    rows += [
        Row(
            SCENARIO,
            f"reconnects that skipped text (gaps), of {total}, {where}",
            mine.gaps,
            baseline.gaps,
            Target("value", "<=", 0),
            note=f"{mine.unknown} piece(s) of unknown items; baseline: a tab that stayed",
        ),
        Row(
            SCENARIO,
            f"reconnects that showed text twice (duplicates), of {total}, {where}",
            mine.duplicates,
            baseline.duplicates,
            Target("value", "<=", 0),
            note="baseline: a tab that stayed",
        ),
    ]
    return rows


def sim_args(sizes: Sizes) -> list[str]:
    return ["--profile", "zero", "--cost", f"tokens_per_s={sizes.resume_rate:g}", "--record-sends"]


async def resume(sizes: Sizes) -> list[Row]:
    raw_ms = await raw_first_frames(sizes.resume_reconnects)
    rows: list[Row] = []
    for processes, where in ((1, "one process"), (2, "two processes, either one")):
        try:
            async with stack(f"{SCENARIO}-{processes}", sim_args(sizes), processes) as bench:
                outcome = await reconnects(bench, sizes, seed=processes)
        except Unavailable as missing:
            for metric in ("reconnect: replayed partial p50/p99, gaps, duplicates",):
                rows.append(not_run(SCENARIO, f"{metric}, {where}", str(missing)))
            continue
        rows += rows_of(outcome, raw_ms, where)
    return rows
