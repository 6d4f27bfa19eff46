"""A session's transports: its one upstream WebSocket, the HTTP transport it falls back to, and
which of the two runs the next step.

HTTP is used when the session asks for it, or for the rest of the runner's life once the
WebSocket proved unusable (client checklist items 23-26, docs/client-checklist.md). A rotation
(make-before-break, asked for by age or by staff) happens only at a step boundary.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from agents.metrics import UPSTREAM_RECONNECTS
from agents.upstream.clients import shared_client
from agents.upstream.delta import Item
from agents.upstream.http import HttpUpstream
from agents.upstream.turn import FrameRecorder, UpstreamError
from agents.upstream.websocket import UpstreamSession

log = logging.getLogger(__name__)


class Transports:
    def __init__(self, websocket: UpstreamSession, recorder: FrameRecorder) -> None:
        self.websocket = websocket
        self.websocket.recorder = recorder
        self.recorder = recorder
        self.http: HttpUpstream | None = None
        self.prefer_http = False  # the next step goes over HTTP
        self.fell_back = False  # the WebSocket proved unusable: HTTP for the runner's life
        self.rotate_due = False  # staff asked for a new socket
        self.columns: list[UpstreamSession | HttpUpstream] = []  # a running compare's own

    @property
    def current(self) -> UpstreamSession | HttpUpstream:
        if self.prefer_http:
            if self.http is None:
                client = shared_client(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
                self.http = HttpUpstream(client)
                self.http.recorder = self.recorder
            return self.http
        return self.websocket

    @property
    def on_socket(self) -> bool:
        """Whether the next step goes over a connected WebSocket (what rotate and drop act on)."""
        return not self.prefer_http and self.websocket.connected

    def choose(self, http: bool) -> None:
        """The session's own choice for its next step (it may change between turns); after a
        fallback, HTTP whatever it says."""
        self.prefer_http = self.fell_back or http

    def fall_back(self) -> None:
        """Use HTTP from now on; the WebSocket is dropped."""
        self.fell_back = self.prefer_http = True
        self.websocket.discard()
        UPSTREAM_RECONNECTS.labels(kind="fallback").inc()

    async def rotate_if_due(
        self, fields: dict[str, Any], context: list[Item], sid: str, lane: str | None = None
    ) -> bool:
        """Replace an old socket (or one staff asked to replace) before the next step."""
        if self.current is not self.websocket:
            return False
        max_age = 0.0 if self.rotate_due else settings.ROTATE_AFTER_SECONDS
        try:
            rotated = await self.websocket.rotate(fields, context, max_age, lane)
        except UpstreamError as exc:
            # The old socket still works; the next step boundary tries again.
            log.warning("Rotation of session %s failed: %s", sid, exc)
            return False
        if rotated:
            self.rotate_due = False
            UPSTREAM_RECONNECTS.labels(kind="rotation").inc()
        return rotated

    def column(self, http: bool) -> UpstreamSession | HttpUpstream:
        """A transport of its own for a compare's column: its own socket (columns stream at
        once; one socket carries one response at a time here), or HTTP."""
        transport: UpstreamSession | HttpUpstream
        if http:
            client = shared_client(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
            transport = HttpUpstream(client)
        else:
            transport = UpstreamSession(settings.UPSTREAM_BASE_URL, settings.OPENAI_API_KEY)
        transport.recorder = self.recorder
        self.columns.append(transport)
        return transport

    async def close_columns(self) -> None:
        columns, self.columns = self.columns, []
        for transport in columns:
            await transport.close()

    def discard_all(self) -> None:
        """Stop everything in flight: the session's transport and every column's."""
        self.current.discard()
        for transport in self.columns:
            transport.discard()

    async def close(self) -> None:
        await self.close_columns()
        await self.websocket.close()
        if self.http is not None:
            await self.http.close()
