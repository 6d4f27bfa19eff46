"""What travels on the channel layer between processes and sockets, each name defined once.

Groups: every socket on a session joins ``session_group`` (the feed's batches, settings changes,
staff closing the sockets); every viewer of a share link joins ``share_group`` (its revocation).
Channel messages are typed here; Channels dispatches each to the consumer method named by its
``type`` with the dot made an underscore (``feed.batch`` → ``feed_batch``).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

FEED_BATCH: Literal["feed.batch"] = "feed.batch"
SESSION_CHANGED: Literal["session.changed"] = "session.changed"
SESSION_CLOSE: Literal["session.close"] = "session.close"
OWNER_LEFT: Literal["owner.left"] = "owner.left"
SHARE_REVOKED: Literal["share.revoked"] = "share.revoked"
RUNNER_COMMAND: Literal["runner.command"] = "runner.command"
RUNNER_REPLY: Literal["runner.reply"] = "runner.reply"


def session_group(session_id: str) -> str:
    return f"session.{session_id}"


def feed_group(session_id: str) -> str:
    """The owner's feed batches (FeedBatch): only sockets that follow the session from another
    process are in it. Tabs on the owner's process get each event from the runner itself; in
    the feed group they would make their process receive every batch of its own sessions too,
    a queue that grows with its streams and delays the batches of the sessions it follows."""
    return f"feed.{session_id}"


def share_group(link_id: int) -> str:
    return f"share.{link_id}"


class FeedBatch(TypedDict):
    """The owner's feed, after event ``after``: ``events`` are ``[seq, encoded event]``."""

    type: Literal["feed.batch"]
    epoch: str
    after: int
    events: list[tuple[int, dict[str, Any]]]


class SessionChanged(TypedDict):
    """A view changed the session's settings or tools: tabs say so, the runner rewarms."""

    type: Literal["session.changed"]
    text: str


class SessionClose(TypedDict):
    """Staff closes every socket on the session; the pages reconnect."""

    type: Literal["session.close"]
    reason: str


class OwnerLeft(TypedDict):
    """The session's runner closed and released its lease (a restart, idleness): followers
    elsewhere look at the lease now, not at their next beat, and one takes the session over."""

    type: Literal["owner.left"]


class ShareRevoked(TypedDict):
    type: Literal["share.revoked"]


class RunnerCommand(TypedDict, total=False):
    """A tab or staff on another process, to the process that runs the session (its mailbox)."""

    type: Literal["runner.command"]
    session: str
    action: str
    reply_to: str
    message: str
    target: str  # the call an answer is for, or the item an edit, regenerate or switch is about
    since: str


class RunnerReply(TypedDict, total=False):
    """The runner's answer: ``problem`` is ``[code, text]`` when it could not act."""

    type: Literal["runner.reply"]
    problem: list[str] | None
    inspection: dict[str, Any]
