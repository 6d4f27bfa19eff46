"""The playground on the Redis channel layer (REDIS_URL), as a real daphne serves it."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from agents.live import store
from tests.liveserver import Browser, LiveServer, create_session, session_id
from tests.services import REDIS_URL, require_redis

# Longer than redis-py 8's default 5 s socket_timeout: without the settings' longer one, the
# consumer's blocking pop times out and the socket closes some 5 s after it opened (4.9 s
# measured with REDIS_OPTIONS left out); 8 s leaves a busy machine 3 s of slack.
IDLE_SECONDS = 8


@pytest.fixture(scope="module")
def redis_server() -> Iterator[LiveServer]:
    require_redis()
    server = LiveServer({"REDIS_URL": REDIS_URL}).start()
    yield server
    server.stop()


@pytest.mark.timeout(60)
async def test_an_idle_socket_stays_open_on_the_redis_layer(redis_server: LiveServer) -> None:
    url, cookie = await asyncio.to_thread(create_session, redis_server.base_url)
    path = f"/ws/sessions/{session_id(url)}/"
    headers = {"Cookie": cookie, "Origin": redis_server.base_url}
    async with connect(redis_server.ws_base + path, additional_headers=headers) as ws:
        first = str(await asyncio.wait_for(ws.recv(), 10))
        assert re.search(r'id="status"[^>]*data-busy="false"', first), first

        await asyncio.sleep(IDLE_SECONDS)
        assert ws.close_code is None, (
            f"the idle socket was closed with {ws.close_code} {ws.close_reason!r}\n"
            f"--- server log ---\n{redis_server.output()}"
        )

        message = {"action": "send", "message": "/chat 20 hello", "HEADERS": {}}
        await ws.send(json.dumps(message))
        frames: list[str] = []
        busy = assistant = False
        while True:
            try:
                frame = str(await asyncio.wait_for(ws.recv(), 15))
            except Exception as error:
                log = redis_server.output()
                raise AssertionError(
                    f"{error!r} after {frames}\n--- server log ---\n{log}"
                ) from None
            frames.append(frame)
            busy = busy or 'data-busy="true"' in frame
            assistant = assistant or 'class="item message assistant' in frame
            if 'data-busy="false"' in frame and busy:
                break
        assert assistant, f"no assistant item in the turn: {frames}"


def test_http_flow_on_the_redis_layer(redis_server: LiveServer) -> None:
    browser = Browser(redis_server.base_url)
    url = browser.new_session()
    status, _, page = browser.get(url.removeprefix(redis_server.base_url))
    assert status == 200
    assert 'id="transcript"' in page
    assert f'ws-connect="/ws/sessions/{session_id(url)}/"' in page
    status, _, home = browser.get("/")
    assert status == 200
    assert f'href="/sessions/{session_id(url)}/"' in home, "the new session is not listed"


async def test_the_store_client_holds_hundreds_of_connections_at_once(
    settings: Any,
) -> None:
    """A process renews the leases and relays the feeds of hundreds of running sessions at once
    on the store's client: redis-py's default pool (100) raised "Too many connections", which
    closed their tabs (4013) and failed their runs."""
    require_redis()
    settings.REDIS_URL = REDIS_URL
    client = store.redis_client()
    key = f"playground:test:pool:{secrets.token_hex(4)}"
    try:
        waits = [client.blpop([key], timeout=0.5) for _ in range(250)]  # each holds a connection
        assert await asyncio.gather(*waits) == [None] * 250
    finally:
        await client.aclose()
        store._clients.pop(asyncio.get_running_loop(), None)
