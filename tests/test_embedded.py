"""The playground's ASGI app serves Django and mounts the simulator at /v1/ in process, for the
process itself: its own key, from loopback (tests/test_embedded_access.py: everyone else)."""

from __future__ import annotations

import json

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from playground import env
from playground.asgi import application, simulator

AUTH = [(b"authorization", f"Bearer {settings.OPENAI_API_KEY}".encode())]
LOOPBACK = ("127.0.0.1", 50000)


async def test_the_simulator_answers_websockets_under_v1() -> None:
    communicator = WebsocketCommunicator(application, "/v1/responses", headers=AUTH)
    communicator.scope["client"] = LOOPBACK
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "response.create", "model": "sim", "input": "hi"})
    types: list[str] = []
    while not types or types[-1] != "response.completed":
        types.append((await communicator.receive_json_from(timeout=5))["type"])
    assert types[:2] == ["response.created", "response.in_progress"]
    await communicator.disconnect()


async def test_the_embedded_simulator_refuses_a_socket_without_a_key() -> None:
    communicator = WebsocketCommunicator(application, "/v1/responses")
    communicator.scope["client"] = LOOPBACK
    connected, _ = await communicator.connect()
    # daphne cannot send a 401 at the upgrade, so the refusal is a close before accept (403).
    assert not connected


async def test_the_simulator_answers_http_under_v1() -> None:
    body = json.dumps({"model": "sim", "input": "hi", "stream": False}).encode()
    headers = [*AUTH, (b"content-type", b"application/json")]
    communicator = HttpCommunicator(
        application, "POST", "/v1/responses", body=body, headers=headers
    )
    communicator.scope["client"] = LOOPBACK
    response = await communicator.get_response(timeout=5)
    assert response["status"] == 200
    assert json.loads(response["body"])["status"] == "completed"


def test_the_embedded_simulator_uses_the_configured_profile() -> None:
    assert simulator.config.profile == settings.SIMULATOR_PROFILE


def test_the_home_page_lists_the_scenarios() -> None:
    response = Client().get("/")
    assert response.status_code == 200
    for directive in ("/chat", "/lookup", "/parallel", "/research"):
        assert directive in response.content.decode()


def test_a_bad_boolean_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe'"):
        env.env_bool("DEBUG", True)


def test_a_bad_choice_in_the_environment_lists_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMULATOR_PROFILE", "fast")
    with pytest.raises(ImproperlyConfigured, match="zero, realistic"):
        env.env_choice("SIMULATOR_PROFILE", "zero", ("zero", "realistic"))


def test_integers_and_lists_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMULATOR_SEED", "42")
    monkeypatch.setenv("ALLOWED_HOSTS", "a.example, b.example,")
    assert env.env_int("SIMULATOR_SEED", 0) == 42
    assert env.env_list("ALLOWED_HOSTS", []) == ["a.example", "b.example"]
    monkeypatch.setenv("SIMULATOR_SEED", "x")
    with pytest.raises(ImproperlyConfigured):
        env.env_int("SIMULATOR_SEED", 0)
