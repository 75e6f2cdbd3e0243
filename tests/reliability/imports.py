"""What the import tests read back: each discovered file's settlement from the job's events,
the process's memory, and /health's latency while a job runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from commands.images import PHOTO_SUFFIXES
from commands.importers.base import sniff_image
from domain.names import has_unprintable
from tests.reliability.hostile import CORPUS

MiB = 1024 * 1024
HEALTH_WITHIN_S = 0.2
# A file named like one of these reaches the core from a folder; others are skipped there.
FOLDER_PHOTO_SUFFIXES = tuple(sorted(PHOTO_SUFFIXES))


@dataclass(frozen=True)
class Settled:
    name: str  # PhotoDiscovered's
    kind: str  # "stored", "skipped" or "failed"
    reason: str = ""
    code: str = ""


def settlements(job_events: list) -> dict[str, Settled]:
    """source_ref -> how the job settled it, from its events."""
    names = {e.source_ref: e.name for e in job_events if type(e).__name__ == "PhotoDiscovered"}
    settled = {}
    for e in job_events:
        kind = {"PhotoStored": "stored", "PhotoSkipped": "skipped", "PhotoFailed": "failed"}.get(type(e).__name__)
        if kind:
            settled[e.source_ref] = Settled(names[e.source_ref], kind, getattr(e, "reason", ""), getattr(e, "code", ""))
    return settled


def remote_codes(case: str) -> set[str]:
    """The codes a remote import may record for a corpus member: importers sniff the bytes
    first (`unsupported_image`); what passes reaches the core's header check."""
    _, data, codes = CORPUS[case]
    return {"unsupported_image"} if sniff_image(data) is None else codes


def assert_printable_names(settled: dict[str, Settled]) -> None:
    for ref, item in settled.items():
        assert not has_unprintable(item.name) and not has_unprintable(ref), (ref, item.name)
        assert "/" not in item.name, item.name
    assert len({s.name for s in settled.values()}) <= len(settled)


def vm(field: str) -> int:
    """This process's VmRSS or VmHWM (peak) in bytes: the API under test runs in this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from the current RSS


def health_until(get_health: Callable[[], int], done: Callable[[], bool], timeout: float = 90.0) -> list[float]:
    """/health latencies, sorted, polled every 20 ms until `done()`."""
    latencies = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the import did not finish in time"
        start = time.perf_counter()
        assert get_health() == 200
        latencies.append(time.perf_counter() - start)
        time.sleep(0.02)
    return sorted(latencies)


def second_worst(latencies: list[float]) -> float:
    """One scheduler hiccup on a shared machine is not the server's doing."""
    assert latencies, "no /health answer while the job ran"
    return latencies[-2] if len(latencies) > 1 else latencies[-1]
