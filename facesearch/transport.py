"""All broker traffic goes through FastStream; the transport (Kafka, RabbitMQ, Redis
Streams) is one setting. Topics are named `<prefix>.events.<family>` and
`<prefix>.commands.<kind>`; on Kafka the partition is ours (by aggregate id), elsewhere
the stream or queue keeps the order of one publisher."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream import FastStream  # noqa: F401  (re-exported for the app runner)

from facesearch.settings import Settings, Transport

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]


class BrokerTransport:
    def __init__(self, settings: Settings, bootstrap: str | None = None) -> None:
        self.settings = settings
        self.kind = settings.transport
        self.prefix = settings.topic_prefix
        self.partitions = settings.partitions
        self._topics: set[str] = set()
        self._kafka_subscribers: list[Any] = []
        if self.kind is Transport.kafka:
            from faststream.kafka import KafkaBroker

            self.bootstrap = bootstrap or settings.kafka_bootstrap
            self.broker = KafkaBroker(self.bootstrap, logger=None)
        elif self.kind is Transport.rabbitmq:
            from faststream.rabbit import RabbitBroker

            self.broker = RabbitBroker(settings.rabbitmq_url, logger=None)
        else:
            from faststream.redis import RedisBroker

            self.broker = RedisBroker(settings.redis_url, logger=None)

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
        if self.kind is Transport.kafka:
            try:
                await self.broker.publish(message, topic, key=key.encode(), partition=partition)
            except Exception:
                # A broker that lost its memory lost its topics too: create them again, then retry.
                await self.ensure_topics([topic])
                await self.broker.publish(message, topic, key=key.encode(), partition=partition)
        elif self.kind is Transport.rabbitmq:
            await self.broker.publish(message, exchange=self._exchange(topic))
        else:
            await self.broker.publish(message, stream=topic)

    def subscribe(self, topic: str, group: str, handler: MessageHandler, batch: int | None = None) -> Any:
        """Registers `handler` for every message on `topic`, as a member of consumer `group`."""

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

    async def rewind_truncated_partitions(self) -> int:
        """A Kafka consumer whose position lies beyond a partition's end is reading a log
        that was lost (a memory broker restarted): it goes back to the partition's start.
        Returns how many partitions were rewound."""
        rewound = 0
        for subscriber in self._kafka_subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            assigned = list(consumer.assignment())
            if not assigned:
                continue
            ends = await consumer.end_offsets(assigned)
            for partition in assigned:
                if await consumer.position(partition) > ends[partition]:
                    await consumer.seek_to_beginning(partition)
                    rewound += 1
        return rewound

    @staticmethod
    def _exchange(topic: str) -> Any:
        from faststream.rabbit import ExchangeType, RabbitExchange

        return RabbitExchange(topic, type=ExchangeType.FANOUT, durable=True)

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()
