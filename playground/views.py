from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from agents.simulator.model import SCENARIOS


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    base_url = request.build_absolute_uri("/v1")
    return render(request, "home.html", {"scenarios": SCENARIOS, "base_url": base_url})
