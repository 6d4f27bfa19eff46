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

from agents.live.store import context_store, redis_client
from agents.models import Item, Session, ShareLink, Step, Tool
from devtools.tabs import HOST, ORIGIN, InProcess
from playground import share
from playground.asgi import application
from playground.viewing import client_address
from tests.services import REDIS_URL, require_redis
from tests.simserver import SimServer
from tests.tabs import Tab, new_browser, new_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("runners")]

UseUpstream = Callable[[SimServer], SimServer]
# The token travels in the URL's fragment, which a browser never sends: no access log holds it.
URL_RE = re.compile(r'id="share-url"[^>]*value="http://testserver/s/#([A-Za-z0-9_-]+)"')
SOCKET_PATH = "/ws/share/"
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
    """A share link's page socket, as static/share.js opens it: ``/ws/share/``, nothing secret in
    the path, then the token (``session_id`` holds it) in the first frame."""

    view = True  # the page's first socket counts a view; its reconnects do not

    async def open(self, wait: float = 20) -> Viewer:
        """Open the link, and wait until the page shows the session: the snapshot, then the
        heading (perhaps in one frame)."""
        await self.connect()
        await self.until(r'id="shared"', wait)
        return self

    @property
    def seen(self) -> str:
        return "".join(self.frames)

    async def connect(self) -> None:
        await self.connect_bare()
        opening = {"action": "open", "token": self.session_id, "view": self.view}
        await self.send_frame(json.dumps(opening))

    async def connect_bare(self) -> None:
        headers = [HOST, (b"origin", ORIGIN.encode())]
        self.connection = await InProcess.connect(SOCKET_PATH, headers, wait=10)


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

    viewer = await Viewer(token, "").open()
    await viewer.close()
    assert "Tide study" in viewer.seen
    assert 'id="transcript"' in viewer.seen
    assert "<form" not in viewer.seen
    assert 'id="composer"' not in viewer.seen
    assert 'id="stop"' not in viewer.seen
    link = await link_of(token)
    assert link.views == 1
    assert link.last_used is not None
    # The owner's list shows the link, never its token again.
    listing = (await owner(browser).get(f"/sessions/{session.pk}/")).content.decode()
    assert f'id="share-link-{link.pk}"' in listing
    assert token not in listing


async def test_the_token_is_in_no_path_the_browser_requests() -> None:
    """Access logs (daphne's, a proxy's) write every request's path: the link keeps its token in
    the fragment (/s/#<token>), which browsers never send; the page sends it in the socket's
    first frame, and the socket's path is /ws/share/ for every link."""
    _, _, token = await shared_session(title="Tide study")
    response = await AsyncClient().get("/s/")
    assert response.status_code == 200
    page = response.content.decode()
    assert token not in page
    assert "Tide study" not in page  # the page is the same for every link: the socket fills it
    assert f'ws-connect="{SOCKET_PATH}"' in page
    assert re.search(r'src="/static/share\.[0-9a-f]{12}\.js"', page), page  # collected, hashed
    assert '<meta name="robots" content="noindex">' in page
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Cache-Control"] == "no-store"
    assert "<form" not in page
    assert 'id="composer"' not in page


async def test_an_old_style_link_redirects_to_the_fragment_without_a_lookup() -> None:
    """Links made before the fragment form still open; the redirect looks nothing up, so it
    answers the same for every token and counts no guess."""
    _, _, token = await shared_session()
    for candidate in (token, secrets.token_urlsafe(32)):
        response = await AsyncClient().get(f"/s/{candidate}/")
        assert response.status_code == 302
        assert response["Location"] == f"/s/#{candidate}"
        assert response["Referrer-Policy"] == "no-referrer"
        assert response["Cache-Control"] == "no-store"
    assert share.guesses.memory == {}


