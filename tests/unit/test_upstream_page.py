"""How the upstream page names a failure of ``GET /v1/models``: the error, never the key."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import openai
import pytest

from playground.inspector.upstream import failure

pytestmark = pytest.mark.unit

KEY = "sk-fake-unit-key-0d5e2b9c41"
REQUEST = httpx.Request("GET", "https://gateway.example.com/v1/models")


@pytest.fixture(autouse=True)
def key(settings: Any) -> None:
    settings.OPENAI_API_KEY = KEY


def test_a_refused_key_is_named_without_the_key_or_the_upstreams_text() -> None:
    refused = openai.AuthenticationError(
        f"Incorrect API key provided: {KEY}",
        response=httpx.Response(401, request=REQUEST),
        body={"error": {"message": f"Incorrect API key provided: {KEY}"}},
    )
    assert failure(refused) == "HTTP 401 from GET /v1/models (the key was refused)"


def test_a_connection_failure_names_its_cause_and_hides_the_key() -> None:
    error = openai.APIConnectionError(request=REQUEST)
    error.__cause__ = httpx.ConnectError(f"refused, with {KEY} in it")
    text = failure(error)
    assert text == "cannot connect (ConnectError: refused, with [the key] in it)"


def test_a_timeout_says_how_long_it_waited() -> None:
    assert failure(TimeoutError()) == "no answer within 2 s (timeout)"


def test_anything_else_is_named_by_its_type_and_bounded() -> None:
    text = failure(ValueError(KEY + "x" * 1000))
    assert text.startswith("ValueError: [the key]x")
    assert len(text) == 300


def test_a_url_with_credentials_is_shown_without_them() -> None:
    from playground.inspector.upstream import shown_url

    assert shown_url("https://user:s3cret@gw.example:8443/v1") == "https://gw.example:8443/v1"
    assert shown_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
