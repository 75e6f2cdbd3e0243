"""The relay's judgement of a consumer: busy is not stalled; stalled gets a republish."""

from __future__ import annotations

from commands.relay import ConsumerPosition, OutboxRelay
from projections.db import make_engine


def relay_with(positions: list[ConsumerPosition], tmp_path) -> OutboxRelay:
    async def consumer_positions() -> list[ConsumerPosition]:
        return positions

    relay = OutboxRelay(
        read_store=lambda after, limit: [], engine=make_engine(f"sqlite:///{tmp_path / 'rm.sqlite'}"),
        publisher=None, topic_for_family=str, command_topic=str, partitions=2,
        consumer_positions=consumer_positions, redelivery_after_seconds=10,
    )
    relay.position = 100
    relay.heads = {("t", 0): 90, ("t", 1): 100}
    return relay


async def test_a_busy_consumer_is_not_rewound_a_stalled_one_is(tmp_path):
    positions = [ConsumerPosition("photos", "t", 0, 50, 1000.0), ConsumerPosition("photos", "t", 1, 60, 1000.0)]
    relay = relay_with(positions, tmp_path)
    await relay.start()
    relay.position, relay.heads = 100, {("t", 0): 90, ("t", 1): 100}
    assert await relay.check_consumers(now=1000) is None
    # It moves on partition 1 only: busy, not stalled, however long partition 0 waits.
    positions[1] = ConsumerPosition("photos", "t", 1, 70, 1005.0)
    assert await relay.check_consumers(now=1009) is None
    positions[1] = ConsumerPosition("photos", "t", 1, 80, 1015.0)
    assert await relay.check_consumers(now=1016) is None
    # Nothing moves for longer than redelivery_after: republish from its lowest position.
    positions[:] = [ConsumerPosition("photos", "t", 0, 50, 1030.0), ConsumerPosition("photos", "t", 1, 80, 1030.0)]
    assert await relay.check_consumers(now=1020) is None
    assert await relay.check_consumers(now=1030) == 50
    assert relay.rewinds == 1
    await relay.engine.dispose()


async def test_caught_up_and_dead_consumers_cause_no_rewind(tmp_path):
    positions = [
        ConsumerPosition("photos", "t", 0, 90, 1000.0),
        ConsumerPosition("photos", "t", 1, 100, 1000.0),
        ConsumerPosition("gone", "t", 0, 0, 900.0),  # no heartbeat for long: not a live consumer
    ]
    relay = relay_with(positions, tmp_path)
    await relay.start()
    relay.position, relay.heads = 100, {("t", 0): 90, ("t", 1): 100}
    assert await relay.check_consumers(now=1000) is None
    assert await relay.check_consumers(now=1100) is None
    await relay.engine.dispose()
