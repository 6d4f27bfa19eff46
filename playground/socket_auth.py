"""The browser sockets' user, resolved after the handshake rather than before it.

Channels' ``AuthMiddleware`` loads the Django session and the user before the consumer runs, on
the one database thread every socket's connect work also queues on: under a storm of connects
each handshake waited for that queue, and daphne refuses a socket still in its handshake after
``--websocket_connect_timeout``. Here ``scope["user"]`` stays unresolved until the consumer,
having accepted the socket (and, for the session socket, inside its connect slot), awaits
:func:`authenticate`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from channels.auth import AuthMiddleware, UserLazyObject
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware
from django.contrib import auth
from django.utils.functional import empty

from agents import dbthread


class DeferredAuthMiddleware(AuthMiddleware):
    """``AuthMiddleware`` that leaves ``scope["user"]`` for :func:`authenticate`."""

    async def resolve_scope(self, scope: Any) -> None:
        return None


class SocketSessionMiddleware(SessionMiddleware):
    """Channels' ``SessionMiddleware`` without its wrapper around every ``send``: the wrapper
    saves a modified session on an HTTP response's start, which a WebSocket never sends, and
    it looked at the session before each frame of every stream."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)  # type: ignore[call-arg,misc]


def DeferredAuthMiddlewareStack(inner: Any) -> Any:
    return CookieMiddleware(SocketSessionMiddleware(DeferredAuthMiddleware(inner)))


def resolve_user(scope: Any) -> Any:
    """The socket's user (``AnonymousUser`` without a login), loaded once; synchronous: call it
    on the database thread (``agents.dbthread``), e.g. with the query it authorises."""
    user = scope.get("user")
    if isinstance(user, UserLazyObject) and user._wrapped is empty:
        # Django's own lookup. Not Channels' ``get_user``: it closes and reopens the database
        # thread's connection on every call, which a storm of connects pays a thousand times.
        user._wrapped = auth.get_user(SimpleNamespace(session=scope["session"]))  # type: ignore[arg-type]
    return user


async def authenticate(scope: Any) -> Any:
    """:func:`resolve_user` from async code, on the database thread."""
    return await dbthread.call(resolve_user, scope)
