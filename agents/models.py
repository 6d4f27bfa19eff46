"""The durable record of a session: its settings, its transcript items and its upstream steps."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

DEFAULT_TITLE = "New session"
TRANSPORTS = [
    ("websocket", "WebSocket (one socket, deltas)"),
    ("http", "HTTP (one request per step)"),
]
AUTO_TITLE_CHARS = 60  # what a session's first message gives its default title (about)


def title_from_message(text: str, limit: int = AUTO_TITLE_CHARS) -> str:
    """A title from a user's message: its whitespace collapsed, cut at a word boundary with an
    ellipsis when longer than ``limit`` characters ("" for a blank message)."""
    words = " ".join(text.split())
    if len(words) <= limit:
        return words
    cut = words[: limit + 1]
    space = cut.rfind(" ")
    # A word longer than half the title is cut where the limit falls, not dropped whole.
    head = cut[:space] if space > limit // 2 else words[:limit]
    return head.rstrip(" ,;:.-") + "…"


class Session(models.Model):
    """One conversation with an agent; owned by a user, or by an anonymous browser session."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    # The SHA-256 (hex) of an anonymous owner's Django session key, never the key itself
    # (playground/access.py); empty when `owner` is set.
    browser_key = models.CharField(max_length=64, blank=True, db_index=True)
    title = models.CharField(max_length=200, default=DEFAULT_TITLE)
    model = models.CharField(max_length=100)
    instructions = models.TextField(blank=True)
    store = models.BooleanField(default=False)
    transport = models.CharField(max_length=10, choices=TRANSPORTS, default="websocket")
    max_steps = models.PositiveSmallIntegerField(
        default=25, validators=[MinValueValidator(1), MaxValueValidator(200)]
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # The fencing token of the runner that may write the transcript (agents/live/lease.py).
    fence = models.PositiveBigIntegerField(default=0, editable=False)
    # Listed first in the sidebar (playground/sidebar.py).
    pinned = models.BooleanField(default=False)
    # The transcript is a tree (agents/run/tree.py): the branch shown and continued runs through
    # this item's position, then down its newest children. None: the newest line of all.
    head = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # A session forked from another's response: where it came from (playground/forking.py).
    forked_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks"
    )

    class Meta:
        ordering = ["-pinned", "-updated"]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Saving a form must never write back a fence read before a runner raised it.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if f.name not in ("id", "fence")
            ]
        super().save(*args, **kwargs)

    def request_fields(self, tools: list[Tool] | None = None) -> dict[str, Any]:
        """The non-input fields of every ``response.create`` this session sends."""
        fields: dict[str, Any] = {"model": self.model, "store": self.store}
        if self.instructions:
            fields["instructions"] = self.instructions
        if tools:
            fields["tools"] = [tool.definition() for tool in tools]
        return fields


class Tool(models.Model):
    """A function the session's agent may call, and how the playground answers it."""

    class Mode(models.TextChoices):
        BUILTIN = "builtin", "Built-in (runs on the server)"
        MOCK = "mock", "Mock (a canned output)"
        MANUAL = "manual", "Manual (a person types the output)"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(
        max_length=64,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9_-]+$", "Use letters, digits, _ and - only (as the API does)."
            )
        ],
    )
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=dict)
    strict = models.BooleanField(default=False)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.MOCK)
    builtin = models.CharField(max_length=64, blank=True)
    mock_output = models.TextField(blank=True)
    requires_approval = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["session", "name"], name="tool_name_unique")]

    def __str__(self) -> str:
        return self.name

    def definition(self) -> dict[str, Any]:
        """The tool as the Responses API's ``tools`` list wants it."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters or {"type": "object", "properties": {}},
            "strict": self.strict,
        }


class Note(models.Model):
    """The built-in ``notes`` tool's memory, per session."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="notes")
    key = models.CharField(max_length=200)
    value = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "key"], name="note_key_unique")]

    def __str__(self) -> str:
        return self.key


