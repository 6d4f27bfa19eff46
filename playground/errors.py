"""The pages of refused requests when DEBUG is off (templates/400.html, 404.html, 500.html)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.shortcuts import render

logger = logging.getLogger("playground.hosts")

HOST_SHOWN_CHARS = 253  # the longest DNS name; a longer Host header is cut for the page and log


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400. A Host that is not in ALLOWED_HOSTS gets a page naming the setting (on a LAN, the
    usual first surprise), and the operator gets a log line naming the variable to set."""
    refused_host = None
    if isinstance(exception, DisallowedHost):
        # Never request.get_host(): it raises DisallowedHost again.
        # The name as ALLOWED_HOSTS lists it: without the port.
        host, _ = split_domain_port(request.META.get("HTTP_HOST", "")[:HOST_SHOWN_CHARS])
        refused_host = host or request.META.get("HTTP_HOST", "")[:HOST_SHOWN_CHARS]
        logger.warning(
            "Refused a request for host %r: it is not in ALLOWED_HOSTS (%s). To serve it, add it "
            "to the ALLOWED_HOSTS environment variable (comma-separated) and restart.",
            refused_host,
            ",".join(settings.ALLOWED_HOSTS),
        )
    return render(request, "400.html", {"refused_host": refused_host}, status=400)
