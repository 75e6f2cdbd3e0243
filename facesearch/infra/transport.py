"""All broker traffic goes through FastStream; the transport (Kafka, RabbitMQ, Redis
Streams) is one setting. Topics are named `<prefix>.events.<family>` and
`<prefix>.commands.<kind>`; on Kafka the partition is ours (by aggregate id), elsewhere
the stream or queue keeps the order of one publisher.

`BrokerTransport` is what the rest of the system uses; what differs between the transports
(the client, publishing, the two kinds of subscription, Kafka's topics, offsets and cluster
id) is one wire class each below."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from loguru import logger

from facesearch.settings import Settings, Transport

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]
BatchHandler = Callable[[list[dict[str, Any]]], Awaitable[None]]


class PublishFailed(Exception):
    """The broker did not take a message (it is away, or refused it)."""


@dataclass(frozen=True)
class BatchOptions:
    max_records: int
    max_wait_ms: int
    session_timeout_ms: int


Receive = Callable[[Any], Awaitable[None]]


class Wire(Protocol):
    """One transport's ways. Kafka-only duties are no-ops on the others."""

    def new_broker(self) -> Any: ...

    async def publish(self, broker: Any, topic: str, partition: int, message: dict[str, Any]) -> None: ...

    def subscribe(self, broker: Any, topic: str, group: str, receive: Receive) -> Any: ...

    def subscribe_batches(self, broker: Any, topic: str, group: str, receive: Receive, receive_one: Receive,
                          options: BatchOptions) -> Any: ...

    async def ensure_topics(self, topics: set[str], partitions: int) -> None: ...

    async def cluster_id(self) -> str | None: ...

    async def rewind_truncated_partitions(self) -> int: ...

    async def describe_consumers(self) -> list[tuple[str, int, int, int]]: ...


class _NotKafka:
    """The Kafka-only duties, as nothing to do."""

    async def ensure_topics(self, topics: set[str], partitions: int) -> None:
        return None

    async def cluster_id(self) -> str | None:
        return None

    async def rewind_truncated_partitions(self) -> int:
        return 0

    async def describe_consumers(self) -> list[tuple[str, int, int, int]]:
        return []


