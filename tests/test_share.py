"""Share links: the owner's panel, the capability URL, the read-only viewer socket, revocation."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient
from django.utils import timezone

from agents.models import Item, Session, ShareLink, Step, Tool
from agents.store import context_store, redis_client
from playground import share
from playground.asgi import application
from tests.services import REDIS_URL, require_redis
from tests.simserver import SimServer
from tests.tabs import ORIGIN, Tab, new_browser, new_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]
URL_RE = re.compile(r'id="share-url"[^>]*value="http://testserver/s/([^/"]+)/"')
INSTRUCTIONS = "Speak like a lighthouse keeper (INSTRUCTIONS-MARKER)."
MOCK_TEMPLATE = "Notes on {{query}}: MOCK-TEMPLATE-MARKER"
PARAMETER_MARKER = "PARAMETER-DESCRIPTION-MARKER"
API_KEY = "sk-test-API-KEY-MARKER-123456"
SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": PARAMETER_MARKER}},
    "required": ["query"],
}


@pytest.fixture(autouse=True)
def fresh_limiter() -> Iterator[None]:
    """Each test starts with no failed lookups counted against the test client's address."""
    share.reset_guesses()
    yield
    share.reset_guesses()


class Viewer(Tab):
    """A share link's page socket, as htmx opens it (``session_id`` holds the token)."""

    async def open(self) -> Viewer:
        await self.connect()
        return self

    async def connect(self) -> None:
        path = f"/ws/share/{self.session_id}/"
        headers = [(b"origin", ORIGIN.encode())]
        self.communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await self.communicator.connect(timeout=10)
        assert connected, "the socket was not accepted"


def owner(browser: str) -> AsyncClient:
    client = AsyncClient()
    client.cookies["sessionid"] = browser
    return client


async def create_link(browser: str, session: Session, **fields: str) -> str:
    """Create a link from the owner's share panel; returns its token (shown once)."""
    form = {"label": "", "expiry": "1d", **fields}
    response = await owner(browser).post(f"/sessions/{session.pk}/share/", form)
    assert response.status_code == 200, response.content
    match = URL_RE.search(response.content.decode())
    assert match, "the new link's URL was not shown"
    return match.group(1)


async def link_of(token: str) -> ShareLink:
    return await ShareLink.objects.aget(token_hash=share.token_hash(token))


async def shared_session(**fields: Any) -> tuple[Session, str, str]:
    browser = await new_browser()
    session = await new_session(browser, **fields)
    return session, browser, await create_link(browser, session)


# -- the capability URL ----------------------------------------------------------------------------


