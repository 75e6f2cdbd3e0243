"""The reconciler re-issues analysis for photos stuck before it, once per period."""

from __future__ import annotations

from commands.policies import AnalysePhoto
from commands.reconciler import Reconciler


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int, dict]] = []

    async def publish(self, topic: str, key: str, partition: int, message: dict) -> None:
        self.sent.append((topic, key, partition, message))


async def test_stuck_photos_get_analyse_again_once_per_period():
    stuck = {"p1": 100.0, "p2": 100.0, "p3": 190.0}  # photo id → imported at

    async def find_unfinished(imported_before: float) -> list[AnalysePhoto]:
        return [AnalysePhoto(pid, "h" * 64, "ann") for pid, at in stuck.items() if at < imported_before]

    publisher = RecordingPublisher()
    reconciler = Reconciler(find_unfinished, publisher, lambda kind: f"fs.commands.{kind}", 4, after_seconds=60)

    assert await reconciler.reconcile(now=200) == 2  # p3 is too recent to call stuck
    assert {m[3]["photo_id"] for m in publisher.sent} == {"p1", "p2"}
    assert all(m[0] == "fs.commands.analyse" and 0 <= m[2] < 4 for m in publisher.sent)
    assert await reconciler.reconcile(now=230) == 0  # issued 30 s ago: give the workers time
    del stuck["p1"]  # analysed meanwhile
    assert await reconciler.reconcile(now=261) == 2  # p2 again, p3 now stuck too
    assert [m[3]["photo_id"] for m in publisher.sent[2:]] == ["p2", "p3"]
