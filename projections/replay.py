"""`replay`: drop a projection's tables and rebuild them from the whole event log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from domain.envelope import EventEnvelope, partition_for
from projections.base import Projection
from projections.runner import ProjectionRunner
from projections.tables import checkpoints


async def replay(
    runner: ProjectionRunner,
    projection: Projection,
    read_page: Callable[[int, int], Sequence[EventEnvelope]],
    topic_for_family: Callable[[str], str],
    page: int = 1000,
) -> int:
    """Rebuilds one projection; returns how many events it applied."""
    async with runner.writer.transaction() as conn:
        for table in reversed(projection.tables):
            await conn.run_sync(table.drop, checkfirst=True)
        for table in projection.tables:
            await conn.run_sync(table.create)
        await conn.execute(checkpoints.delete().where(checkpoints.c.projection == projection.name))

    heads: dict[tuple[str, int], int] = {}
    applied: dict[tuple[str, int], int] = {}
    after = 0
    while True:
        batch = await asyncio.to_thread(read_page, after, page)
        if not batch:
            break
        after = batch[-1].notification_id
        async with runner.writer.transaction() as conn:
            for envelope in batch:
                if envelope.family not in projection.families:
                    continue
                key = (topic_for_family(envelope.family), partition_for(envelope.aggregate_id, runner.partitions))
                await projection.apply(conn, envelope)
                heads[key] = envelope.notification_id
                applied[key] = applied.get(key, 0) + 1

    async with runner.writer.transaction() as conn:
        for (topic, partition), last_id in heads.items():
            await conn.execute(
                checkpoints.insert().values(
                    projection=projection.name,
                    topic=topic,
                    partition=partition,
                    last_id=last_id,
                    applied=applied[(topic, partition)],
                    updated_at=time.time(),
                )
            )
    await runner.register(topic_for_family)
    return sum(applied.values())


async def table_checksums(runner: ProjectionRunner, tables: Sequence[sa.Table]) -> dict[str, tuple[int, str]]:
    """Row count and a SHA-256 over every row, in primary-key order, per table."""
    import hashlib

    result = {}
    async with runner.engine.connect() as conn:
        for table in tables:
            rows = (await conn.execute(sa.select(table).order_by(*table.primary_key.columns))).all()
            digest = hashlib.sha256()
            for row in rows:
                digest.update(repr(tuple(row)).encode())
            result[table.name] = (len(rows), digest.hexdigest())
    return result
