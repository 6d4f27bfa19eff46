"""ASGI entry point: Django over HTTP, the browser sockets, and the simulator mounted at /v1/."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (after Django is set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from agents.simulator import Simulator, SimulatorConfig  # noqa: E402
from agents.simulator.asgi import Receive, Scope, Send  # noqa: E402
from playground.origin import SameOriginOnly  # noqa: E402
from playground.routing import websocket_urlpatterns  # noqa: E402

SIMULATOR_PREFIX = "/v1/"

simulator = Simulator(
    SimulatorConfig.for_profile(settings.SIMULATOR_PROFILE, seed=settings.SIMULATOR_SEED)
)

playground_application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": SameOriginOnly(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] in ("http", "websocket") and scope["path"].startswith(SIMULATOR_PREFIX):
        await simulator(scope, receive, send)
    else:
        await playground_application(scope, receive, send)  # type: ignore[arg-type]
