"""The embedded simulator serves the playground's own process, and no one else on its port.

Every visitor can reach the app's port; the simulator mounted there must not let one visitor
read or continue another's responses, list connections, or inject faults.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from playground.asgi import application
from tests.liveserver import LiveServer, create_session, session_id
from tests.livetab import LiveTab

LOOPBACK = ("127.0.0.1", 50000)
ELSEWHERE = ("203.0.113.7", 50000)
ANY_KEY = "any-key"


def bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode())]


async def http(
    method: str, path: str, key: str, client: tuple[str, int] = LOOPBACK, body: object = None
) -> tuple[int, Any]:
    headers = [*bearer(key), (b"content-type", b"application/json")]
    payload = b"" if body is None else json.dumps(body).encode()
    communicator = HttpCommunicator(application, method, path, body=payload, headers=headers)
    communicator.scope["client"] = client
    response = await communicator.get_response(timeout=5)
    return response["status"], json.loads(response["body"] or b"null")


async def stored_response() -> str:
    """A response the playground itself created (with its key) and stored."""
    body = {"model": "sim", "input": "my secret plan", "stream": False, "store": True}
    status, created = await http("POST", "/v1/responses", settings.OPENAI_API_KEY, body=body)
    assert status == 200, created
    return str(created["id"])


def test_the_embedded_key_is_random_per_process() -> None:
    assert settings.UPSTREAM_IS_EMBEDDED
    assert settings.OPENAI_API_KEY != "sim-local"
    assert len(settings.OPENAI_API_KEY) >= 32


async def test_any_other_bearer_key_gets_401() -> None:
    status, body = await http("POST", "/v1/responses", ANY_KEY, body={"model": "sim", "input": "x"})
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"


async def test_another_visitors_response_cannot_be_read() -> None:
    response_id = await stored_response()
    status, body = await http("GET", f"/v1/responses/{response_id}", ANY_KEY)
    assert status == 401
    assert "my secret plan" not in json.dumps(body)


async def test_the_right_key_from_a_non_loopback_client_is_refused() -> None:
    body = {"model": "sim", "input": "x", "stream": False}
    key = settings.OPENAI_API_KEY
    status, _ = await http("POST", "/v1/responses", key, client=ELSEWHERE, body=body)
    assert status == 403
    communicator = WebsocketCommunicator(application, "/v1/responses", headers=bearer(key))
    communicator.scope["client"] = ELSEWHERE
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/_sim/status"),
        ("GET", "/v1/_sim/connections"),
        ("POST", "/v1/_sim/faults"),
        ("DELETE", "/v1/_sim/faults"),
    ],
)
@pytest.mark.parametrize("key", ["own", ANY_KEY])
async def test_introspection_and_fault_injection_are_not_on_the_apps_port(
    method: str, path: str, key: str
) -> None:
    key = settings.OPENAI_API_KEY if key == "own" else key
    body = {"always": "upgrade_status=503"} if method == "POST" else None
    status, _ = await http(method, path, key, body=body)
    assert status == 404


async def test_a_fault_header_is_ignored_on_the_apps_port() -> None:
    headers = [*bearer(settings.OPENAI_API_KEY), (b"x-sim-faults", b"upgrade_status=503")]
    communicator = WebsocketCommunicator(
        application, "/v1/responses?sim_faults=upgrade_status=500", headers=headers
    )
    communicator.scope["client"] = LOOPBACK
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


async def test_without_the_embedded_upstream_nothing_is_mounted(settings: Any) -> None:
    settings.UPSTREAM_IS_EMBEDDED = False
    headers = [*bearer(ANY_KEY), (b"host", b"127.0.0.1:8000")]
    communicator = HttpCommunicator(application, "GET", "/v1/_sim/status", headers=headers)
    communicator.scope["client"] = LOOPBACK
    response = await communicator.get_response(timeout=5)
    assert response["status"] == 404
    assert b"stored_responses" not in response["body"]


# -- on the wire, against daphne as `make run` starts it ----------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    server = LiveServer().start()
    yield server
    server.stop()


def wire_get(live: LiveServer, path: str, key: str) -> int:
    request = urllib.request.Request(
        live.base_url + path, headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("path", ["/v1/_sim/connections", "/v1/_sim/status"])
def test_a_visitor_cannot_list_the_live_servers_connections(live: LiveServer, path: str) -> None:
    assert wire_get(live, path, ANY_KEY) == 404


def test_a_visitor_with_any_key_gets_401_from_the_live_server(live: LiveServer) -> None:
    assert wire_get(live, "/v1/responses/resp_anything", ANY_KEY) == 401


async def test_a_visitor_cannot_open_a_socket_to_continue_someones_response(
    live: LiveServer,
) -> None:
    # The upgrade is refused, so no response.create (with previous_response_id) is ever read.
    headers = {"Authorization": "Bearer any-key"}
    with pytest.raises(InvalidStatus):
        await connect(live.ws_base + "/v1/responses", additional_headers=headers)


async def test_the_live_servers_sessions_still_reach_their_simulator(live: LiveServer) -> None:
    """The playground uses its own key: a session on the live server still gets its reply."""
    url, cookie = create_session(live.base_url)
    tab = await LiveTab(live.base_url, session_id(url), cookie).open()
    await tab.send("/chat 5 still answered")
    await tab.until_idle()
    await tab.close()
    assert len(tab.page.texts()) == 2, live.output()
    assert "Bearer" not in live.browser().get("/")[2]