async def test_a_thousand_random_tokens_open_nothing_and_guessing_is_limited(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.SHARE_GUESS_LIMIT = 20
    _, _, token = await shared_session()
    codes = []
    with caplog.at_level(logging.DEBUG):
        for _ in range(40):  # every socket from the test client's one address
            guess = Viewer(secrets.token_urlsafe(32), "")
            await guess.connect()
            codes.append((await guess.close_output())["code"])
        # The rest through the lookup the socket makes, as the sockets would (and faster).
        address = client_address(WebsocketCommunicator(application, SOCKET_PATH).scope)
        for _ in range(960):
            with pytest.raises(share.GuessingLimited):
                await share.lookup(secrets.token_urlsafe(32), address)
    assert "/s/" not in caplog.text
    assert codes[:20] == [4404] * 20
    assert set(codes[20:]) == {4429}
    # Limited, even a real token is refused: a lucky guess must not stand out.
    limited = Viewer(token, "")
    await limited.connect()
    assert (await limited.close_output())["code"] == 4429
    # Another address is not limited by this one's failures.
    assert await share.lookup(token, "203.0.113.8") is not None


async def test_the_guessing_limit_ends_with_its_window(settings: Any) -> None:
    settings.SHARE_GUESS_LIMIT = 2
    settings.SHARE_GUESS_WINDOW_SECONDS = 1
    for expected in (4404, 4404, 4429):
        guess = Viewer("no-such-token", "")
        await guess.connect()
        assert (await guess.close_output())["code"] == expected
    await asyncio.sleep(1.1)
    guess = Viewer("no-such-token", "")
    await guess.connect()
    assert (await guess.close_output())["code"] == 4404


async def test_a_limited_address_cannot_open_a_viewer_socket_either(settings: Any) -> None:
    settings.SHARE_GUESS_LIMIT = 1
    _, _, token = await shared_session()
    unknown = Viewer("not-a-token", "")
    await unknown.connect()
    notice = await unknown.until(r'id="notice"')
    assert 'data-code="not_found"' in notice
    assert (await unknown.close_output())["code"] == 4404
    limited = Viewer(token, "")
    await limited.connect()
    notice = await limited.until(r'id="notice"')
    assert 'data-code="limited"' in notice
    assert (await limited.close_output())["code"] == 4429


@pytest.mark.parametrize(
    "first",
    [
        json.dumps({"action": "ack", "received": 1}),
        json.dumps({"action": "open", "token": 42}),
        json.dumps({"action": "open", "token": "x" * 10_000}),
        json.dumps({"action": "open"}),
        json.dumps(["open"]),
        "not json",
        b"\x00binary",
    ],
)
async def test_a_viewer_socket_whose_first_frame_is_not_a_token_is_closed(
    first: str | bytes,
) -> None:
    viewer = Viewer("", "")
    await viewer.connect_bare()
    await viewer.send_frame(first)
    close = await viewer.close_output()
    assert close["code"] == 4404
    assert share.guesses.memory == {}  # not a guess: nothing was looked up


async def test_a_viewer_socket_that_sends_no_token_is_closed(monkeypatch: Any) -> None:
    from playground import viewer as viewer_module

    monkeypatch.setattr(viewer_module, "OPEN_TIMEOUT_SECONDS", 0.2)
    viewer = Viewer("", "")
    await viewer.connect_bare()
    assert (await viewer.close_output(wait=2))["code"] == 4404


async def test_a_second_open_frame_is_refused_as_input() -> None:
    _, _, token = await shared_session()
    viewer = await Viewer(token, "").open()
    _, _, other = await shared_session(title="Another session")
    await viewer.send_frame(json.dumps({"action": "open", "token": other}))
    await viewer.until(r'data-code="read_only"')
    await viewer.close()
    assert "Another session" not in viewer.seen


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

    unknown = await refusal(secrets.token_urlsafe(32))
    assert unknown[1:] == (4404, "This link does not open a session.")
    assert 'data-code="not_found"' in unknown[0]
    assert await refusal(revoked) == unknown
    assert await refusal(expired) == unknown


async def refusal(token: str) -> tuple[str, int, str]:
    """What a viewer socket opened with ``token`` shows, and how it closes."""
    viewer = Viewer(token, "")
    await viewer.connect()
    notice = await viewer.until(r'id="notice"')
    close = await viewer.close_output()
    return notice, close["code"], close.get("reason", "")


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
    assert await share.lookup(token, "203.0.113.9") is not None


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
    plain = await first_frames(token)
    for secret in (INSTRUCTIONS, "MOCK-TEMPLATE-MARKER", PARAMETER_MARKER, API_KEY):
        assert secret not in plain
    included = await first_frames(with_instructions)
    assert INSTRUCTIONS in included
    assert "MOCK-TEMPLATE-MARKER" not in included
    assert API_KEY not in included


async def first_frames(token: str) -> str:
    """What a viewer's page gets on opening the link: the session's header and its snapshot."""
    viewer = await Viewer(token, "").open()
    await viewer.close()
    return viewer.seen


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
    sim_server: SimServer,
    use_upstream: UseUpstream,
    caplog: pytest.LogCaptureFixture,
    settings: Any,
) -> None:
    settings.SHARE_READ_ONLY_NOTICE_SECONDS = 0  # a notice for every frame
    use_upstream(sim_server)
    session, _, token = await shared_session()
    viewer = await Viewer(token, "").open()
    frames: list[str | bytes] = [
        json.dumps({"action": "send", "message": "/chat 20 hello", "HEADERS": {}}),
        json.dumps({"action": "stop"}),
        json.dumps({"action": "tool_output", "call_id": "call_1", "output": "x"}),
        json.dumps({"action": "approve", "call_id": "call_1", "decision": "yes"}),
        json.dumps({"action": "ack", "received": "many"}),
        "not json",
        b"\x00binary",
    ]
    with caplog.at_level(logging.DEBUG, logger="playground.viewer"):
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
    assert {r.levelno for r in refusals} == {logging.DEBUG}  # a viewer must not fill the log
    assert token not in caplog.text


