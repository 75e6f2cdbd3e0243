"""Re-issues analysis for photos whose processing never completed (a command lost with
the broker, a worker that died): the event store says what is done, not the broker."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from loguru import logger

from commands.policies import AnalysePhoto
from commands.relay import Publisher
from domain.envelope import partition_for

FindUnfinished = Callable[[float], Awaitable[list[AnalysePhoto]]]


class Reconciler:
    def __init__(
        self,
        find_unfinished: FindUnfinished,
        publisher: Publisher,
        command_topic: Callable[[str], str],
        partitions: int,
        after_seconds: float,
    ) -> None:
        self.find_unfinished = find_unfinished
        self.publisher = publisher
        self.command_topic = command_topic
        self.partitions = partitions
        self.after_seconds = after_seconds
        self._issued_at: dict[str, float] = {}
        self.reissued = 0

    async def reconcile(self, now: float | None = None) -> int:
        """Sends AnalysePhoto again for photos stuck longer than `after_seconds`; returns how many."""
        now = time.time() if now is None else now
        count = 0
        for command in await self.find_unfinished(now - self.after_seconds):
            if now - self._issued_at.get(command.photo_id, 0.0) < self.after_seconds:
                continue
            await self.publisher.publish(
                self.command_topic(command.kind), command.photo_id, partition_for(command.photo_id, self.partitions),
                command.to_dict(),
            )
            self._issued_at[command.photo_id] = now
            count += 1
        if count:
            logger.info("reconciler re-issued analysis for {} photos", count)
        self.reissued += count
        return count
