from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from playground import compare_views, forking, health, metrics_view, share_views, sidebar, views

urlpatterns = [
    path("", views.home, name="home"),
    path("sessions/new/", views.session_new, name="session-new"),
    path("sessions/import/", views.session_import, name="session-import"),
    path("sessions/", sidebar.session_search, name="session-search"),
    path("sessions/<uuid:session_id>/", views.session_detail, name="session"),
    path("sessions/<uuid:session_id>/rename/", sidebar.session_rename, name="session-rename"),
    path("sessions/<uuid:session_id>/delete/", sidebar.session_delete, name="session-delete"),
    path("sessions/<uuid:session_id>/pin/", sidebar.session_pin, name="session-pin"),
    path("sessions/<uuid:session_id>/settings/", views.session_settings, name="session-settings"),
    path("sessions/<uuid:session_id>/tools/", views.tool_save, name="tool-new"),
    path("sessions/<uuid:session_id>/tools/<int:tool_id>/", views.tool_save, name="tool-save"),
    path("sessions/<uuid:session_id>/tools/<int:tool_id>/form/", views.tool_form, name="tool-form"),
    path(
        "sessions/<uuid:session_id>/tools/<int:tool_id>/delete/",
        views.tool_delete,
        name="tool-delete",
    ),
    path("sessions/<uuid:session_id>/export/", views.session_export, name="session-export"),
    path("sessions/<uuid:session_id>/fork/", forking.session_fork, name="session-fork"),
    path("sessions/<uuid:session_id>/compare/", compare_views.compare_new, name="compare-new"),
    path(
        "sessions/<uuid:session_id>/compare/<int:compare_id>/",
        compare_views.compare_detail,
        name="compare",
    ),
    path("sessions/<uuid:session_id>/share/", share_views.share_create, name="share-new"),
    path(
        "sessions/<uuid:session_id>/share/<int:link_id>/revoke/",
        share_views.share_revoke,
        name="share-revoke",
    ),
    # A link is /s/#<token>: the fragment never reaches a server, so no access log holds it.
    path("s/", share_views.share_view, name="share-view"),
    path("s/<str:token>/", share_views.share_old_link, name="share-old-link"),
    path("metrics", metrics_view.metrics, name="metrics"),  # Prometheus's default path
    # A balancer's probes (docs/operations.md), without a slash as balancers write them.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Before the admin's own URLs, which would answer 404 for these.
    path("admin/inspector/", include("playground.inspector.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "playground.errors.bad_request"
