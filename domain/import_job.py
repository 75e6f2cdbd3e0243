"""The ImportJob aggregate: one request to bring photos in from a source, with progress.

It remembers every source reference it has settled, so a job resumed after a crash
skips what it already has instead of downloading it again.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate


class ImportStatus:
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class ImportRequested(Aggregate.Created):
    owner: str
    source: str
    # What to import, as the user gave it (a link or a path); never a token.
    target: str
    options: dict[str, Any]


class PhotoDiscovered(Aggregate.Event):
    source_ref: str
    name: str

    def apply(self, job: ImportJob) -> None:
        job.discovered.add(self.source_ref)


class PhotoStored(Aggregate.Event):
    """A discovered photo was downloaded and recorded as `photo_id` (new or already known)."""

    source_ref: str
    photo_id: str
    duplicate: bool

    def apply(self, job: ImportJob) -> None:
        job.settled[self.source_ref] = "stored"


class PhotoSkipped(Aggregate.Event):
    """Not an image we take (a video, a document): counted, not an error. v2 added `code`
    (stable, see commands.importers.base.SkippedItem); v1 is upcast with it empty."""

    class_version = 2

    source_ref: str
    reason: str
    code: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["code"] = ""

    def apply(self, job: ImportJob) -> None:
        job.settled[self.source_ref] = "skipped"


class PhotoFailed(Aggregate.Event):
    """Download failed or the bytes were rejected; the reason says which (in English), the
    code (the rejection's, or the source error's) and params say it for clients to put in the
    user's language. v2 added `code` and `params`; v1 is upcast empty."""

    class_version = 2
    source_ref: str
    reason: str
    code: str
    params: dict[str, Any]

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["code"] = ""
        state["params"] = {}

    def apply(self, job: ImportJob) -> None:
        job.settled[self.source_ref] = "failed"


class ImportCompleted(Aggregate.Event):
    discovered: int
    stored: int
    skipped: int
    failed: int

    def apply(self, job: ImportJob) -> None:
        job.status = ImportStatus.completed


class ImportFailed(Aggregate.Event):
    class_version = 2
    reason: str
    code: str
    params: dict[str, Any]

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["code"] = ""
        state["params"] = {}

    def apply(self, job: ImportJob) -> None:
        job.status = ImportStatus.failed


class ImportCancelled(Aggregate.Event):
    def apply(self, job: ImportJob) -> None:
        job.status = ImportStatus.cancelled


class ImportJob(Aggregate):
    def __init__(self, owner: str, source: str, target: str, options: dict[str, Any]) -> None:
        self.owner = owner
        self.source = source
        self.target = target
        self.options = options
        self.status = ImportStatus.running
        self.discovered: set[str] = set()
        self.settled: dict[str, str] = {}

    @classmethod
    def request(cls, *, owner: str, source: str, target: str, options: dict[str, Any] | None = None) -> ImportJob:
        return cls._create(ImportRequested, owner=owner, source=source, target=target, options=options or {})

    @property
    def is_open(self) -> bool:
        return self.status == ImportStatus.running

    def counts(self) -> dict[str, int]:
        settled = list(self.settled.values())
        return {
            "discovered": len(self.discovered),
            "stored": settled.count("stored"),
            "skipped": settled.count("skipped"),
            "failed": settled.count("failed"),
        }

    def discover(self, source_ref: str, name: str) -> bool:
        """Records a new reference; False when it was already discovered (a resumed job)."""
        self._require_open()
        if source_ref in self.discovered:
            return False
        self.trigger_event(PhotoDiscovered, source_ref=source_ref, name=name)
        return True

    def is_settled(self, source_ref: str) -> bool:
        return source_ref in self.settled

    def record_stored(self, source_ref: str, photo_id: str, duplicate: bool) -> None:
        self._require_open()
        if not self.is_settled(source_ref):
            self.trigger_event(PhotoStored, source_ref=source_ref, photo_id=photo_id, duplicate=duplicate)

    def record_skipped(self, source_ref: str, reason: str, code: str) -> None:
        self._require_open()
        if not self.is_settled(source_ref):
            self.trigger_event(PhotoSkipped, source_ref=source_ref, reason=reason, code=code)

    def record_failed(self, source_ref: str, reason: str, code: str = "", params: dict[str, Any] | None = None) -> None:
        self._require_open()
        if not self.is_settled(source_ref):
            self.trigger_event(PhotoFailed, source_ref=source_ref, reason=reason, code=code, params=params or {})

    def complete(self) -> None:
        self._require_open()
        self.trigger_event(ImportCompleted, **self.counts())

    def fail(self, reason: str, code: str = "", params: dict[str, Any] | None = None) -> None:
        self._require_open()
        self.trigger_event(ImportFailed, reason=reason, code=code, params=params or {})

    def cancel(self) -> None:
        if self.is_open:
            self.trigger_event(ImportCancelled)

    def _require_open(self) -> None:
        if not self.is_open:
            raise ImportNotOpen(f"import {self.id} is {self.status}")


class ImportNotOpen(Exception):
    pass
