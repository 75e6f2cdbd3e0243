"""Applies broker messages to projections exactly once in effect.

Each message carries the id of the message before it on its topic partition. A message
is applied only when that id is the projection's checkpoint there: then its effect and
the new checkpoint commit in one transaction. An older message is a redelivery and is
dropped; a message that skips ahead means the broker lost something, so it is dropped
too and the relay, seeing this projection stay behind, publishes again from the gap.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


@dataclass
class _Position:
    """A partition's checkpoint while a batch is applied."""

    last_id: int
    exists: bool  # whether its checkpoint row is stored yet
    applied: int = 0


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
        return (await self.handle_batch(projection_name, topic, [envelope]))[0]

    async def handle_batch(self, projection_name: str, topic: str, envelopes: Sequence[EventEnvelope]) -> list[Outcome]:
        """What `handle` does for each envelope in turn, in one transaction: SQLite has one
        writer, so a transaction per event kept every other writer waiting (about 2 events a
        second under search load). Each partition's checkpoint is read and written once. If an
        event fails, nothing of the batch is kept and the broker delivers it again."""
        projection = self.projections[projection_name]
        outcomes: list[Outcome] = []
        async with self.writer.transaction() as conn:
            positions: dict[int, _Position] = {}
            for envelope in envelopes:
                partition = partition_for(envelope.aggregate_id, self.partitions)
                if partition not in positions:
                    row = await self._checkpoint(conn, projection.name, topic, partition)
                    positions[partition] = _Position(row[0] if row else 0, exists=row is not None)
                position = positions[partition]
                if envelope.notification_id <= position.last_id:
                    outcomes.append(Outcome.duplicate)
                    continue
                if envelope.previous_id != position.last_id:
                    logger.debug(
                        "{} skips #{} on {}[{}]: it follows #{}, checkpoint is #{}",
                        projection.name, envelope.notification_id, topic, partition, envelope.previous_id, position.last_id,
                    )
                    outcomes.append(Outcome.gap)
                    continue
                await projection.apply(conn, envelope)
                position.last_id, position.applied = envelope.notification_id, position.applied + 1
                outcomes.append(Outcome.applied)
            for partition, position in positions.items():
                if position.applied:
                    await self._advance(conn, projection.name, topic, partition, position)
        return outcomes

    @staticmethod
    def _key(name: str, topic: str, partition: int) -> sa.ColumnElement[bool]:
        return (checkpoints.c.projection == name) & (checkpoints.c.topic == topic) & (checkpoints.c.partition == partition)

    async def _checkpoint(self, conn: AsyncConnection, name: str, topic: str, partition: int) -> sa.Row | None:
        query = sa.select(checkpoints.c.last_id).where(self._key(name, topic, partition)).with_for_update()
        return (await conn.execute(query)).first()

    async def _advance(self, conn: AsyncConnection, name: str, topic: str, partition: int, position: _Position) -> None:
        values = dict(last_id=position.last_id, updated_at=time.time())
        if position.exists:
            await conn.execute(
                checkpoints.update()
                .where(self._key(name, topic, partition))
                .values(applied=checkpoints.c.applied + position.applied, **values)
            )
        else:
            await conn.execute(
                checkpoints.insert().values(projection=name, topic=topic, partition=partition, applied=position.applied, **values)
            )
