"""The channel layer of a single process (no Redis): Channels' in-memory layer, swept less often.

Channels' ``InMemoryChannelLayer`` sweeps expired messages and group memberships at the start of
every ``receive``, and a sweep visits every channel: each socket receives once as it connects,
so a storm of N connects cost N² steps (a thousand: ~9 % of the connects' CPU). Here the sweep
runs at most once every :data:`SWEEP_SECONDS`, which only delays dropping what expired (messages
expire after 60 s, memberships after a day).
"""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer

SWEEP_SECONDS = 1.0


class SweptInMemoryChannelLayer(InMemoryChannelLayer):
    sweeps = 0  # how many sweeps ran (tests read it)
    _swept_at = float("-inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < SWEEP_SECONDS:
            return
        self._swept_at = now
        self.sweeps += 1
        super()._clean_expired()  # type: ignore[misc]  # private: not in Channels' stubs