class KafkaWire:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.subscribers: list[Any] = []

    def new_broker(self) -> Any:
        from faststream.kafka import KafkaBroker

        return KafkaBroker(self.bootstrap, logger=None)

    async def publish(self, broker: Any, topic: str, partition: int, message: dict[str, Any]) -> None:
        # The Kafka key is our partition number, not the aggregate id: all messages of one
        # of our partitions then share one Kafka partition, in order, however many
        # partitions the topic has (a broker may auto-create it with just one).
        await broker.publish(message, topic, key=str(partition).encode())

    def subscribe(self, broker: Any, topic: str, group: str, receive: Receive) -> Any:
        subscriber = broker.subscriber(topic, group_id=group, auto_offset_reset="earliest")
        subscriber(receive)
        self.subscribers.append(subscriber)
        return subscriber

    def subscribe_batches(self, broker: Any, topic: str, group: str, receive: Receive, receive_one: Receive,
                          options: BatchOptions) -> Any:
        from faststream import AckPolicy

        subscriber = broker.subscriber(
            topic, group_id=group, auto_offset_reset="earliest", batch=True, max_records=options.max_records,
            batch_timeout_ms=options.max_wait_ms, ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=options.session_timeout_ms,
            heartbeat_interval_ms=max(100, options.session_timeout_ms // 3),
        )
        subscriber(receive)
        self.subscribers.append(subscriber)
        return subscriber

    async def ensure_topics(self, topics: set[str], partitions: int) -> None:
        """Topics get the configured partition count before anyone publishes."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in sorted(topics) if t not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
        finally:
            await admin.close()

    async def cluster_id(self) -> str | None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            return (await admin.describe_cluster())["cluster_id"]
        finally:
            await admin.close()

    def _consumers(self) -> list[Any]:
        return [c for c in (getattr(s, "consumer", None) for s in self.subscribers) if c is not None]

    async def rewind_truncated_partitions(self) -> int:
        rewound = 0
        for consumer in self._consumers():
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
        described = []
        for consumer in self._consumers():
            assigned = list(consumer.assignment())
            ends = await consumer.end_offsets(assigned) if assigned else {}
            for tp in assigned:
                described.append((tp.topic, tp.partition, await consumer.position(tp), ends[tp]))
        return described


class RabbitWire(_NotKafka):
    """One fan-out exchange per topic, one durable queue per consumer group."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._declared: set[str] = set()  # exchanges this client has declared

    def new_broker(self) -> Any:
        from faststream.rabbit import RabbitBroker

        return RabbitBroker(self.url, logger=None)

    @staticmethod
    def _exchange(topic: str) -> Any:
        from faststream.rabbit import ExchangeType, RabbitExchange

        return RabbitExchange(topic, type=ExchangeType.FANOUT, durable=True)

    async def publish(self, broker: Any, topic: str, partition: int, message: dict[str, Any]) -> None:
        if topic not in self._declared:  # publishing to an exchange nobody declared yet fails
            await broker.declare_exchange(self._exchange(topic))
            self._declared.add(topic)
        await broker.publish(message, exchange=self._exchange(topic))

    def subscribe(self, broker: Any, topic: str, group: str, receive: Receive) -> Any:
        from faststream.rabbit import RabbitQueue

        return broker.subscriber(RabbitQueue(f"{topic}.{group}", durable=True), self._exchange(topic))(receive)

    def subscribe_batches(self, broker: Any, topic: str, group: str, receive: Receive, receive_one: Receive,
                          options: BatchOptions) -> Any:
        from faststream import AckPolicy
        from faststream.rabbit import RabbitQueue

        # RabbitMQ delivers one message at a time: the handler sees batches of one.
        return broker.subscriber(
            RabbitQueue(f"{topic}.{group}", durable=True), self._exchange(topic), ack_policy=AckPolicy.NACK_ON_ERROR
        )(receive_one)


class RedisWire(_NotKafka):
    def __init__(self, url: str) -> None:
        self.url = url

    def new_broker(self) -> Any:
        from faststream.redis import RedisBroker

        # faststream types Redis's logger without None, which turns its logging off here as on the others.
        return RedisBroker(self.url, logger=None)  # type: ignore[arg-type]

    async def publish(self, broker: Any, topic: str, partition: int, message: dict[str, Any]) -> None:
        await broker.publish(message, stream=topic)

    def subscribe(self, broker: Any, topic: str, group: str, receive: Receive) -> Any:
        from faststream.redis import StreamSub

        return broker.subscriber(stream=StreamSub(topic, group=group, consumer=f"{group}-1"))(receive)

    def subscribe_batches(self, broker: Any, topic: str, group: str, receive: Receive, receive_one: Receive,
                          options: BatchOptions) -> Any:
        from faststream import AckPolicy
        from faststream.redis import StreamSub

        return broker.subscriber(
            stream=StreamSub(topic, group=group, consumer=f"{group}-1", batch=True, max_records=options.max_records,
                             polling_interval=options.max_wait_ms),
            ack_policy=AckPolicy.NACK_ON_ERROR,
        )(receive)


def wire_for(settings: Settings, bootstrap: str) -> Wire:
    """The configured transport's wire; `bootstrap` is the Kafka address to use."""
    if settings.transport is Transport.kafka:
        return KafkaWire(bootstrap)
    if settings.transport is Transport.rabbitmq:
        return RabbitWire(settings.rabbitmq_url)
    return RedisWire(settings.redis_url)


class BrokerTransport:
    def __init__(self, settings: Settings, bootstrap: str | None = None) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix
        self.partitions = settings.partitions
        self._topics: set[str] = set()
        # Every subscription, so that a reconnect can make them again on a new broker client.
        self._subscriptions: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.reconnects = 0
        self._cluster_id: str | None = None
        self._recovering = asyncio.Lock()
        self.bootstrap = bootstrap or settings.kafka_bootstrap
        self.wire = wire_for(settings, self.bootstrap)
        self.broker = self.wire.new_broker()

    async def reconnect(self) -> None:
        """Replaces every producer and consumer with new ones: the way back from a broker
        that lost its state under clients that did not notice. The old clients stop first,
        so none of them can commit its stale offsets into the new broker's groups."""
        old = self.broker
        try:  # a client of a lost broker can wait long on its last commit
            await asyncio.wait_for(old.stop(), 10)
        except Exception as error:
            logger.warning("old broker clients did not stop cleanly: {!r}", error)
        self.wire = wire_for(self.settings, self.bootstrap)
        self.broker = self.wire.new_broker()
        for method, args, kwargs in self._subscriptions:
            getattr(self, method)(*args, _record=False, **kwargs)
        if self._topics:
            await self.ensure_topics([])
        await self.broker.start()
        self.reconnects += 1

    async def cluster_id(self) -> str | None:
        """The Kafka cluster's id (None on the other transports)."""
        return await self.wire.cluster_id()

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
        self._topics.update(topics)
        await self.wire.ensure_topics(self._topics, self.partitions)

    async def publish(self, topic: str, key: str, partition: int, message: dict[str, Any]) -> None:
        # A client stuck on a broker that went away must fail, not hang the relay.
        try:
            await asyncio.wait_for(self.wire.publish(self.broker, topic, partition, message),
                                   self.settings.publish_timeout_seconds)
        except Exception as error:
            raise PublishFailed(f"publishing to {topic} failed: {error!r}") from error

    def subscribe(self, topic: str, group: str, handler: MessageHandler, *, _record: bool = True) -> Any:
        """Registers `handler` for every message on `topic`, as a member of consumer `group`."""
        if _record:
            self._subscriptions.append(("subscribe", (topic, group, handler), {}))

        async def receive(body: dict[str, Any]) -> None:
            await handler(body)

        return self.wire.subscribe(self.broker, topic, group, receive)

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
        if _record:
            options = dict(max_records=max_records, max_wait_ms=max_wait_ms, session_timeout_ms=session_timeout_ms)
            self._subscriptions.append(("subscribe_batches", (topic, group, handler), options))

        async def receive(bodies: list[dict[str, Any]]) -> None:
            await handler(bodies)

        async def receive_one(body: dict[str, Any]) -> None:
            await handler([body])

        return self.wire.subscribe_batches(self.broker, topic, group, receive, receive_one,
                                           BatchOptions(max_records, max_wait_ms, session_timeout_ms))

    async def rewind_truncated_partitions(self) -> int:
        """A Kafka consumer whose position lies beyond a partition's end is reading a log
        that was lost (a memory broker restarted): it goes back to the partition's start."""
        return await self.wire.rewind_truncated_partitions()

    async def describe_consumers(self) -> list[tuple[str, int, int, int]]:
        """(topic, partition, position, end offset) of every assigned Kafka partition, for diagnostics."""
        return await self.wire.describe_consumers()

    async def start(self) -> None:
        await self.broker.start()
        with contextlib.suppress(Exception):  # the id the broker-loss watch compares with
            self._cluster_id = await self.cluster_id()

    async def stop(self) -> None:
        await self.broker.stop()
