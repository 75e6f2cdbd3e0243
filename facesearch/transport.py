"""All broker traffic goes through FastStream; the transport (Kafka, RabbitMQ, Redis
Streams) is one setting. Topics are named `<prefix>.events.<family>` and
`<prefix>.commands.<kind>`; on Kafka the partition is ours (by aggregate id), elsewhere
the stream or queue keeps the order of one publisher."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from facesearch.settings import Settings, Transport

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]
BatchHandler = Callable[[list[dict[str, Any]]], Awaitable[None]]


class PublishFailed(Exception):
    """The broker did not take a message (it is away, or refused it)."""


class BrokerTransport:
    def __init__(self, settings: Settings, bootstrap: str | None = None) -> None:
        self.settings = settings
        self.kind = settings.transport
        self.prefix = settings.topic_prefix
        self.partitions = settings.partitions
        self._topics: set[str] = set()
        self._kafka_subscribers: list[Any] = []
        # Every subscription, so that a reconnect can make them again on a new broker client.
        self._subscriptions: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.reconnects = 0
        self._cluster_id: str | None = None
        self._declared: set[str] = set()  # RabbitMQ exchanges this client has declared
        self._recovering = asyncio.Lock()
        self.bootstrap = bootstrap or settings.kafka_bootstrap
        self.broker = self._new_broker()

    def _new_broker(self) -> Any:
        if self.kind is Transport.kafka:
            from faststream.kafka import KafkaBroker

            return KafkaBroker(self.bootstrap, logger=None)
        if self.kind is Transport.rabbitmq:
            from faststream.rabbit import RabbitBroker

            return RabbitBroker(self.settings.rabbitmq_url, logger=None)
        from faststream.redis import RedisBroker

        # faststream types Redis's logger without None, which turns its logging off here as on the others.
        return RedisBroker(self.settings.redis_url, logger=None)  # type: ignore[arg-type]

    async def reconnect(self) -> None:
        """Replaces every producer and consumer with new ones: the way back from a broker
        that lost its state under clients that did not notice. The old clients stop first,
        so none of them can commit its stale offsets into the new broker's groups."""
        old = self.broker
        try:  # a client of a lost broker can wait long on its last commit
            await asyncio.wait_for(old.stop(), 10)
        except Exception as error:
            logger.warning("old broker clients did not stop cleanly: {!r}", error)
        self.broker = self._new_broker()
        self._kafka_subscribers = []
        self._declared = set()
        for method, args, kwargs in self._subscriptions:
            getattr(self, method)(*args, _record=False, **kwargs)
        if self._topics:
            await self.ensure_topics([])
        await self.broker.start()
        self.reconnects += 1

    async def cluster_id(self) -> str | None:
        """The Kafka cluster's id (None on the other transports)."""
        if self.kind is not Transport.kafka:
            return None
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            return (await admin.describe_cluster())["cluster_id"]
        finally:
            await admin.close()

    async def recover_if_broker_lost(self) -> bool:
        """A broker that comes back with another cluster id is a new broker: every topic,
        message, offset and consumer group of the old one is gone (the embedded memory broker
        gets a fresh id on each start). Topics are made again and every client is replaced;
        returns True when that happened, so the caller can republish what was lost."""
        async with self._recovering:  # one recovery at a time; later callers see the new id
            current = await self.cluster_id()
            if current is None or current == self._cluster_id:
                return False
            previous, self._cluster_id = self._cluster_id, current
            if previous is None:  # the first look: nothing to compare with
                return False
            logger.warning("the broker lost its state (cluster id {} → {}): reconnecting", previous, current)
            await self.reconnect()
            return True

    def event_topic(self, family: str) -> str:
        return f"{self.prefix}.events.{family}"

    def command_topic(self, kind: str) -> str:
        return f"{self.prefix}.commands.{kind}"

    async def ensure_topics(self, topics: list[str]) -> None:
        """Kafka topics get the configured partition count before anyone publishes."""
        if self.kind is not Transport.kafka:
            return
        self._topics.update(topics)
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(t, num_partitions=self.partitions, replication_factor=1) for t in sorted(self._topics) if t not in existing
            ]
            if missing:
                try:
                    await admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()

    async def publish(self, topic: str, key: str, partition: int, message: dict[str, Any]) -> None:
        # A client stuck on a broker that went away must fail, not hang the relay.
        try:
            await asyncio.wait_for(self._publish(topic, key, partition, message), self.settings.publish_timeout_seconds)
        except Exception as error:
            raise PublishFailed(f"publishing to {topic} failed: {error!r}") from error

    async def _publish(self, topic: str, key: str, partition: int, message: dict[str, Any]) -> None:
        if self.kind is Transport.kafka:
            # The Kafka key is our partition number, not the aggregate id: all messages of one
            # of our partitions then share one Kafka partition, in order, however many
            # partitions the topic has (a broker may auto-create it with just one).
            await self.broker.publish(message, topic, key=str(partition).encode())
        elif self.kind is Transport.rabbitmq:
            if topic not in self._declared:  # publishing to an exchange nobody declared yet fails
                await self.broker.declare_exchange(self._exchange(topic))
                self._declared.add(topic)
            await self.broker.publish(message, exchange=self._exchange(topic))
        else:
            await self.broker.publish(message, stream=topic)

    def subscribe(self, topic: str, group: str, handler: MessageHandler, *, _record: bool = True) -> Any:
        """Registers `handler` for every message on `topic`, as a member of consumer `group`."""
        if _record:
            self._subscriptions.append(("subscribe", (topic, group, handler), {}))

        async def receive(body: dict[str, Any]) -> None:
            await handler(body)

        if self.kind is Transport.kafka:
            subscriber = self.broker.subscriber(topic, group_id=group, auto_offset_reset="earliest")
            subscriber(receive)
            self._kafka_subscribers.append(subscriber)
            return subscriber
        if self.kind is Transport.rabbitmq:
            from faststream.rabbit import RabbitQueue

            # One fan-out exchange per topic, one durable queue per consumer group.
            return self.broker.subscriber(RabbitQueue(f"{topic}.{group}", durable=True), self._exchange(topic))(receive)
        from faststream.redis import StreamSub

        return self.broker.subscriber(stream=StreamSub(topic, group=group, consumer=f"{group}-1"))(receive)

    def subscribe_batches(
        self,
        topic: str,
        group: str,
        handler: BatchHandler,
        *,
        max_records: int,
        max_wait_ms: int,
        session_timeout_ms: int = 10_000,
        _record: bool = True,
    ) -> Any:
        """Registers `handler` for lists of up to `max_records` messages (waiting at most
        `max_wait_ms` for a list to fill). A list is acknowledged only after `handler`
        returns; if it raises, or the process dies, the messages come again."""
        from faststream import AckPolicy

        if _record:
            options = dict(max_records=max_records, max_wait_ms=max_wait_ms, session_timeout_ms=session_timeout_ms)
            self._subscriptions.append(("subscribe_batches", (topic, group, handler), options))

        async def receive(bodies: list[dict[str, Any]]) -> None:
            await handler(bodies)

        async def receive_one(body: dict[str, Any]) -> None:
            await handler([body])

        if self.kind is Transport.kafka:
            subscriber = self.broker.subscriber(
                topic, group_id=group, auto_offset_reset="earliest", batch=True, max_records=max_records,
                batch_timeout_ms=max_wait_ms, ack_policy=AckPolicy.NACK_ON_ERROR,
                session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=max(100, session_timeout_ms // 3),
            )
            subscriber(receive)
            self._kafka_subscribers.append(subscriber)
            return subscriber
        if self.kind is Transport.rabbitmq:
            from faststream.rabbit import RabbitQueue

            # RabbitMQ delivers one message at a time: the worker sees batches of one.
            return self.broker.subscriber(
                RabbitQueue(f"{topic}.{group}", durable=True), self._exchange(topic), ack_policy=AckPolicy.NACK_ON_ERROR
            )(receive_one)
        from faststream.redis import StreamSub

        return self.broker.subscriber(
            stream=StreamSub(topic, group=group, consumer=f"{group}-1", batch=True, max_records=max_records,
                             polling_interval=max_wait_ms),
            ack_policy=AckPolicy.NACK_ON_ERROR,
        )(receive)

    async def rewind_truncated_partitions(self) -> int:
        """A Kafka consumer whose position lies beyond a partition's end is reading a log
        that was lost (a memory broker restarted): it goes back to the partition's start."""
        rewound = 0
        for subscriber in self._kafka_subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            assigned = list(consumer.assignment())
            if not assigned:
                continue
            ends = await asyncio.wait_for(consumer.end_offsets(assigned), 5)
            for tp in assigned:
                if await consumer.position(tp) > ends[tp]:
                    await consumer.seek_to_beginning(tp)
                    rewound += 1
        return rewound

    async def describe_consumers(self) -> list[tuple[str, int, int, int]]:
        """(topic, partition, position, end offset) of every assigned Kafka partition, for diagnostics."""
        described = []
        for subscriber in self._kafka_subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if not consumer:
                continue
            assigned = list(consumer.assignment())
            ends = await consumer.end_offsets(assigned) if assigned else {}
            for tp in assigned:
                described.append((tp.topic, tp.partition, await consumer.position(tp), ends[tp]))
        return described

    @staticmethod
    def _exchange(topic: str) -> Any:
        from faststream.rabbit import ExchangeType, RabbitExchange

        return RabbitExchange(topic, type=ExchangeType.FANOUT, durable=True)

    async def start(self) -> None:
        await self.broker.start()
        with contextlib.suppress(Exception):  # the id the broker-loss watch compares with
            self._cluster_id = await self.cluster_id()

    async def stop(self) -> None:
        await self.broker.stop()
