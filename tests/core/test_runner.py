"""A projection applies each message once, in order, and holds at a gap until it is filled."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from domain.envelope import EventEnvelope, partition_for
from projections.db import make_engine
from projections.photos import photos_projection
from projections.runner import Outcome, ProjectionRunner
from projections.tables import checkpoints, photos

TOPIC = "fs.events.photos"


def imported(notification_id: int, previous_id: int, photo_id: str) -> EventEnvelope:
    payload = dict(owner="ann", source="local", source_ref=f"local:/{photo_id}", import_id=None,
                   content_hash=photo_id * 8, size=1, width=1, height=1, mime_type="image/png")
    return EventEnvelope(notification_id, "photos", photo_id, 1, "PhotoImported", 2,
                         "2026-01-01T00:00:00+00:00", payload, previous_id)


async def test_duplicates_are_dropped_and_a_gap_holds_until_republished(tmp_path):
    runner = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / 'rm.sqlite'}"), [photos_projection], partitions=1)
    await runner.create_tables()
    first, second, third = imported(1, 0, "a"), imported(2, 1, "b"), imported(3, 2, "c")
    assert {partition_for(e.aggregate_id, 1) for e in (first, second, third)} == {0}

    assert await runner.handle("photos", TOPIC, first) is Outcome.applied
    assert await runner.handle("photos", TOPIC, first) is Outcome.duplicate  # redelivered
    assert await runner.handle("photos", TOPIC, third) is Outcome.gap  # `second` was lost
    async with runner.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(photos))).scalar() == 1
    # The relay publishes again from the gap: both land, once each, in order.
    for envelope in (second, third):
        assert await runner.handle("photos", TOPIC, envelope) is Outcome.applied
    assert await runner.handle("photos", TOPIC, second) is Outcome.duplicate
    async with runner.engine.connect() as conn:
        assert sorted((await conn.execute(sa.select(photos.c.id))).scalars()) == ["a", "b", "c"]
        row = (await conn.execute(sa.select(checkpoints.c.last_id, checkpoints.c.applied))).one()
    assert tuple(row) == (3, 3)
    await runner.engine.dispose()


def envelopes_on_two_partitions() -> list[EventEnvelope]:
    """Photos on partitions 0 and 1 of two, each chained to the one before it on its partition."""
    chained, last = [], {0: 0, 1: 0}
    for index in range(12):
        photo_id = f"photo-{index}"
        partition = partition_for(photo_id, 2)
        chained.append(imported(index + 1, last[partition], photo_id))
        last[partition] = index + 1
    assert {partition_for(e.aggregate_id, 2) for e in chained} == {0, 1}
    return chained


async def stored(runner: ProjectionRunner) -> tuple[list[str], list[tuple[int, int, int]]]:
    async with runner.engine.connect() as conn:
        ids = sorted((await conn.execute(sa.select(photos.c.id))).scalars())
        marks = [tuple(r) for r in await conn.execute(
            sa.select(checkpoints.c.partition, checkpoints.c.last_id, checkpoints.c.applied).order_by(checkpoints.c.partition))]
    return ids, marks


async def test_a_batch_has_the_outcomes_of_its_events_applied_one_by_one(tmp_path):
    chained = envelopes_on_two_partitions()
    # A batch as a broker may hand it: redeliveries, a lost message, and what follows the gap.
    batch = chained[:5] + chained[2:4] + chained[6:]
    one_by_one = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / 'one.sqlite'}"), [photos_projection], partitions=2)
    batched = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / 'batch.sqlite'}"), [photos_projection], partitions=2)
    for runner in (one_by_one, batched):
        await runner.create_tables()

    expected = [await one_by_one.handle("photos", TOPIC, e) for e in batch]
    assert await batched.handle_batch("photos", TOPIC, batch) == expected
    assert Outcome.duplicate in expected and Outcome.gap in expected
    assert await stored(batched) == await stored(one_by_one)

    # The relay publishes again from the gap: the rest lands once, checkpoints count each event once.
    assert set(await batched.handle_batch("photos", TOPIC, chained)) == {Outcome.applied, Outcome.duplicate}
    ids, marks = await stored(batched)
    assert ids == sorted(e.aggregate_id for e in chained)
    assert sum(applied for _, _, applied in marks) == 12
    assert {last for _, last, _ in marks} == {max(e.notification_id for e in chained if partition_for(e.aggregate_id, 2) == p)
                                               for p in (0, 1)}
    for runner in (one_by_one, batched):
        await runner.engine.dispose()


async def test_a_failing_event_keeps_nothing_of_its_batch(tmp_path):
    chained = envelopes_on_two_partitions()
    runner = ProjectionRunner(make_engine(f"sqlite:///{tmp_path / 'rm.sqlite'}"), [photos_projection], partitions=2)
    await runner.create_tables()
    broken = dataclasses.replace(chained[6], payload={})  # next on its partition: it is applied, and fails
    with pytest.raises(KeyError):
        await runner.handle_batch("photos", TOPIC, chained[:6] + [broken])
    assert await stored(runner) == ([], [])
    # Delivered again without the broken event, the batch lands whole.
    assert await runner.handle_batch("photos", TOPIC, chained[:6]) == [Outcome.applied] * 6
    assert len((await stored(runner))[0]) == 6
    await runner.engine.dispose()
