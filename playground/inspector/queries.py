"""What the inspector reads: sessions with their metrics from the database and their live state
from the context store, filtered; one session's chain of responses, with its cache misses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Max, Q, QuerySet, Sum

from agents.live.inspection import LiveState, live_state
from agents.live.mailbox import ask_runner
from agents.live.store import context_store
from agents.models import Item, Session, Step
from agents.run import transcript
from playground import render

LISTED = 200  # the most recently active sessions the list considers
STATES = ("running", "connected", "idle grace", "closed")


@dataclass(frozen=True)
class Filters:
    state: str = ""  # one of STATES, or any
    owner: str = ""  # a username, "anonymous", or any
    search: str = ""  # part of the title, or the start of the id

    @classmethod
    def of(cls, data: dict[str, Any]) -> Filters:
        state = str(data.get("state", ""))
        return cls(
            state if state in STATES else "",
            str(data.get("owner", "")).strip()[:150],
            str(data.get("q", "")).strip()[:200],
        )


@dataclass
class SessionRow:
    session: Session
    state: LiveState
    steps: int
    hit_rate: float | None  # cached input tokens / input tokens, over its model steps
    tokens: int
    last_activity: datetime

    @property
    def owner(self) -> str:
        return self.session.owner.get_username() if self.session.owner else "anonymous"

    @property
    def status(self) -> str:
        return "running" if self.state.running else self.state.upstream


def _sessions(filters: Filters) -> QuerySet[Session]:
    sessions = Session.objects.select_related("owner")
    if filters.owner == "anonymous":
        sessions = sessions.filter(owner=None)
    elif filters.owner:
        sessions = sessions.filter(owner__username=filters.owner)
    if filters.search:
        match = Q(title__icontains=filters.search)
        if len(filters.search) >= 4:
            match |= Q(id__startswith=filters.search.lower())
        sessions = sessions.filter(match)
    model_steps = ~Q(steps__mode=Step.Mode.WARM)
    return sessions.annotate(
        model_steps=Count("steps", filter=model_steps),
        input_tokens=Sum("steps__input_tokens", filter=model_steps),
        cached_tokens=Sum("steps__cached_tokens", filter=model_steps),
        output_tokens=Sum("steps__output_tokens", filter=model_steps),
        last_step=Max("steps__created"),
    ).order_by("-updated")[:LISTED]


async def session_rows(filters: Filters) -> list[SessionRow]:
    sessions = [session async for session in _sessions(filters)]
    hot = await context_store().get_many([str(session.pk) for session in sessions])
    rows = []
    for session, values in zip(sessions, hot, strict=True):
        state = live_state(values)
        given: Any = session
        input_tokens = int(given.input_tokens or 0)
        rows.append(
            SessionRow(
                session,
                state,
                int(given.model_steps),
                int(given.cached_tokens or 0) / input_tokens if input_tokens else None,
                input_tokens + int(given.output_tokens or 0),
                max(session.updated, given.last_step or session.updated),
            )
        )
    if filters.state:
        rows = [row for row in rows if row.status == filters.state]
    rows.sort(key=lambda row: row.last_activity, reverse=True)
    return rows


@dataclass
class ChainLink:
    """One response of the session's chain, and why it was not a cache hit, if it was not."""

    step: Step
    follows: bool  # its previous_response_id is the response just before it
    miss: str = ""


def miss_reason(step: Step, previous: Step | None) -> str:
    """Why a step did not build on the upstream's cache (empty when it did)."""
    if step.mode == Step.Mode.DELTA:
        # Its new items (a message, tool outputs) are never cached yet: it misses only when the
        # previous response left a context and none of it was cached (the upstream lost it).
        left = previous.input_tokens + previous.output_tokens if previous else 0
        if left and step.input_tokens and not step.cached_tokens:
            return "delta, but nothing was cached"
        return ""
    if step.socket == Step.Socket.HTTP:
        return "HTTP: no connection cache"
    if step.mode == Step.Mode.WARM:
        return "warm-up: fills a new connection's cache" if step.socket == "fresh" else ""
    if previous is None:
        return "first response: full context"
    if step.socket == Step.Socket.FRESH:
        return "full context: a new connection (the previous one closed or was dropped)"
    if step.socket == Step.Socket.ROTATED:
        return "full context: the connection was rotated"
    if step.route == "full":
        return (
            "full context: no response cached on this connection leads to this branch, "
            "and none is stored"
        )
    return (
        "full context on the same connection: the upstream lost the previous response, "
        "or the settings or tools changed"
    )


@dataclass
class Detail:
    session: Session
    chain: list[ChainLink] = field(default_factory=list)
    items: int = 0
    context_items: int = 0
    context_bytes: int = 0


async def detail(session_id: str) -> Detail | None:
    session = await Session.objects.select_related("owner").filter(pk=session_id).afirst()
    if session is None:
        return None
    found = Detail(session)
    previous: Step | None = None
    seen: dict[str, Step] = {}
    async for step in Step.objects.filter(session=session).order_by("id"):
        # Forks chain from any earlier response (another lane's), not only the one before:
        # a delta is judged against the response it names.
        parent = seen.get(step.previous_response_id) if step.previous_response_id else None
        follows = parent is not None
        reason = miss_reason(step, parent if step.mode == Step.Mode.DELTA and parent else previous)
        found.chain.append(ChainLink(step, follows, reason))
        previous = step
        seen[step.response_id] = step
    # The context is the current branch's (agents/run/tree.py); the count is of every branch.
    path = set((await transcript.branch(session)).path)
    async for item in Item.objects.filter(session=session).only("position", "data", "in_context"):
        found.items += 1
        if item.in_context and item.position in path:
            found.context_items += 1
            found.context_bytes += len(json.dumps(item.data))
    return found


FRAMES_SHOWN = 100


async def detail_context(session_id: str) -> dict[str, Any] | None:
    """Everything the detail page shows, live: the chain, the state and the upstream frames
    (asked of the process that runs the session)."""
    found = await detail(session_id)
    if found is None:
        return None
    reply = await ask_runner(session_id, "inspect")
    inspection = reply.get("inspection") if reply else None
    frames = [
        {**frame, "time": datetime.fromtimestamp(frame["at"], UTC).strftime("%H:%M:%S.%f")[:-3]}
        for frame in (inspection or {}).get("frames", [])[-FRAMES_SHOWN:]
    ]
    return {
        "detail": found,
        "state": live_state(await context_store().get(session_id)),
        "inspection": inspection,
        "frames": frames,
        "waterfall": latest_waterfall([link.step for link in found.chain]),
    }


def latest_waterfall(steps: list[Step]) -> dict[str, Any] | None:
    """The latest run's waterfall, as the session page draws it."""
    runs = [step for step in steps if step.turn_position is not None]
    if not runs:
        return None
    latest = max(step.turn_position or 0 for step in runs)
    return {"waterfall": render.waterfall([s for s in runs if s.turn_position == latest])}
