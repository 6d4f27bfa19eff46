"""Browser sockets that must be refused for good, as the browser sees it against real daphne:
accepted, then closed with a 4xxx code (htmx's ws extension retries 1006, never 4xxx)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from playground.origin import same_origin
from tests.liveserver import LiveServer, create_session, session_id
from tests.livetab import LiveTab


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    server = LiveServer().start()
    yield server
    server.stop()


async def close_code(url: str, headers: dict[str, str], wait: float = 5) -> int | None:
    """Open the socket as a browser does and read until it is closed: the code received
    (None: still open after ``wait`` seconds, i.e. served)."""
    async with connect(url, additional_headers=headers, open_timeout=10) as socket:
        try:
            while True:
                await asyncio.wait_for(socket.recv(), wait)
        except ConnectionClosed:
            return socket.close_code
        except TimeoutError:
            return None


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9999",  # another port on the same host: another site
        "https://localhost",
        "https://127.0.0.1:{port}",  # another scheme
        "http://localhost:{port}",  # another host name for the same server
        "null",
    ],
)
async def test_a_socket_from_another_origin_is_closed_4403(live: LiveServer, origin: str) -> None:
    url, cookie = create_session(live.base_url)
    headers = {"Cookie": cookie, "Origin": origin.format(port=live.port)}
    assert await close_code(f"{live.ws_base}/ws/sessions/{session_id(url)}/", headers) == 4403


async def test_a_socket_from_the_pages_own_origin_is_served(live: LiveServer) -> None:
    url, cookie = create_session(live.base_url)
    tab = await LiveTab(live.base_url, session_id(url), cookie).open()  # Origin: base_url
    assert tab.page.busy is False
    await tab.close()


@pytest.mark.parametrize(
    "path",
    [
        "/ws/sessions/../../etc/",
        "/ws/sessions/../../etc/passwd",
        "/ws/sessions/" + "a" * 10_000 + "/",
        "/ws/sessions/'/",
        '/ws/sessions/"/',
        "/ws/sessions/a%2Fb/",
        "/ws/sessions/00000000-0000-0000-0000-000000000000%2F/",
        "/ws/share/a%2Fb/",
        "/ws/nothing-here/",
        "/ws/",
    ],
    ids=[
        "dots",
        "dots-file",
        "10000-chars",
        "quote",
        "double-quote",
        "slash-2f",
        "uuid-2f",
        "share-2f",
        "unknown",
        "root",
    ],
)
async def test_an_unroutable_socket_path_is_closed_4404(live: LiveServer, path: str) -> None:
    headers = {"Origin": live.base_url}
    assert await close_code(live.ws_base + path, headers) == 4404, live.output()[-3000:]
    assert "Traceback" not in live.output()


@pytest.mark.parametrize(
    ("headers", "served"),
    [
        ({"host": "example.com", "origin": "http://example.com"}, True),
        ({"host": "example.com", "origin": "https://example.com"}, False),
        # Behind the shipped nginx (TLS): daphne's socket scope has no scheme; the proxy's says.
        (
            {"host": "example.com", "origin": "https://example.com", "x-forwarded-proto": "https"},
            True,
        ),
        (
            {"host": "example.com", "origin": "http://example.com", "x-forwarded-proto": "https"},
            False,
        ),
        ({"host": "example.com:8000", "origin": "http://example.com:8000"}, True),
        ({"host": "example.com:8000", "origin": "http://example.com:8001"}, False),
        ({"host": "evil.example", "origin": "http://evil.example"}, False),  # not an allowed host
        ({"origin": "http://example.com"}, False),  # no Host: the origin cannot be proved
        ({"host": "example.com", "origin": "http://example.com:99999"}, False),
    ],
)
def test_the_origin_must_be_the_requests_own(
    settings: Any, headers: dict[str, str], served: bool
) -> None:
    settings.ALLOWED_HOSTS = ["example.com"]
    scope = {"type": "websocket", "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    assert same_origin(scope) is served
