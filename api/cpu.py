"""Bounded room for the API's CPU-heavy steps (decoding, detecting, embedding).

They run in threads so the event loop keeps answering (`/health` among others), and at
most `Settings.max_concurrent_image_jobs` at once so a burst of large images queues
instead of multiplying the memory each decode takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from facesearch.system import System

T = TypeVar("T")


class CpuSlots:
    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._semaphore = asyncio.Semaphore(self.size)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """One slot for a sequence of steps (decode, then detect and embed)."""
        async with self._semaphore:
            yield

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a thread, in a slot of its own."""
        async with self._semaphore:
            return await asyncio.to_thread(fn, *args)


_SLOTS: weakref.WeakKeyDictionary[System, CpuSlots] = weakref.WeakKeyDictionary()


def cpu_slots_for(system: System) -> CpuSlots:
    """The System's slots (one set per System, so per process, shared by every request)."""
    slots = _SLOTS.get(system)
    if slots is None:
        slots = _SLOTS[system] = CpuSlots(system.settings.max_concurrent_image_jobs)
    return slots
