"""One instance per event loop, for state whose futures and tasks belong to a loop: the
database thread's queue, the admission gates, the lease renewals. A process serves on one loop;
tests run many, one after another."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable


def per_loop[T](make: Callable[[], T]) -> Callable[[], T]:
    """A function that returns the running loop's instance, made by ``make`` on first use."""
    made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        found = made.get(loop)
        if found is None:
            found = made[loop] = make()
        return found

    return get
