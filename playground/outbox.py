"""A browser socket's outgoing queue: sends at once when the socket is idle, coalesces under load.

Text deltas for the same element that pile up while a send is in progress are merged into one
fragment, so a fast stream costs the page a few swaps, not thousands, and an idle socket adds no
delay to a token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from agents.events import RunEvent, TextDelta
from playground import render

log = logging.getLogger(__name__)

Send = Callable[..., Awaitable[None]]


class Outbox:
    def __init__(self, send: Send) -> None:
        self._send = send
        # (delta key, text) for a text delta; (None, html) for a ready fragment.
        self._pending: list[tuple[str | None, str]] = []
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._drain())

    def put(self, html: str) -> None:
        self._pending.append((None, html))
        self._ready.set()

    def put_event(self, event: RunEvent) -> None:
        if isinstance(event, TextDelta):
            last = self._pending[-1] if self._pending else None
            if last is not None and last[0] == event.key:
                self._pending[-1] = (event.key, last[1] + event.text)
            else:
                self._pending.append((event.key, event.text))
            self._ready.set()
        else:
            self.put(render.event_html(event))

    async def _drain(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._pending = self._pending, []
            html = "".join(
                render.text_delta(key, text) if key is not None else text for key, text in batch
            )
            try:
                await self._send(text_data=html)
            except Exception:  # the socket went away; disconnect() closes the outbox
                log.debug("Dropped a fragment for a closed socket", exc_info=True)
                return

    async def close(self) -> None:
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
