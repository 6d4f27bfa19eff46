"""Per-connection logs and the /v1/_sim endpoints: complete, exact, and never leaking the key."""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import openai
import pytest
from openai import OpenAI
from websockets.asyncio.client import ClientConnection, connect

from tests.simserver import SimServer

Event = dict[str, Any]
DONE = {"response.completed", "response.incomplete", "response.failed", "error"}
ENDPOINTS = ("/_sim/status", "/_sim/connections", "/_sim/connections/conn_1", "/_sim/responses/x")


@asynccontextmanager
async def raw_socket(
    server: SimServer, key: str | None = None, faults: str = ""
) -> AsyncIterator[ClientConnection]:
    url = server.ws_url + (f"?sim_faults={quote(faults)}" if faults else "")
    headers = {"Authorization": f"Bearer {key or server.api_key}"}
    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
        yield ws


async def recv(ws: ClientConnection) -> Event:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[no-any-return]


async def create(ws: ClientConnection, **fields: Any) -> Event:
    """Send a response.create and return its terminal event (or its error)."""
    await ws.send(json.dumps({"type": "response.create", "model": "sim", **fields}))
    while (event := await recv(ws))["type"] not in DONE:
        pass
    return event


def connection_id(ws: ClientConnection) -> str:
    assert ws.response is not None
    return ws.response.headers["x-sim-connection-id"]


def get_without_auth(server: SimServer, path: str, key: str | None = None) -> int:
    req = urllib.request.Request(server.base_url + path)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


async def test_the_upgrade_header_names_the_connection_in_the_log(sim_server: SimServer) -> None:
    async with raw_socket(sim_server) as ws:
        conn_id = connection_id(ws)
        done = await create(ws, input="hello", store=False)
    log = sim_server.connection(conn_id)
    assert log["id"] == conn_id
    assert log["transport"] == "websocket"
    assert log["log"][0]["response_id"] == done["response"]["id"]
    assert sim_server.oracle(done["response"]["id"])["connection_id"] == conn_id
    assert conn_id in [c["id"] for c in sim_server.connections()]


async def test_every_client_frame_is_logged_with_its_type_and_size(sim_server: SimServer) -> None:
    first = json.dumps({"type": "response.create", "model": "sim", "input": "hi", "store": False})
    frames: list[str | bytes] = [first, "not json", b"\x00\x01\x02", '{"type":"bogus"}', "[1]"]
    async with raw_socket(sim_server) as ws:
        for frame in frames:
            await ws.send(frame)
            while (await recv(ws))["type"] not in DONE:
                pass
        log = sim_server.connection(connection_id(ws))
    expected = ["response.create", "invalid_json", "binary", "bogus", "invalid_event"]
    assert [f["type"] for f in log["frames"]] == expected
    sizes = [len(f if isinstance(f, bytes) else f.encode()) for f in frames]
    assert [f["bytes"] for f in log["frames"]] == sizes
    times = [f["t_ms"] for f in log["frames"]]
    assert times == sorted(times)
    assert log["log"][0]["bytes"] == sizes[0]


async def test_each_request_records_its_mode_cache_status_tokens_and_timings(
    sim_server: SimServer,
) -> None:
    async with raw_socket(sim_server) as ws:
        warm = await create(ws, input="Tell me about tides", generate=False)
        chained = await create(
            ws, input="and the moon?", previous_response_id=warm["response"]["id"]
        )
        miss = await create(ws, input="x", previous_response_id="resp_gone", store=False)
        await create(ws, input="hello", store=False)  # the records above are settled by now
        log = sim_server.connection(connection_id(ws))["log"]
    assert miss["error"]["code"] == "previous_response_not_found"
    assert [r["mode"] for r in log] == ["warm", "delta", "delta", "create"]
    assert [r["cache"] for r in log] == ["none", "hit", "miss", "none"]
    assert [r["status"] for r in log] == [
        "completed",
        "completed",
        "error:previous_response_not_found",
        "completed",
    ]
    usage, record = chained["response"]["usage"], log[1]
    assert record["previous_response_id"] == warm["response"]["id"]
    assert record["input_tokens"] == usage["input_tokens"] > record["cached_tokens"] > 0
    assert record["cached_tokens"] == usage["input_tokens_details"]["cached_tokens"]
    assert record["output_tokens"] == usage["output_tokens"] > 0
    for record in (log[0], log[1]):
        assert record["first_event_ms"] >= record["received_ms"] >= 0
        assert record["done_ms"] >= record["first_event_ms"]
    assert log[1]["first_token_ms"] >= log[1]["first_event_ms"]
    assert [r["index"] for r in log] == [1, 2, 3, 4]


async def test_a_stored_parent_from_another_socket_is_logged_as_hydrated(
    sim_server: SimServer,
) -> None:
    async with raw_socket(sim_server) as ws:
        parent = await create(ws, input="Tell me about tides")
    async with raw_socket(sim_server) as ws:
        child = await create(ws, input="more", previous_response_id=parent["response"]["id"])
        await create(ws, input="hello", store=False)
        log = sim_server.connection(connection_id(ws))["log"]
    assert child["type"] == "response.completed"
    assert (log[0]["mode"], log[0]["cache"], log[0]["cached_tokens"]) == ("delta", "hydrated", 0)


