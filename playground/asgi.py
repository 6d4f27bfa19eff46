"""ASGI entry point: Django over HTTP, the browser sockets, and (when it is the upstream) the
embedded simulator at /v1/, for this process alone (see ``playground.embedded``)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from playground import metrics_view, process_tuning, shutdown  # noqa: E402
from playground.embedded import LoopbackOnly, embedded_simulator, for_simulator  # noqa: E402
from playground.origin import SameOriginOnly  # noqa: E402
from playground.routing import websocket_urlpatterns  # noqa: E402
from playground.socket_auth import DeferredAuthMiddlewareStack  # noqa: E402
from playground.static_files import StaticFiles  # noqa: E402
from simulator.asgi import Receive, Scope, Send  # noqa: E402

simulator = embedded_simulator()
simulator_application = LoopbackOnly(simulator)

playground_application = ProtocolTypeRouter(
    {
        "http": StaticFiles(django_application),
        # The user is loaded after the handshake (playground.socket_auth): a storm of
        # connects must not keep handshakes waiting on the database.
        "websocket": SameOriginOnly(DeferredAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


# Last: what is loaded by now lives as long as the process (see the module).
process_tuning.tune()
shutdown.install()
metrics_view.serve_on_own_port()


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if for_simulator(scope):
        await simulator_application(scope, receive, send)
    else:
        await playground_application(scope, receive, send)  # type: ignore[arg-type]