class Step(models.Model):
    """One upstream response (a warm-up or a model step) and what it cost."""

    class Mode(models.TextChoices):
        WARM = "warm"
        CREATE = "create"
        DELTA = "delta"

    class Socket(models.TextChoices):
        FRESH = "fresh"
        REUSED = "reused"
        ROTATED = "rotated"  # the first step on a socket that replaced an old one
        HTTP = "http"  # no socket: one HTTP request

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="steps")
    response_id = models.CharField(max_length=100, blank=True)
    previous_response_id = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices)
    socket = models.CharField(max_length=10, choices=Socket.choices)
    status = models.CharField(max_length=20)  # completed, incomplete, failed, stopped
    # The session's model when the step ran (what prices it); empty for steps from before.
    model = models.CharField(max_length=100, blank=True, default="")
    bytes_sent = models.PositiveIntegerField(default=0)
    ttft_ms = models.FloatField(null=True)
    duration_ms = models.FloatField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    retries = models.PositiveSmallIntegerField(default=0)
    # How the request found its parent (agents/upstream/delta.py ROUTES): the socket's own lane,
    # another lane's latest response, a stored response, or none (the full context).
    route = models.CharField(max_length=10, blank=True, default="")
    lane = models.CharField(max_length=40, blank=True, default="")  # the stream_id ("" default)
    stored = models.BooleanField(default=False)  # asked with store=true: found again by id
    # Time spent answering this step's function calls (tools, people).
    tool_ms = models.FloatField(default=0)
    # For the waterfall: the position of the user message that started the run, and when this
    # step started, in ms since then.
    turn_position = models.PositiveIntegerField(null=True)
    started_ms = models.FloatField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.mode} {self.response_id or '(no id)'}"


class Item(models.Model):
    """A transcript item, stored in the Responses API's own item shape."""

    class Status(models.TextChoices):
        COMPLETED = "completed"
        STOPPED = "stopped"  # the user stopped the run while this item streamed
        INTERRUPTED = "interrupted"  # the upstream failed while this item streamed

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()  # insertion order in the session, over all branches
    # The position of the item this one follows on its branch (None: the first message).
    parent = models.PositiveIntegerField(null=True, blank=True)
    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.SET_NULL)
    data = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.COMPLETED)
    # False for a partial item the upstream could not accept back (an unfinished function call).
    in_context = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "position"], name="item_position_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.position}"

    @property
    def kind(self) -> str:
        return str(self.data.get("type", "message"))

    @property
    def role(self) -> str:
        return str(self.data.get("role", ""))

    @property
    def text(self) -> str:
        """The item's readable text (message parts joined; a call's name and arguments)."""
        if self.kind == "message":
            content = self.data.get("content", "")
            if isinstance(content, str):
                return content
            return "".join(str(p.get("text", p.get("refusal", ""))) for p in content)
        if self.kind == "function_call":
            return f"{self.data.get('name')}({self.data.get('arguments', '')})"
        return str(self.data.get("output", ""))


class ShareLink(models.Model):
    """A read-only capability URL for a session. Only the token's SHA-256 is kept: the URL is
    shown once, when it is created, and cannot be recovered from the database."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=100, blank=True)
    include_instructions = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)  # None: never
    revoked = models.DateTimeField(null=True, blank=True)
    views = models.PositiveIntegerField(default=0)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.label or f"link {self.pk}"


class Compare(models.Model):
    """An experiment: one prompt run side by side through 2-4 configurations (its columns).
    Each run of it gives every column a branch of the session (agents/live/compare.py)."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="compares")
    prompt = models.TextField()
    # The position the columns' messages follow (the session's branch tip when it was made).
    after = models.PositiveIntegerField(null=True, blank=True)
    preset = models.CharField(max_length=20, blank=True)  # "race", or "" for a custom one
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.prompt[:60]


class Column(models.Model):
    """One configuration of a compare; the session's tools it may call are named in ``tools``."""

    compare = models.ForeignKey(Compare, on_delete=models.CASCADE, related_name="columns")
    index = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=60)
    model = models.CharField(max_length=100)
    instructions = models.TextField(blank=True)
    transport = models.CharField(max_length=10, choices=TRANSPORTS, default="websocket")
    store = models.BooleanField(default=False)
    max_steps = models.PositiveSmallIntegerField(
        default=25, validators=[MinValueValidator(1), MaxValueValidator(200)]
    )
    tools = models.JSONField(default=list)

    class Meta:
        ordering = ["index"]

    def __str__(self) -> str:
        return self.label


class Lap(models.Model):
    """One column's run in one round of its compare: the branch that starts at ``message``."""

    column = models.ForeignKey(Column, on_delete=models.CASCADE, related_name="laps")
    round = models.PositiveSmallIntegerField()
    message = models.PositiveIntegerField()  # the position of the lap's user message
    status = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["round", "column__index"]

    def __str__(self) -> str:
        return f"{self.column} round {self.round}"
