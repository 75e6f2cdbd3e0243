"""The reconciler re-issues analysis for photos whose command is lost, and leaves queued
ones alone: before it told the two apart, a 10,000-photo soak sent 5,710 redundant
commands in 12 minutes (every photo waiting over a minute, again each minute)."""

from __future__ import annotations

from commands.policies import AnalysePhoto
from commands.reconciler import Progress, Reconciler, Unfinished
from domain.envelope import partition_for

PARTITIONS = 4


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int, dict]] = []

    async def publish(self, topic: str, key: str, partition: int, message: dict) -> None:
        self.sent.append((topic, key, partition, message))

    def photos(self, start: int = 0) -> list[str]:
        return [m[3]["photo_id"] for m in self.sent[start:]]


class Archive:
    """Photos waiting (id -> imported at) and what the workers finished."""

    def __init__(self, waiting: dict[str, float]) -> None:
        self.waiting = waiting
        self.finished: dict[str, float] = {}  # id -> imported at
        self.last_finished_at: float | None = None
        self.read_model_current = True

    async def find_unfinished(self, imported_before: float) -> list[Unfinished]:
        return [Unfinished(AnalysePhoto(pid, "h" * 64, "ann"), at) for pid, at in self.waiting.items() if at < imported_before]

    async def find_progress(self, imported_after: float) -> Progress:
        frontier: dict[int, float] = {}
        for pid, at in self.finished.items():
            if at >= imported_after:
                p = partition_for(pid, PARTITIONS)
                frontier[p] = max(frontier.get(p, at), at)
        return Progress(self.last_finished_at, frontier, self.read_model_current)

    def finish(self, pid: str, imported_at: float, at: float) -> None:
        self.waiting.pop(pid, None)
        self.finished[pid] = imported_at
        self.last_finished_at = at


def reconciler(archive: Archive, publisher: RecordingPublisher) -> Reconciler:
    return Reconciler(archive.find_unfinished, archive.find_progress, publisher, lambda kind: f"fs.commands.{kind}",
                      PARTITIONS, after_seconds=60)


def same_partition(count: int, partition: int = 0) -> list[str]:
    ids, i = [], 0
    while len(ids) < count:
        if partition_for(f"p{i}", PARTITIONS) == partition:
            ids.append(f"p{i}")
        i += 1
    return ids


async def test_idle_workers_get_stuck_photos_again_each_time_a_little_later():
    archive = Archive({"p1": 100.0, "p2": 100.0, "p3": 190.0})
    publisher = RecordingPublisher()
    r = reconciler(archive, publisher)

    assert await r.reconcile(now=200) == 2  # nothing finished at all: p1 and p2 are lost; p3 is too recent
    assert set(publisher.photos()) == {"p1", "p2"}
    assert all(m[0] == "fs.commands.analyse" and 0 <= m[2] < PARTITIONS for m in publisher.sent)
    assert await r.reconcile(now=230) == 0  # issued 30 s ago: give the workers time
    del archive.waiting["p1"]  # analysed meanwhile
    assert await r.reconcile(now=261) == 1  # p3 is stuck now; p2 waits two periods after its first try
    assert publisher.photos(2) == ["p3"]
    assert await r.reconcile(now=321) == 1 and publisher.photos(3) == ["p2"]


async def test_a_queue_the_workers_are_working_through_gets_no_copies():
    # A folder of 600 photos imported in a minute; the workers finish one a second, in order.
    queued = same_partition(600)
    archive = Archive({pid: 100.0 + i * 0.1 for i, pid in enumerate(queued)})
    publisher = RecordingPublisher()
    r = reconciler(archive, publisher)
    for second in range(0, 600, 15):
        now = 100.0 + second
        for i in range(second):  # done so far
            if queued[i] in archive.waiting:
                archive.finish(queued[i], 100.0 + i * 0.1, now)
        await r.reconcile(now=now)
    assert publisher.sent == []


async def test_a_photo_passed_by_on_its_partition_is_asked_again_while_the_workers_are_busy():
    lost, *rest = same_partition(41)
    first, second, third = rest[:20], rest[20:30], rest[30:]
    imported = {lost: 100.0} | {pid: 130.0 + i for i, pid in enumerate(first)}
    imported |= {pid: 150.0 + i for i, pid in enumerate(second)} | {pid: 240.0 + i for i, pid in enumerate(third)}
    archive = Archive(dict(imported))
    publisher = RecordingPublisher()
    r = reconciler(archive, publisher)
    for i, pid in enumerate(first):  # photos queued 30 s and more after it are done
        archive.finish(pid, imported[pid], 180.0 + i)
    assert await r.reconcile(now=200) == 1 and publisher.photos() == [lost]
    # Its new command is queued behind the rest: while the workers finish photos queued
    # before the re-issue, it is not sent again (nor is anything still in the queue).
    for i, pid in enumerate(second):
        archive.finish(pid, imported[pid], 320.0 + i)
    assert await r.reconcile(now=330) == 0
    for i, pid in enumerate(third):  # queued after the re-issue, and done: it was lost again
        archive.finish(pid, imported[pid], 380.0 + i)
    assert await r.reconcile(now=400) == 1 and publisher.photos(1) == [lost]


async def test_a_photo_behind_on_another_partition_is_not_called_lost():
    busy = same_partition(30, partition=1)
    waiting = same_partition(1, partition=2)[0]
    archive = Archive({waiting: 100.0, **{pid: 150.0 + i for i, pid in enumerate(busy)}})
    publisher = RecordingPublisher()
    r = reconciler(archive, publisher)
    for i, pid in enumerate(busy):  # partition 1 races ahead; partition 2's queue is still moving
        archive.finish(pid, 150.0 + i, 170.0 + i * 0.5)
    assert await r.reconcile(now=200) == 0


async def test_a_read_model_behind_the_event_store_is_not_taken_for_idle_workers():
    # The workers finish photos, but their events wait to be applied: the read model shows no
    # recent analysis. Re-issuing then would queue every waiting photo again.
    archive = Archive({"p1": 100.0, "p2": 100.0})
    publisher = RecordingPublisher()
    r = reconciler(archive, publisher)
    archive.read_model_current = False
    assert await r.reconcile(now=400) == 0 and publisher.sent == []
    archive.read_model_current = True  # caught up, and still nothing finished: the commands are lost
    assert await r.reconcile(now=401) == 2
