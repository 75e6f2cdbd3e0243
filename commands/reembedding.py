"""Fills in an embedding model added to an archive that already exists: finds analysed photos
with faces a configured model has not embedded (the faces read model says so, and it follows
the event log) and asks the workers to embed them (`EmbedPhoto`), a bounded number at a time.

It keeps no position of its own, so it resumes after a crash by finding what is still
missing. A photo asked for and still missing after `resend_after_seconds` (its command lost
with the broker, a worker that died) is asked again; the workers skip faces already embedded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from loguru import logger

from commands.policies import EmbedPhoto
from commands.relay import Publisher
from domain.envelope import partition_for

# (model, analysed before this epoch second, at most this many) -> photos missing it, in id order.
FindMissing = Callable[[str, float, int], Awaitable[list[EmbedPhoto]]]


class Reembedder:
    def __init__(
        self,
        find_missing: FindMissing,
        publisher: Publisher,
        command_topic: Callable[[str], str],
        partitions: int,
        models: Sequence[str],
        *,
        batch: int,
        grace_seconds: float,
        resend_after_seconds: float,
        idle_seconds: float,
    ) -> None:
        self.find_missing = find_missing
        self.publisher = publisher
        self.command_topic = command_topic
        self.partitions = partitions
        self.models = list(models)
        self.batch = batch
        self.grace_seconds = grace_seconds
        self.resend_after_seconds = resend_after_seconds
        self.idle_seconds = idle_seconds
        self._asked: dict[str, dict[str, float]] = {m: {} for m in self.models}  # model -> photo id -> asked at
        self._idle_until = 0.0
        self.asked = 0

    async def run_round(self, now: float | None = None) -> int:
        """Asks for up to `batch` photos per model beyond those already in flight; returns how
        many. Once nothing is missing it looks again only every `idle_seconds` (a full scan)."""
        now = time.time() if now is None else now
        if now < self._idle_until:
            return 0
        count, missing_any = 0, False
        for model in self.models:
            missing = await self.find_missing(model, now - self.grace_seconds, 2 * self.batch)
            missing_any |= bool(missing)
            count += await self._ask(model, missing, now)
        if not missing_any:
            self._idle_until = now + self.idle_seconds
        if count:
            logger.info("re-embedding: asked the workers for {} photos", count)
        self.asked += count
        return count

    async def _ask(self, model: str, missing: list[EmbedPhoto], now: float) -> int:
        asked = self._asked[model]
        found = {command.photo_id for command in missing}
        # The query saw every missing id up to its last row (all of them when not cut off).
        horizon = max(found) if len(missing) >= 2 * self.batch else None
        for photo_id, at in list(asked.items()):
            done = photo_id not in found and (horizon is None or photo_id <= horizon)
            if done or now - at >= self.resend_after_seconds:
                del asked[photo_id]
        budget = self.batch - len(asked)
        count = 0
        for command in missing:
            if count >= budget:
                break
            if command.photo_id in asked:
                continue
            await self.publisher.publish(
                self.command_topic(command.kind), command.photo_id, partition_for(command.photo_id, self.partitions),
                command.to_dict(),
            )
            asked[command.photo_id] = now
            count += 1
        return count