def test_http_requests_are_logged_as_connections_of_their_own(sim_server: SimServer) -> None:
    with OpenAI(api_key=sim_server.api_key, base_url=sim_server.base_url, max_retries=0) as client:
        stream = client.responses.create(model="sim", input="hello", stream=True, timeout=10)
        with stream:
            events = list(stream)
        final = next(e for e in events if e.type == "response.completed").response
    entry = sim_server.oracle(final.id)
    log = sim_server.connection(entry["connection_id"])
    assert log["transport"] == "http"
    (record,) = log["log"]
    assert (record["mode"], record["cache"], record["status"]) == ("create", "none", "completed")
    assert final.usage is not None
    assert record["output_tokens"] == final.usage.output_tokens
    assert record["done_ms"] >= record["received_ms"]
    assert record["first_event_ms"] >= record["received_ms"]


async def test_the_api_key_never_appears_in_any_log_or_endpoint(sim_server: SimServer) -> None:
    secret = f"sk-canary-{secrets.token_hex(8)}"
    async with raw_socket(sim_server, key=secret) as ws:
        ws_id = connection_id(ws)
        done = await create(ws, input="hello")
    with OpenAI(api_key=secret, base_url=sim_server.base_url, max_retries=0) as client:
        http = client.responses.create(model="sim", input="hi", store=False, timeout=10)
        client.responses.retrieve(done["response"]["id"], timeout=10)
    ws_log = sim_server.connection(ws_id)
    http_log = sim_server.connection(sim_server.oracle(http.id)["connection_id"])
    assert ws_log["headers"]["authorization"] == "[redacted]"
    assert http_log["headers"]["authorization"] == "[redacted]"
    seen = [sim_server.get("/_sim/status"), sim_server.connections(), ws_log, http_log]
    seen += [sim_server.oracle(done["response"]["id"]), sim_server.oracle(http.id)]
    assert secret not in json.dumps(seen)
    assert secret not in sim_server.output()


def test_the_endpoints_refuse_requests_without_the_bearer_key(sim_server: SimServer) -> None:
    assert [get_without_auth(sim_server, path) for path in ENDPOINTS] == [401] * len(ENDPOINTS)


def test_the_endpoints_refuse_a_wrong_key_when_keys_are_configured(
    start_sim: Callable[..., SimServer],
) -> None:
    server = start_sim("--api-key", SimServer().api_key)
    assert get_without_auth(server, "/_sim/status", key="sk-wrong") == 401
    assert get_without_auth(server, "/_sim/status", key=server.api_key) == 200


def test_unknown_ids_and_paths_answer_404(sim_server: SimServer) -> None:
    for path in ("/_sim/connections/conn_0", "/_sim/responses/resp_missing", "/_sim/nowhere"):
        status, body = sim_server.request("GET", path)
        assert status == 404
        assert "error" in body


async def test_status_counts_sockets_http_requests_and_stored_responses(
    start_sim: Callable[..., SimServer],
) -> None:
    server = start_sim("--seed", "3")
    assert server.get("/_sim/status") == {
        "profile": "zero",
        "seed": 3,
        "stored_responses": 0,
        "open_websockets": 0,
        "websocket_connections": 0,
        "http_requests": 0,
    }
    async with raw_socket(server) as ws:
        await create(ws, input="hello")
        status = server.get("/_sim/status")
        assert (status["open_websockets"], status["websocket_connections"]) == (1, 1)
        assert status["stored_responses"] == 1
    with OpenAI(api_key=server.api_key, base_url=server.base_url, max_retries=0) as client:
        client.responses.create(model="sim", input="hi", store=False, timeout=10)
    assert server.get("/_sim/status")["http_requests"] == 1
    (ws_summary, http_summary) = server.connections()
    assert (ws_summary["transport"], ws_summary["requests"]) == ("websocket", 1)
    assert (http_summary["transport"], http_summary["requests"]) == ("http", 1)


async def first_result(server: SimServer) -> str:
    """What the first request of a new connection ends with: an event type or an error code."""
    async with raw_socket(server) as ws:
        event = await create(ws, input="hello", store=False)
    return str(event["error"]["code"]) if event["type"] == "error" else str(event["type"])


async def test_faults_can_be_set_for_the_next_connection_or_always_and_cleared(
    start_sim: Callable[..., SimServer],
) -> None:
    server = start_sim("--seed", "7")
    ok = "response.completed"
    assert server.request("POST", "/_sim/faults", {"next": "error_frame=1:server_error"})[0] == 200
    assert [await first_result(server), await first_result(server)] == ["server_error", ok]
    spec = {"always": "error_frame=1:rate_limit_exceeded"}
    assert server.request("POST", "/_sim/faults", spec) == (200, {"ok": True})
    limited = "rate_limit_exceeded"
    assert [await first_result(server), await first_result(server)] == [limited, limited]
    assert server.request("DELETE", "/_sim/faults") == (200, {"cleared": True})
    assert await first_result(server) == ok


async def test_a_bad_fault_spec_is_refused_with_400_and_changes_nothing(
    start_sim: Callable[..., SimServer],
) -> None:
    server = start_sim("--seed", "7")
    for body in ({"next": "explode=1"}, {"always": "error_frame=x"}, {"next": "max_age_s=soon"}):
        status, answer = server.request("POST", "/_sim/faults", body)
        assert status == 400, body
        assert answer["error"]["param"] == "faults"
    assert await first_result(server) == "response.completed"


def test_an_http_continuation_of_an_unknown_response_is_logged_as_a_miss(
    sim_server: SimServer,
) -> None:
    client = OpenAI(api_key=sim_server.api_key, base_url=sim_server.base_url, max_retries=0)
    with client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="sim", input="more", previous_response_id="resp_gone", timeout=10
        )
    assert caught.value.code == "previous_response_not_found"
    (record,) = sim_server.last_connection("http")["log"]
    assert (record["mode"], record["cache"]) == ("delta", "miss")
    assert record["status"] == "error:previous_response_not_found"
