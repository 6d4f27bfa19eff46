"""A browser tab on a live server's session socket: a real WebSocket (``devtools.tabs``)."""

from __future__ import annotations

from contextlib import suppress

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from devtools.tabs import Socket, Tab


class LiveTab(Tab):
    """Opened with the snapshot read and applied to ``page``, from the server's own origin."""

    def __init__(self, base_url: str, session_id: str, cookie: str) -> None:
        super().__init__(session_id, cookie, server=base_url)

    @property
    def ws(self) -> ClientConnection | None:
        return self.connection.ws if isinstance(self.connection, Socket) else None


async def drain_and_close(*tabs: Tab) -> None:
    """Close the tabs, each after reading what it has left. A tab that stopped reading has over
    16 frames queued, and websockets' flow control has paused its socket's reading: it would
    not see the server's close frame (or a killed server's end of stream) and close() would
    wait out its 10 s close_timeout."""
    for tab in tabs:
        with suppress(TimeoutError, ConnectionClosed):
            while True:
                await tab.recv(0.1)
        await tab.close()
