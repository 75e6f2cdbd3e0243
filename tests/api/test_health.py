"""/health answers without waiting for a busy read model (seen in benchmarks.soak: p99 over
500 ms while 20 clients searched and the projections wrote)."""

from __future__ import annotations

import asyncio
import time

from api.health import CachedCounts


async def test_a_stale_count_is_answered_at_once_and_refreshed_behind():
    reads: list[float] = []

    async def slow_read() -> dict[str, int]:
        reads.append(time.monotonic())
        await asyncio.sleep(0.3)  # a read model busy with a large import
        return {"analysed": len(reads)}

    counts = CachedCounts(slow_read, max_age_s=0.05)
    assert await counts.get() == {"analysed": 1}  # the first probe has to read
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    assert await counts.get() == {"analysed": 1}  # stale: the last counts, at once
    assert await counts.get() == {"analysed": 1}  # one refresh at a time
    assert time.perf_counter() - started < 0.05
    await asyncio.sleep(0.4)
    assert await counts.get() == {"analysed": 2} and len(reads) == 2
