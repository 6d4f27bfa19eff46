"""``/metrics``: this process's Prometheus metrics (agents/metrics.py), for staff and a scraper.

Every daphne process has its own registry, so Prometheus scrapes each process on its own port
(docs/metrics.md). Anyone else gets 404, so the page's existence is not advertised.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest, start_http_server

# Set by a proxy (deploy/nginx.conf sets it on every request it passes on).
FORWARDED = "HTTP_X_FORWARDED_FOR"


def scraper(request: HttpRequest) -> bool:
    """A request from an allowed address, made straight to this process. Through a proxy the
    address is the proxy's own (127.0.0.1 behind nginx) or, with daphne's ``--proxy-headers``,
    the one the proxy says: a forwarded request is never let in by its address."""
    if FORWARDED in request.META:
        return False
    return request.META.get("REMOTE_ADDR") in settings.METRICS_ALLOWED_ADDRESSES


async def metrics(request: HttpRequest) -> HttpResponse:
    # Async: the collectors run on the event loop that changes what they count.
    if not scraper(request):
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            raise Http404
    # The classic text format, which every Prometheus reads; these names need no escaping.
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def serve_on_own_port() -> None:
    """With METRICS_PORT: this process's metrics on a port of its own, on the loopback only
    (prometheus_client's server, on a thread of its own: a scrape never waits on the loop)."""
    if settings.METRICS_PORT:
        start_http_server(settings.METRICS_PORT + settings.PLAYGROUND_PROCESS, addr="127.0.0.1")
