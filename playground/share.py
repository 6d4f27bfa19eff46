"""Share links: capability URLs that let whoever holds one watch a session, read-only.

A token is 256 random bits, shown to the owner once; the database keeps only its SHA-256, so a
copy of the database opens nothing. Failed lookups (an unknown, revoked or expired token) are
counted per client address: past ``SHARE_GUESS_LIMIT`` in a window, every lookup from that
address is refused for the rest of it, so tokens cannot be guessed at speed. Revoking a link
tells each of its viewer sockets, on every process, through the link's channel-layer group.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from agents.live import wire
from agents.models import Session, ShareLink
from playground.quotas import WindowCounter

# What the owner picks from; None: the link never expires.
EXPIRIES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "never": None,
}
GUESS_KEY_PREFIX = "playground:share-guess:"


class GuessingLimited(Exception):
    """This client address failed too many lookups; it must wait for the window to end."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def active(now: datetime | None = None) -> Q:
    """The links that still open their session."""
    now = now or timezone.now()
    return Q(revoked__isnull=True) & (Q(expires__isnull=True) | Q(expires__gt=now))


def is_active(link: ShareLink, now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return link.revoked is None and (link.expires is None or link.expires > now)


def state(link: ShareLink, now: datetime | None = None) -> str:
    """For the owner's list: active, revoked or expired."""
    if link.revoked is not None:
        return "revoked"
    return "active" if is_active(link, now) else "expired"


async def create_link(
    session: Session, *, label: str, include_instructions: bool, expiry: str
) -> tuple[ShareLink, str]:
    """A new link and its token (the only time the token exists outside a browser)."""
    token = new_token()
    lifetime = EXPIRIES[expiry]
    link = await ShareLink.objects.acreate(
        session=session,
        token_hash=token_hash(token),
        label=label,
        include_instructions=include_instructions,
        expires=timezone.now() + lifetime if lifetime is not None else None,
    )
    return link, token


async def lookup(token: str, client: str) -> ShareLink | None:
    """The active link of ``token`` (with its session), or None; a failure counts against
    ``client``. Raises :class:`GuessingLimited` while ``client`` is over the limit."""
    if await _limited(client):
        raise GuessingLimited
    digest = token_hash(token)
    link = await (
        ShareLink.objects.select_related("session").filter(active(), token_hash=digest).afirst()
    )
    # The index found it by equality; compare again in constant time, as a hash should be.
    if link is None or not hmac.compare_digest(link.token_hash, digest):
        await _failed(client)
        return None
    return link


async def record_view(link: ShareLink) -> None:
    await ShareLink.objects.filter(pk=link.pk).aupdate(
        views=F("views") + 1, last_used=timezone.now()
    )


async def record_use(link: ShareLink) -> None:
    await ShareLink.objects.filter(pk=link.pk).aupdate(last_used=timezone.now())


async def revoke(link_id: int) -> bool:
    """Revoke one link and close its viewers; False if it was already revoked."""
    revoked = await ShareLink.objects.filter(pk=link_id, revoked__isnull=True).aupdate(
        revoked=timezone.now()
    )
    if revoked:
        await disconnect_viewers([link_id])
    return bool(revoked)


async def revoke_links(session_id: str) -> int:
    """Revoke every active link of a session and close their viewers; how many it revoked."""
    links = ShareLink.objects.filter(active(), session_id=session_id)
    ids = [pk async for pk in links.values_list("pk", flat=True)]
    await ShareLink.objects.filter(pk__in=ids, revoked__isnull=True).aupdate(revoked=timezone.now())
    await disconnect_viewers(ids)
    return len(ids)


async def disconnect_viewers(link_ids: list[int]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for link_id in link_ids:
        revoked: wire.ShareRevoked = {"type": wire.SHARE_REVOKED}
        await layer.group_send(wire.share_group(link_id), dict(revoked))


# -- guessing ------------------------------------------------------------------------------------

# Failed lookups per client address (in Redis with REDIS_URL, else in this process).
guesses = WindowCounter(GUESS_KEY_PREFIX)


def reset_guesses() -> None:
    """Forget the in-process failure counts (tests start each from a clean slate)."""
    guesses.reset()


async def _limited(client: str) -> bool:
    failures = await guesses.count(client, settings.SHARE_GUESS_WINDOW_SECONDS)
    return failures >= settings.SHARE_GUESS_LIMIT


async def _failed(client: str) -> None:
    await guesses.add(client, settings.SHARE_GUESS_WINDOW_SECONDS)  # from the first failure on
