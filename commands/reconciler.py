"""Re-issues analysis for photos whose processing never completed (a command lost with
the broker, a worker that died): the event store says what is done, not the broker.

A photo still waiting is usually just queued: a folder of thousands takes the workers many
minutes, and re-issuing every waiting photo each period would fill the queue with copies
(measured: 5,710 redundant commands in 12 minutes of a 10,000-photo soak). So a photo is
asked again only when its command must be gone: the workers finished photos queued well after
it on its partition (commands are taken in order there), or they finished nothing for a whole
period although photos wait (and the read model is not behind). Each photo waits longer after
every attempt.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loguru import logger

from commands.policies import AnalysePhoto
from commands.relay import Publisher
from domain.envelope import partition_for

MAX_BACKOFF_PERIODS = 16  # at most this many periods between two attempts for one photo


@dataclass(frozen=True)
class Unfinished:
    command: AnalysePhoto
    imported_at: float  # epoch seconds: when its first command was issued


@dataclass(frozen=True)
class Progress:
    """What the workers finished, from the read model."""

    last_finished_at: float | None  # epoch seconds of the latest analysis, if any
    # partition -> the latest import time among finished photos imported at or after a bound
    frontier: dict[int, float] = field(default_factory=dict)
    # Whether the read model holds every published photo event: a read model behind the event
    # store shows no recent analysis although the workers are busy, which is not "idle".
    read_model_current: bool = True


FindUnfinished = Callable[[float], Awaitable[list[Unfinished]]]
FindProgress = Callable[[float], Awaitable[Progress]]


class Reconciler:
    def __init__(
        self,
        find_unfinished: FindUnfinished,
        find_progress: FindProgress,
        publisher: Publisher,
        command_topic: Callable[[str], str],
        partitions: int,
        after_seconds: float,
    ) -> None:
        self.find_unfinished = find_unfinished
        self.find_progress = find_progress
        self.publisher = publisher
        self.command_topic = command_topic
        self.partitions = partitions
        self.after_seconds = after_seconds
        self._issued: dict[str, tuple[float, int]] = {}  # photo id -> (last re-issued at, attempts)
        self.reissued = 0

    async def reconcile(self, now: float | None = None) -> int:
        """Sends AnalysePhoto again for photos whose command is lost; returns how many."""
        now = time.time() if now is None else now
        waiting = await self.find_unfinished(now - self.after_seconds)
        if not waiting:
            self._issued.clear()
            return 0
        progress = await self.find_progress(min(w.imported_at for w in waiting))
        idle = progress.read_model_current and (
            progress.last_finished_at is None or now - progress.last_finished_at >= self.after_seconds
        )
        count = 0
        for item in waiting:
            photo_id = item.command.photo_id
            issued_at, attempts = self._issued.get(photo_id, (item.imported_at, 0))
            if now - issued_at < self.after_seconds * min(2**attempts, MAX_BACKOFF_PERIODS):
                continue
            partition = partition_for(photo_id, self.partitions)
            # Photos queued half a period after this one are done: its command was passed by.
            overtaken = progress.frontier.get(partition, float("-inf")) - issued_at >= self.after_seconds / 2
            if not (idle or overtaken):
                continue  # the workers are still working through the queue in front of it
            await self.publisher.publish(
                self.command_topic(item.command.kind), photo_id, partition, item.command.to_dict(),
            )
            self._issued[photo_id] = (now, attempts + 1)
            count += 1
        for photo_id in set(self._issued) - {w.command.photo_id for w in waiting}:
            del self._issued[photo_id]  # analysed (or deleted) since
        if count:
            logger.info("reconciler re-issued analysis for {} photos", count)
        self.reissued += count
        return count
