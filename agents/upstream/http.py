"""The HTTP transport: one ``POST /v1/responses`` with Server-Sent Events per step.

With ``store=true`` steps chain by ``previous_response_id`` (the upstream hydrates the parent from
storage); with ``store=false`` there is nothing to chain to, so every step sends the full context.
The runner sees the same turns and events as over the WebSocket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx  # the HTTP client the openai SDK ships with
import openai
from openai import AsyncOpenAI

from agents.upstream.delta import Chain, Item, Stored
from agents.upstream.turn import FrameRecorder, UpstreamError, UpstreamTurn

SSE_DATA = "data:"
# WebSocket-only fields: HTTP answers "Unsupported parameter" to them (client checklist item 25).
WS_ONLY = ("generate", "stream_id", "type")


@dataclass
class HttpTurn(UpstreamTurn):
    lines: AsyncIterator[str] | None = None

    async def frames(self) -> AsyncIterator[bytes | str]:
        assert self.lines is not None
        try:
            async for line in self.lines:
                if line.startswith(SSE_DATA):
                    yield line[len(SSE_DATA) :].strip()
        except (openai.APIError, httpx.HTTPError) as exc:
            raise UpstreamError(f"The upstream's stream broke: {type(exc).__name__}.") from exc


class HttpUpstream:
    """A session's HTTP transport. ``chain``/``requests`` mirror a socket's for the delta rule."""

    transport = "http"

    def __init__(self, client: AsyncOpenAI) -> None:
        self.client = client
        self.chains: dict[str | None, Chain] = {}  # HTTP has the default lane only
        self.requests = 0
        self.rotated_in = False  # HTTP has no socket to rotate
        self.recorder: FrameRecorder | None = None
        self._response: Any = None
        self._closing: asyncio.Future[None] | None = None

    @property
    def connected(self) -> bool:
        return False

    def forget_chain(self) -> None:
        self.chains.clear()

    def refuse_lanes(self) -> bool:
        return False  # HTTP never sends a stream_id

    async def prewarm(
        self,
        fields: dict[str, Any],
        context: list[Item],
        lane: str | None = None,
        stored: Stored | None = None,
    ) -> UpstreamTurn | None:
        return None  # nothing to warm: every request stands alone

    async def rotate(
        self, fields: dict[str, Any], context: list[Item], max_age: float, lane: str | None = None
    ) -> bool:
        return False

    @asynccontextmanager
    async def turn(
        self,
        fields: dict[str, Any],
        context: list[Item],
        *,
        generate: bool = True,
        lane: str | None = None,
        stored: Stored | None = None,
    ) -> AsyncIterator[UpstreamTurn]:
        # HTTP has no lanes: every branch chains by stored id or sends its full context.
        turn = HttpTurn(self, fields, context, recorder=self.recorder, stored=stored)
        # Only a stored parent can be found again by id over HTTP.
        body = turn.request(generate=True, chain=bool(fields.get("store")))
        for name in WS_ONLY:
            body.pop(name, None)
        turn.sent(json.dumps({**body, "stream": True}))
        turn.metrics.socket = "http"
        request = self.client.responses.with_streaming_response.create(stream=True, **body)
        try:
            response = await request.__aenter__()
        except openai.APIStatusError as exc:
            # Refused before the stream: the same error event a socket would have sent.
            turn.terminal = _error_event(exc)
            yield turn
            return
        except openai.APIConnectionError as exc:
            raise UpstreamError(f"The upstream cannot be reached: {type(exc).__name__}.") from exc
        self._response = response
        try:
            turn.lines = response.iter_lines()
            yield turn
        finally:
            self._response = None
            await request.__aexit__(None, None, None)

    def discard(self) -> None:
        """Stop: close the in-flight response's connection; its stream then ends in an error."""
        response, self._response = self._response, None
        if response is not None:
            self._closing = asyncio.ensure_future(response.http_response.aclose())

    async def close(self) -> None:
        self.discard()  # the client is shared by the process's sessions: it stays open


def _error_event(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    return {"type": "error", "status": exc.status_code, "error": error}