async def test_a_link_is_stored_as_a_hash_and_opens_the_session_read_only() -> None:
    session, browser, token = await shared_session(title="Tide study")
    link = await link_of(token)
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    assert link.token_hash != token
    assert token not in link.token_hash

    response = await AsyncClient().get(f"/s/{token}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Tide study" in page
    assert '<meta name="robots" content="noindex">' in page
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert f'ws-connect="/ws/share/{token}/"' in page
    assert "<form" not in page
    assert 'id="composer"' not in page
    assert 'id="stop"' not in page
    link = await link_of(token)
    assert link.views == 1
    assert link.last_used is not None
    # The owner's list shows the link, never its token again.
    listing = (await owner(browser).get(f"/sessions/{session.pk}/")).content.decode()
    assert f'id="share-link-{link.pk}"' in listing
    assert token not in listing


async def test_a_thousand_random_tokens_open_nothing_and_guessing_is_limited(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.SHARE_GUESS_LIMIT = 20
    _, _, token = await shared_session()
    guesser = AsyncClient()  # every request from the test client's one address
    with caplog.at_level(logging.INFO):
        statuses = [
            (await guesser.get(f"/s/{secrets.token_urlsafe(32)}/")).status_code for _ in range(1000)
        ]
    assert "/s/" not in caplog.text  # Django logs a 4xx with its path: the token stays out
    assert 200 not in statuses
    assert statuses[:20] == [404] * 20
    assert set(statuses[20:]) == {429}
    # Limited, even a real token answers 429: a lucky guess must not stand out.
    assert (await guesser.get(f"/s/{token}/")).status_code == 429
    # Another address is not limited by this one's failures.
    assert await share.lookup(token, "203.0.113.8") is not None


async def test_the_guessing_limit_ends_with_its_window(settings: Any) -> None:
    settings.SHARE_GUESS_LIMIT = 2
    settings.SHARE_GUESS_WINDOW_SECONDS = 1
    guesser = AsyncClient()
    for expected in (404, 404, 429):
        assert (await guesser.get("/s/no-such-token/")).status_code == expected
    await asyncio.sleep(1.1)
    assert (await guesser.get("/s/no-such-token/")).status_code == 404


async def test_a_limited_address_cannot_open_a_viewer_socket_either(settings: Any) -> None:
    settings.SHARE_GUESS_LIMIT = 1
    _, _, token = await shared_session()
    unknown = Viewer("not-a-token", "")
    await unknown.connect()
    assert (await unknown.close_output())["code"] == 4404
    limited = Viewer(token, "")
    await limited.connect()
    assert (await limited.close_output())["code"] == 4429


async def test_with_redis_failures_are_counted_in_redis_per_address(settings: Any) -> None:
    require_redis()
    settings.REDIS_URL = REDIS_URL
    settings.SHARE_GUESS_LIMIT = 3
    address = f"198.51.100.{secrets.randbelow(250)}-{secrets.token_hex(4)}"
    key = share.GUESS_KEY_PREFIX + address
    client = redis_client()
    try:
        for _ in range(3):
            assert await share.lookup(secrets.token_urlsafe(32), address) is None
        assert await client.get(key) == "3"
        assert 0 < await client.ttl(key) <= settings.SHARE_GUESS_WINDOW_SECONDS
        with pytest.raises(share.GuessingLimited):
            await share.lookup(secrets.token_urlsafe(32), address)
    finally:
        await client.delete(key)
        await client.aclose()


async def test_revoked_and_expired_links_answer_exactly_like_an_unknown_one() -> None:
    session, browser, revoked = await shared_session()
    expired = await create_link(browser, session, expiry="1h")
    link = await link_of(revoked)
    response = await owner(browser).post(f"/sessions/{session.pk}/share/{link.pk}/revoke/")
    assert response.status_code == 200
    assert 'data-state="revoked"' in response.content.decode()
    past = timezone.now() - timedelta(seconds=1)
    await ShareLink.objects.filter(pk=(await link_of(expired)).pk).aupdate(expires=past)

    listing = (await owner(browser).get(f"/sessions/{session.pk}/")).content.decode()
    assert 'data-state="expired"' in listing
    assert 'data-state="revoked"' in listing
    assert 'data-state="active"' not in listing

    unknown = await fetch(secrets.token_urlsafe(32))
    assert unknown[0] == 404
    assert unknown[2]["Referrer-Policy"] == "no-referrer"
    assert await fetch(revoked) == unknown
    assert await fetch(expired) == unknown
    for token in (revoked, expired):
        viewer = Viewer(token, "")
        await viewer.connect()
        close = await viewer.close_output()
        assert (close["code"], close.get("reason")) == (4404, "This link does not open a session.")


async def fetch(token: str) -> tuple[int, bytes, dict[str, str]]:
    response = await AsyncClient().get(f"/s/{token}/")
    return response.status_code, response.content, dict(response.headers)


def test_consumers_say_whether_they_are_read_only() -> None:
    from playground.consumers import SessionConsumer
    from playground.viewer import ViewerConsumer

    assert SessionConsumer.read_only is False
    assert ViewerConsumer.read_only is True


# -- owners only ---------------------------------------------------------------------------------


async def test_another_browser_cannot_create_list_or_revoke_links() -> None:
    session, _browser, token = await shared_session()
    link = await link_of(token)
    stranger = owner(await new_browser())
    created = await stranger.post(f"/sessions/{session.pk}/share/", {"expiry": "never"})
    assert created.status_code == 404
    assert await ShareLink.objects.filter(session=session).acount() == 1
    assert (await stranger.get(f"/sessions/{session.pk}/")).status_code == 404
    revoked = await stranger.post(f"/sessions/{session.pk}/share/{link.pk}/revoke/")
    assert revoked.status_code == 404
    # Nor through a session of its own: the link id must belong to the session in the URL.
    own = await new_session(stranger.cookies["sessionid"].value)
    via_own = await stranger.post(f"/sessions/{own.pk}/share/{link.pk}/revoke/")
    assert via_own.status_code == 404
    assert (await link_of(token)).revoked is None
    assert (await AsyncClient().get(f"/s/{token}/")).status_code == 200


async def test_an_invalid_expiry_is_refused_and_creates_nothing() -> None:
    browser = await new_browser()
    session = await new_session(browser)
    response = await owner(browser).post(f"/sessions/{session.pk}/share/", {"expiry": "forever"})
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    assert not await ShareLink.objects.filter(session=session).aexists()


# -- the viewer sees, and does, nothing it should not -----------------------------------------


async def test_the_viewer_page_shows_no_secrets_and_instructions_only_when_included(
    settings: Any,
) -> None:
    settings.OPENAI_API_KEY = API_KEY
    session, browser, token = await shared_session(instructions=INSTRUCTIONS)
    await Tool.objects.acreate(
        session=session, name="lookup", parameters=SCHEMA, mock_output=MOCK_TEMPLATE
    )
    with_instructions = await create_link(browser, session, include_instructions="on")
    plain = (await AsyncClient().get(f"/s/{token}/")).content.decode()
    for secret in (INSTRUCTIONS, "MOCK-TEMPLATE-MARKER", PARAMETER_MARKER, API_KEY):
        assert secret not in plain
    included = (await AsyncClient().get(f"/s/{with_instructions}/")).content.decode()
    assert INSTRUCTIONS in included
    assert "MOCK-TEMPLATE-MARKER" not in included
    assert API_KEY not in included


async def test_a_viewer_follows_a_run_without_controls_or_tool_configuration(
    sim_server: SimServer, use_upstream: UseUpstream, settings: Any
) -> None:
    use_upstream(sim_server)
    session, browser, token = await shared_session(instructions=INSTRUCTIONS)
    await Tool.objects.acreate(
        session=session,
        name="lookup",
        parameters=SCHEMA,
        mock_output=MOCK_TEMPLATE,
        requires_approval=True,
    )
    tab = await Tab(str(session.pk), browser).open()
    viewer = await Viewer(token, "").open()
    await tab.send("/lookup tide tables")
    waiting = await viewer.until(r'class="waiting"')
    assert "waits for the owner" in waiting
    call_id = re.search(r'id="call-([^"]+)"', waiting).group(1)  # type: ignore[union-attr]
    await tab.send_frame(json.dumps({"action": "approve", "call_id": call_id, "decision": "yes"}))
    await viewer.until(r'data-busy="false"')
    await tab.close()
    seen = "".join(viewer.frames)
    await viewer.close()
    assert "MOCK-TEMPLATE-MARKER" in seen  # the tool's output, as the transcript has it
    for hidden in ("<form", 'id="composer"', 'id="stop"', "{{query}}", PARAMETER_MARKER):
        assert hidden not in seen, hidden
    assert INSTRUCTIONS not in seen
    assert settings.OPENAI_API_KEY not in seen
    assert 'data-busy="true"' in seen  # it did follow the run live
    assert 'hx-swap-oob="beforeend:#live-' in seen  # token by token


async def test_a_viewer_frame_changes_nothing_and_is_told_it_is_read_only(
    sim_server: SimServer, use_upstream: UseUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    use_upstream(sim_server)
    session, _, token = await shared_session()
    viewer = await Viewer(token, "").open()
    await viewer.receive()  # the snapshot
    frames: list[str | bytes] = [
        json.dumps({"action": "send", "message": "/chat 20 hello", "HEADERS": {}}),
        json.dumps({"action": "stop"}),
        json.dumps({"action": "tool_output", "call_id": "call_1", "output": "x"}),
        json.dumps({"action": "approve", "call_id": "call_1", "decision": "yes"}),
        json.dumps({"action": "ack", "received": "many"}),
        "not json",
        b"\x00binary",
    ]
    with caplog.at_level(logging.WARNING, logger="playground.viewer"):
        for frame in frames:
            await viewer.send_frame(frame)
            notice = await viewer.until(r'id="notice"')
            assert 'data-code="read_only"' in notice
            assert "read-only" in notice
        # An ack is flow control: accepted silently.
        await viewer.send_frame(json.dumps({"action": "ack", "received": 1}))
        assert viewer.communicator is not None
        assert await viewer.communicator.receive_nothing(0.3)
    await asyncio.sleep(0.2)
    await viewer.close()
    assert not await Item.objects.filter(session=session).aexists()
    assert not await Step.objects.filter(session=session).exclude(mode="warm").aexists()
    assert not (await context_store().get(str(session.pk))).get("running")
    refusals = [r for r in caplog.records if "read-only" in r.getMessage()]
    assert len(refusals) == len(frames)
    assert token not in caplog.text


# -- revocation and expiry ---------------------------------------------------------------------


async def test_revoking_closes_a_connected_viewer_within_a_second_with_the_reason(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    session, browser, token = await shared_session()
    viewer = await Viewer(token, "").open()
    await viewer.receive()  # the snapshot
    link = await link_of(token)
    started = time.monotonic()
    response = await owner(browser).post(f"/sessions/{session.pk}/share/{link.pk}/revoke/")
    assert response.status_code == 200
    notice = await viewer.until(r'data-code="revoked"', wait=1)
    close = await viewer.close_output(wait=1)
    assert time.monotonic() - started < 1
    assert 'data-code="revoked"' in notice
    assert "revoked this link" in notice
    assert close["code"] == 4410


async def test_revoke_links_revokes_every_active_link_of_a_session_and_closes_viewers(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    session, browser, first = await shared_session()
    second = await create_link(browser, session, expiry="never")
    already = await create_link(browser, session)
    await share.revoke((await link_of(already)).pk)
    _, _, elsewhere = await shared_session()
    viewers = [await Viewer(token, "").open() for token in (first, second)]
    assert await share.revoke_links(str(session.pk)) == 2
    for viewer in viewers:
        assert (await viewer.close_output(wait=1))["code"] == 4410
    assert await share.revoke_links(str(session.pk)) == 0
    assert (await link_of(elsewhere)).revoked is None


async def test_a_viewer_is_closed_when_its_link_expires(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    _session, _, token = await shared_session()
    soon = timezone.now() + timedelta(seconds=0.5)
    await ShareLink.objects.filter(pk=(await link_of(token)).pk).aupdate(expires=soon)
    viewer = await Viewer(token, "").open()
    notice = await viewer.until(r'data-code="expired"', wait=2)
    assert "expired" in notice
    assert (await viewer.close_output(wait=1))["code"] == 4410
