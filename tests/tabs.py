"""A browser tab on a session over the real ASGI app in this process (``devtools.tabs``), and the
anonymous browsers and sessions it opens."""

from __future__ import annotations

import re
from typing import Any

from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore

from agents.models import Session
from devtools.tabs import ORIGIN, InProcess
from devtools.tabs import Tab as PageTab
from playground.access import browser_key_hash

CODE_RE = re.compile(r'id="notice"[^>]*data-code="([^"]*)"')


async def new_browser() -> str:
    """A fresh anonymous Django session; its key is the browser's ``sessionid`` cookie."""
    store = SessionStore()
    await store.acreate()
    return str(store.session_key)


async def new_session(browser_key: str, **fields: Any) -> Session:
    """A session of the anonymous browser whose session key is ``browser_key``."""
    owner = browser_key_hash(browser_key)
    return await Session.objects.acreate(browser_key=owner, model="sim", **fields)


class Tab(PageTab):
    """The tab of the browser whose session key is ``browser_key``, in this process. ``open()``
    leaves the snapshot unread: a test waits for what it wants in it."""

    def __init__(self, session_id: str, browser_key: str, origin: str | None = ORIGIN) -> None:
        super().__init__(session_id, f"sessionid={browser_key}", origin=origin, snapshot=False)
        self.browser_key = browser_key

    @property
    def communicator(self) -> WebsocketCommunicator | None:
        return self.connection.communicator if isinstance(self.connection, InProcess) else None

    async def turn(self, message: str, wait: float = 30) -> str:
        """Send a message and wait for the run to end; every frame of the turn as one."""
        return (await self.run(message, wait)).text

    async def close_output(self, wait: float = 5) -> dict[str, Any]:
        """The close message the server sent (after an accept)."""
        assert isinstance(self.connection, InProcess)
        return await self.connection.close_output(wait)
