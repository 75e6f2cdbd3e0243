"""A projection applies each message once, in order, and holds at a gap until it is filled."""

from __future__ import annotations

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
