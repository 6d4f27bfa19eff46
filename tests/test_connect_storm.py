"""Overload slows connects down, it does not fail them: many sockets at once on a real daphne.

daphne refuses a socket still in its handshake after ``--websocket_connect_timeout`` seconds. A
storm of connects used to queue every handshake behind every other socket's snapshot and its
upstream prewarm, so past the timeout most of them failed. Here the timeout is short and the
storm small, so the test is quick; the benchmark (``connect-storm``) times the full-size one.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.asyncio.client import connect

from tests.liveserver import Browser, LiveServer, session_id

SOCKETS = 500
HANDSHAKE_TIMEOUT_S = 2  # daphne defaults to 5
QUOTAS = ("QUOTA_SESSIONS_PER_OWNER", "QUOTA_NEW_SESSIONS_PER_HOUR")


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    server = LiveServer(
        dict.fromkeys(QUOTAS, "100000"),
        daphne_args=["--websocket_connect_timeout", str(HANDSHAKE_TIMEOUT_S)],
    ).start()
    try:
        yield server
    finally:
        server.stop()


def new_sessions(browser: Browser, count: int) -> list[str]:
    """``count`` sessions of one browser: the first alone (it sets the cookie), then the rest."""
    first = browser.new_session()
    with ThreadPoolExecutor(4) as pool:
        urls = [first, *pool.map(lambda _: browser.new_session(), range(count - 1))]
    return [session_id(url) for url in urls]


async def open_and_read_snapshot(live: LiveServer, cookie: str, session: str) -> str:
    headers = {"Cookie": cookie, "Origin": live.base_url}
    url = f"{live.ws_base}/ws/sessions/{session}/"
    async with connect(url, additional_headers=headers, open_timeout=60) as socket:
        return str(await asyncio.wait_for(socket.recv(), 60))


async def storm(live: LiveServer, cookie: str, sessions: list[str]) -> list[str | BaseException]:
    jobs = [open_and_read_snapshot(live, cookie, session) for session in sessions]
    return list(await asyncio.gather(*jobs, return_exceptions=True))


@pytest.mark.timeout(110)
def test_a_storm_of_connects_opens_every_socket_with_its_snapshot(live: LiveServer) -> None:
    browser = live.browser()
    warm, *sessions = new_sessions(browser, SOCKETS + 1)
    # One socket first: the process's one-time work (imports, templates) is not the storm's.
    asyncio.run(open_and_read_snapshot(live, browser.cookie_header, warm))

    outcomes = asyncio.run(storm(live, browser.cookie_header, sessions))

    failed = Counter(type(o).__name__ for o in outcomes if isinstance(o, BaseException))
    assert not failed, f"{sum(failed.values())} of {SOCKETS} sockets failed: {dict(failed)}"
    assert all('id="status"' in str(snapshot) for snapshot in outcomes)
