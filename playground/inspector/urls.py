"""The inspector's pages, and the upstream page, mounted at /admin/inspector/ and guarded by the
admin's own check."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.urls import path

from playground.inspector import upstream, views

urlpatterns = [
    path("", admin.site.admin_view(views.session_list), name="inspector"),
    # Async (its probe runs on the server's loop): the same staff check as the admin's.
    path("upstream/", staff_member_required(upstream.upstream), name="inspector-upstream"),
    path(
        "<uuid:session_id>/", admin.site.admin_view(views.session_detail), name="inspector-session"
    ),
    # Async: the admin's own wrapper is for sync views; this check is the same one.
    path(
        "<uuid:session_id>/action/",
        staff_member_required(views.session_action),
        name="inspector-action",
    ),
    path(
        "<uuid:session_id>/export.json",
        admin.site.admin_view(views.session_export),
        name="inspector-export",
    ),
]
