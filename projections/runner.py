"""Applies broker messages to projections exactly once in effect.

Each message carries the id of the message before it on its topic partition. A message
is applied only when that id is the projection's checkpoint there: then its effect and
the new checkpoint commit in one transaction. An older message is a redelivery and is
dropped; a message that skips ahead means the broker lost something, so it is dropped
too and the relay, seeing this projection stay behind, publishes again from the gap.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from enum import Enum

import sqlalchemy as sa
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.envelope import EventEnvelope, partition_for
from projections.base import Projection
from projections.db import Writer, create_all_locked
from projections.tables import checkpoints, metadata


class Outcome(str, Enum):
    applied = "applied"
    duplicate = "duplicate"
    gap = "gap"


class ProjectionRunner:
    def __init__(self, engine: AsyncEngine, projections: Iterable[Projection], partitions: int) -> None:
        self.engine = engine
        self.writer = Writer(engine)
        self.projections = {p.name: p for p in projections}
        self.partitions = partitions

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await create_all_locked(conn, metadata)

    async def register(self, topic_for_family) -> None:
        """Creates a checkpoint row for every topic partition each projection follows."""
        now = time.time()
        async with self.writer.transaction() as conn:
            for projection in self.projections.values():
                for family in projection.families:
                    for partition in range(self.partitions):
                        key = dict(projection=projection.name, topic=topic_for_family(family), partition=partition)
                        exists = await conn.execute(sa.select(checkpoints.c.last_id).filter_by(**key))
                        if exists.first() is None:
                            await conn.execute(checkpoints.insert().values(**key, last_id=0, applied=0, updated_at=now))

    async def heartbeat(self) -> None:
        async with self.writer.transaction() as conn:
            await conn.execute(
                checkpoints.update()
                .where(checkpoints.c.projection.in_(list(self.projections)))
                .values(updated_at=time.time())
            )

    async def handle(self, projection_name: str, topic: str, envelope: EventEnvelope) -> Outcome:
        projection = self.projections[projection_name]
        partition = partition_for(envelope.aggregate_id, self.partitions)
        key = (
            (checkpoints.c.projection == projection.name)
            & (checkpoints.c.topic == topic)
            & (checkpoints.c.partition == partition)
        )
        async with self.writer.transaction() as conn:
            row = (await conn.execute(sa.select(checkpoints.c.last_id).where(key).with_for_update())).first()
            last_id = row[0] if row else 0
            if envelope.notification_id <= last_id:
                return Outcome.duplicate
            if envelope.previous_id != last_id:
                logger.debug(
                    "{} skips #{} on {}[{}]: it follows #{}, checkpoint is #{}",
                    projection.name, envelope.notification_id, topic, partition, envelope.previous_id, last_id,
                )
                return Outcome.gap
            await projection.apply(conn, envelope)
            await self._advance(conn, projection.name, topic, partition, envelope.notification_id, exists=row is not None)
        return Outcome.applied

    @staticmethod
    async def _advance(conn: AsyncConnection, name: str, topic: str, partition: int, last_id: int, exists: bool) -> None:
        values = dict(last_id=last_id, updated_at=time.time())
        if exists:
            await conn.execute(
                checkpoints.update()
                .where(
                    (checkpoints.c.projection == name) & (checkpoints.c.topic == topic) & (checkpoints.c.partition == partition)
                )
                .values(applied=checkpoints.c.applied + 1, **values)
            )
        else:
            await conn.execute(
                checkpoints.insert().values(projection=name, topic=topic, partition=partition, applied=1, **values)
            )
