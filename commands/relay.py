"""The outbox relay: publishes every stored event to the broker, in notification order.

It records how far it got, and for every message the one before it on the same topic
partition, so a consumer can tell a gap (a message lost with the broker) from a
duplicate. When a live consumer stays behind what was published, the relay rewinds and
publishes again from that consumer's position: consumers are idempotent, so losing the
broker costs time, never data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import sqlalchemy as sa
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from commands.ddl import create_all_locked
from commands.policies import commands_for
from domain.envelope import EventEnvelope, partition_for

metadata = sa.MetaData()

relay_position = sa.Table(
    "relay_position",
    metadata,
    sa.Column("relay", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

# One row per published event: its topic partition and the message before it there.
relay_published = sa.Table(
    "relay_published",
    metadata,
    sa.Column("notification_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("previous_id", sa.BigInteger, nullable=False),
)


class Publisher(Protocol):
    async def publish(self, topic: str, key: str, partition: int, message: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class ConsumerPosition:
    consumer: str
    topic: str
    partition: int
    last_id: int
    updated_at: float  # epoch seconds of the consumer's last heartbeat or progress


class OutboxRelay:
    def __init__(
        self,
        *,
        read_store: Callable[[int, int], Sequence[EventEnvelope]],
        engine: AsyncEngine,
        publisher: Publisher,
        topic_for_family: Callable[[str], str],
        command_topic: Callable[[str], str],
        partitions: int,
        consumer_positions: Callable[[], Awaitable[list[ConsumerPosition]]],
        batch: int = 500,
        poll_seconds: float = 0.2,
        redelivery_after_seconds: float = 5.0,
        name: str = "main",
        broker_lost: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.read_store = read_store
        self.engine = engine
        self.publisher = publisher
        self.topic_for_family = topic_for_family
        self.command_topic = command_topic
        self.partitions = partitions
        self.consumer_positions = consumer_positions
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.redelivery_after = redelivery_after_seconds
        self.name = name
        # Asked before each batch: True when the broker came back empty (a restarted memory
        # broker). Publishing then starts again from the oldest consumer checkpoint.
        self.broker_lost = broker_lost
        self.position = 0
        self.heads: dict[tuple[str, int], int] = {}
        self.published_total = 0
        self.rewinds = 0
        self._behind_since: dict[str, tuple[int, float]] = {}

    async def start(self) -> None:
        async with self.engine.begin() as conn:
            await create_all_locked(conn, metadata)
            row = (
                await conn.execute(sa.select(relay_position.c.position).where(relay_position.c.relay == self.name))
            ).first()
        self.position = row[0] if row else 0
        await self._load_heads()

    async def _load_heads(self) -> None:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(relay_published.c.topic, relay_published.c.partition, sa.func.max(relay_published.c.notification_id))
                .where(relay_published.c.notification_id <= self.position)
                .group_by(relay_published.c.topic, relay_published.c.partition)
            )
            self.heads = {(topic, partition): last for topic, partition, last in rows}

    async def publish_pending(self) -> int:
        """Publishes one batch of stored events after the position; returns how many."""
        envelopes = await asyncio.to_thread(self.read_store, self.position, self.batch)
        if not envelopes:
            return 0
        if self.broker_lost is not None and await self.broker_lost():
            await self.republish_unapplied()
            return 0
        republishing = await self._known_previous_ids(envelopes)
        # Heads change only once the batch is recorded: a failed publish leaves them as they were.
        heads = dict(self.heads)
        rows = []
        for envelope in envelopes:
            topic = self.topic_for_family(envelope.family)
            partition = partition_for(envelope.aggregate_id, self.partitions)
            previous_id = republishing.get(envelope.notification_id, heads.get((topic, partition), 0))
            message = replace(envelope, previous_id=previous_id).to_dict()
            await self.publisher.publish(topic, envelope.aggregate_id, partition, message)
            for command in commands_for(envelope):
                await self.publisher.publish(
                    self.command_topic(command.kind), envelope.aggregate_id, partition, command.to_dict()
                )
            heads[(topic, partition)] = envelope.notification_id
            if envelope.notification_id not in republishing:
                rows.append(
                    {"notification_id": envelope.notification_id, "topic": topic, "partition": partition, "previous_id": previous_id}
                )
        # Position and heads change together, once recorded: readers never see one without the other.
        position = envelopes[-1].notification_id
        async with self.engine.begin() as conn:
            if rows:
                await conn.execute(relay_published.insert(), rows)
            await self._save_position(conn, position)
        self.position, self.heads = position, heads
        self.published_total += len(envelopes)
        return len(envelopes)

    async def _known_previous_ids(self, envelopes: Sequence[EventEnvelope]) -> dict[int, int]:
        """After a rewind, messages keep the previous ids they were first published with."""
        first, last = envelopes[0].notification_id, envelopes[-1].notification_id
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(relay_published.c.notification_id, relay_published.c.previous_id).where(
                    relay_published.c.notification_id.between(first, last)
                )
            )
            return dict(rows.all())

    async def _save_position(self, conn: Any, position: int) -> None:
        updated = await conn.execute(
            relay_position.update().where(relay_position.c.relay == self.name).values(position=position)
        )
        if updated.rowcount == 0:
            await conn.execute(relay_position.insert().values(relay=self.name, position=position))

    async def check_consumers(self, now: float | None = None) -> int | None:
        """Rewinds when a live consumer stays behind a published head without applying
        anything at all (on any partition) for `redelivery_after` seconds: a consumer that
        is merely busy keeps moving somewhere. Returns the new position, if it rewound."""
        now = time.time() if now is None else now
        by_consumer: dict[str, list[ConsumerPosition]] = {}
        for pos in await self.consumer_positions():
            if now - pos.updated_at < 3 * self.redelivery_after:  # only live consumers
                by_consumer.setdefault(pos.consumer, []).append(pos)
        stalled_at: list[int] = []
        for consumer, positions in by_consumer.items():
            behind = [p.last_id for p in positions if p.last_id < self.heads.get((p.topic, p.partition), 0)]
            progress = sum(p.last_id for p in positions)
            last_progress, since = self._behind_since.get(consumer, (progress, now))
            if not behind or progress != last_progress:
                since = now
            self._behind_since[consumer] = (progress, since)
            if behind and now - since >= self.redelivery_after:
                stalled_at.append(min(behind))
        for consumer in set(self._behind_since) - set(by_consumer):
            del self._behind_since[consumer]
        if not stalled_at:
            return None
        await self.rewind(min(stalled_at))
        self._behind_since.clear()
        return self.position

    async def republish_unapplied(self) -> None:
        """After the broker lost its messages: publish again everything after the oldest
        consumer checkpoint (consumers ignore what they have already applied)."""
        positions = await self.consumer_positions()
        await self.rewind(min((p.last_id for p in positions), default=0))

    async def rewind(self, position: int) -> None:
        if position >= self.position:
            return
        logger.warning("relay rewinds from {} to {}: a consumer stayed behind (broker lost messages?)", self.position, position)
        self.rewinds += 1
        async with self.engine.begin() as conn:
            await self._save_position(conn, position)
        self.position = position
        await self._load_heads()

    async def run(self, stop: asyncio.Event) -> None:
        """Publishes until `stop`; call `start` first."""
        last_check = 0.0
        while not stop.is_set():
            try:
                published = await self.publish_pending()
                if time.monotonic() - last_check > 1.0:
                    last_check = time.monotonic()
                    await self.check_consumers()
            except Exception as error:  # the broker is away: keep the position, try again
                logger.warning("relay could not publish ({}); retrying", error)
                published = 0
                await asyncio.sleep(1.0)
            if not published:
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