async def test_a_viewer_flooding_its_socket_logs_no_warning_and_gets_few_notices(
    sim_server: SimServer, use_upstream: UseUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    use_upstream(sim_server)
    session, _, token = await shared_session()
    viewer = await Viewer(token, "").open()
    frame = json.dumps({"action": "send", "message": "/chat 20 hello", "HEADERS": {}})
    with caplog.at_level(logging.INFO):
        for _ in range(1000):
            await viewer.send_frame(frame)
        await viewer.until(r'data-code="read_only"')
        assert viewer.communicator is not None
        while not await viewer.communicator.receive_nothing(0.5):  # until it has read them all
            await viewer.recv()
        # At most one notice per SHARE_READ_ONLY_NOTICE_SECONDS (1 s): a flood costs little.
        assert 1 <= viewer.seen.count('data-code="read_only"') <= 3
        # The socket is still open: an ack is taken silently.
        await viewer.send_frame(json.dumps({"action": "ack", "received": 1}))
        assert await viewer.communicator.receive_nothing(0.2)
    await viewer.close()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not await Item.objects.filter(session=session).aexists()


def test_the_log_filter_scrubs_share_tokens_from_paths() -> None:
    """A last line of defence: any log line of ours that holds a share path loses its token."""
    from playground.logging import RedactSecrets

    token = secrets.token_urlsafe(32)
    for path in (f"/s/{token}/", f"/ws/share/{token}/", f"/ws/share/{token}", f"/s/#{token}"):
        record = logging.LogRecord("x", logging.WARNING, "", 0, "Not Found: %s", (path,), None)
        RedactSecrets().filter(record)
        assert token not in record.getMessage(), path
        assert "[redacted]" in record.getMessage()


# -- revocation and expiry ---------------------------------------------------------------------


async def test_revoking_closes_a_connected_viewer_within_a_second_with_the_reason(
    sim_server: SimServer, use_upstream: UseUpstream
) -> None:
    use_upstream(sim_server)
    session, browser, token = await shared_session()
    viewer = await Viewer(token, "").open()
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
