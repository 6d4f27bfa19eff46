"""Sessions in Django's admin: read-only, each linked to its live page in the inspector."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from agents.models import Session


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # not generic at run time
    list_display = ("title", "owner", "model", "transport", "updated", "inspect")
    list_filter = ("transport",)
    search_fields = ("title", "id")
    # The transcript is written by runners only: the admin shows, it does not edit. Nothing of
    # an anonymous owner's browser key is shown, not even its hash.
    readonly_fields = ("id", "owner", "title", "model", "transport", "created")
    fields = readonly_fields
    exclude = ("browser_key",)

    @admin.display(description="Inspector")
    def inspect(self, session: Session) -> str:
        return format_html('<a href="{}">live</a>', reverse("inspector-session", args=[session.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
