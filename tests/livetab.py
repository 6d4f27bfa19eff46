"""A browser tab on a live server's session socket: a real WebSocket (``devtools.tabs``)."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection

from devtools.tabs import Socket, Tab


class LiveTab(Tab):
    """Opened with the snapshot read and applied to ``page``, from the server's own origin."""

    def __init__(self, base_url: str, session_id: str, cookie: str) -> None:
        super().__init__(session_id, cookie, server=base_url)

    @property
    def ws(self) -> ClientConnection | None:
        return self.connection.ws if isinstance(self.connection, Socket) else None
