"""What `/health` reports, read without making the probe wait.

A health probe must answer while the read model is busy (a large import projecting, a
clustering run): the photo counts are read at most every `max_age_s`, and a request that
finds them stale gets the last ones while a background read refreshes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


class CachedCounts:
    def __init__(self, read: Callable[[], Awaitable[dict[str, Any]]], max_age_s: float = 5.0) -> None:
        self._read = read
        self.max_age_s = max_age_s
        self._value: dict[str, Any] | None = None
        self._read_at = 0.0
        self._refreshing: asyncio.Task[None] | None = None

    async def get(self) -> dict[str, Any]:
        if self._value is None:  # the first probe reads them itself: nothing to show yet
            await self._refresh()
        elif time.monotonic() - self._read_at > self.max_age_s and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._refresh())
        assert self._value is not None
        return self._value

    async def _refresh(self) -> None:
        self._value = await self._read()
        self._read_at = time.monotonic()
