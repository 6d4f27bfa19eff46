"""The durable record of a session: its settings, its transcript items and its upstream steps."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models


class Session(models.Model):
    """One conversation with an agent; owned by a user, or by an anonymous browser session."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    # The Django session key of an anonymous owner (empty when `owner` is set).
    browser_key = models.CharField(max_length=64, blank=True, db_index=True)
    title = models.CharField(max_length=200, default="New session")
    model = models.CharField(max_length=100)
    instructions = models.TextField(blank=True)
    store = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated"]

    def __str__(self) -> str:
        return self.title

    def request_fields(self) -> dict[str, Any]:
        """The non-input fields of every ``response.create`` this session sends."""
        fields: dict[str, Any] = {"model": self.model, "store": self.store}
        if self.instructions:
            fields["instructions"] = self.instructions
        return fields


class Step(models.Model):
    """One upstream response (a warm-up or a model step) and what it cost."""

    class Mode(models.TextChoices):
        WARM = "warm"
        CREATE = "create"
        DELTA = "delta"

    class Socket(models.TextChoices):
        FRESH = "fresh"
        REUSED = "reused"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="steps")
    response_id = models.CharField(max_length=100, blank=True)
    previous_response_id = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices)
    socket = models.CharField(max_length=10, choices=Socket.choices)
    status = models.CharField(max_length=20)  # completed, incomplete, failed, stopped
    bytes_sent = models.PositiveIntegerField(default=0)
    ttft_ms = models.FloatField(null=True)
    duration_ms = models.FloatField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
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
    position = models.PositiveIntegerField()
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
