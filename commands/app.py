"""The application service on the event store: loads aggregates, calls them, saves.

It is synchronous (the `eventsourcing` library is): async callers run it in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import unquote, urlparse
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from commands.blobs import BlobStore, content_hash
from commands.ddl import postgres_ddl_lock
from commands.images import ImageRejected, PixelBudget, inspect_image
from domain.import_job import ImportJob
from domain.photo import Photo, PhotoStatus, photo_id_for

if TYPE_CHECKING:
    from eventsourcing.postgres import PostgresApplicationRecorder


def persistence_env(dsn: str) -> dict[str, str]:
    """Maps an event-store DSN (sqlite:///path or postgresql://…) to eventsourcing's settings."""
    url = urlparse(dsn)
    if url.scheme == "sqlite":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": unquote(url.path),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    if url.scheme in ("postgresql", "postgres"):
        query = dict(part.split("=", 1) for part in url.query.split("&") if "=" in part)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.path.lstrip("/"),
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            # FaceSearchApp creates the tables itself, under the DDL lock (see commands/ddl.py).
            "CREATE_TABLE": "no",
        }
        if "schema" in query:
            env["POSTGRES_SCHEMA"] = query["schema"]
        return env
    raise ValueError(f"unsupported event store DSN scheme {url.scheme!r}")


def _libpq_dsn(dsn: str) -> str:
    """postgresql://…?schema=x → the same URL without the options libpq does not know."""
    return dsn.split("?", 1)[0].replace("postgresql+asyncpg://", "postgresql://")


@dataclass(frozen=True)
class StoreOutcome:
    """What became of one set of bytes: a new photo, a known one, or a rejection."""

    photo_id: UUID
    status: Literal["new", "duplicate", "rejected"]
    reason: str = ""
    code: str = ""  # why it was rejected, stable (commands.images.ImageRejected.code)
    params: dict[str, Any] = field(default_factory=dict)  # the numbers the code's message quotes


def _known_outcome(photo: Photo) -> StoreOutcome:
    """What storing bytes already stored as `photo` comes to: a duplicate, or the rejection again."""
    if photo.status == PhotoStatus.rejected:
        return StoreOutcome(photo.id, "rejected", "rejected before", "REJECTED_BEFORE", {"first_code": photo.reject_code})
    return StoreOutcome(photo.id, "duplicate")


class FaceSearchApp(Application[UUID]):
    name = "facesearch"
    # Aggregates are kept in memory between commands: import jobs grow long.
    env = {"AGGREGATE_CACHE_MAXSIZE": "1000"}

    def __init__(self, dsn: str, blobs: BlobStore, max_image_pixels: int) -> None:
        super().__init__(env=persistence_env(dsn))
        if urlparse(dsn).scheme != "sqlite":
            with postgres_ddl_lock(lambda: psycopg.connect(_libpq_dsn(dsn), autocommit=True)):
                # A PostgreSQL DSN gives eventsourcing's PostgreSQL recorder (persistence_env).
                cast("PostgresApplicationRecorder", self.recorder).create_table()
        self.blobs = blobs
        self.max_image_pixels = max_image_pixels
        # Uploads and imports check images in threads of their own: their decodes share one budget.
        self.decoding = PixelBudget.for_limit(max_image_pixels)

    # Photos --------------------------------------------------------------------------------

    def store_photo(
        self,
        data: bytes,
        *,
        owner: str,
        source: str,
        source_ref: str,
        import_job: ImportJob | None = None,
        job_ref: str | None = None,
    ) -> StoreOutcome:
        """Records bytes as a photo (or a rejection) and, atomically with it, the job's progress.

        `job_ref` is the file's reference within the job when it differs from `source_ref`
        (an upload: two files of one job may share a name)."""
        job_ref = job_ref or source_ref
        digest = content_hash(data)
        import_id = str(import_job.id) if import_job else None
        for attempt in range(2):
            existing = self._get_photo(photo_id_for(owner, digest))
            if existing is not None:
                existing.add_source(source, source_ref, import_id)
                photo, outcome = existing, _known_outcome(existing)
            else:
                photo, outcome = self._new_photo(data, digest, owner=owner, source=source, source_ref=source_ref,
                                                 import_id=import_id)
            self._record_outcome(import_job, job_ref, outcome)
            try:
                self.save(photo, *([import_job] if import_job else []))
                return outcome
            except IntegrityError:
                # Another writer stored the same bytes at the same moment: once more, and the
                # photo is then a known one. A known photo's conflict (its job moved on: a
                # cancel, another tab) is the caller's to judge.
                if existing is not None or attempt:
                    raise
                if import_job is not None:
                    import_job = self.repository.get(import_job.id)
        raise AssertionError("unreachable")

    def _new_photo(self, data: bytes, digest: str, *, owner: str, source: str, source_ref: str,
                   import_id: str | None) -> tuple[Photo, StoreOutcome]:
        """A photo of bytes not seen before: imported (its bytes stored first), or rejected."""
        try:
            info = inspect_image(data, self.max_image_pixels, self.decoding)
        except ImageRejected as rejection:
            photo = Photo.rejected(
                owner=owner, source=source, source_ref=source_ref, import_id=import_id, content_hash=digest,
                size=len(data), reason=str(rejection), code=rejection.code,
            )
            return photo, StoreOutcome(photo.id, "rejected", str(rejection), rejection.code, rejection.params)
        self.blobs.put(data)  # before the event: an event never points at missing bytes
        photo = Photo.imported(
            owner=owner, source=source, source_ref=source_ref, import_id=import_id, content_hash=digest,
            size=len(data), width=info.width, height=info.height, mime_type=info.mime_type,
        )
        return photo, StoreOutcome(photo.id, "new")

    @staticmethod
    def _record_outcome(job: ImportJob | None, source_ref: str, outcome: StoreOutcome) -> None:
        if job is None:
            return
        if outcome.status == "rejected":
            job.record_failed(source_ref, outcome.reason, outcome.code, outcome.params)
        else:
            job.record_stored(source_ref, str(outcome.photo_id), duplicate=outcome.status == "duplicate")

    def _get_photo(self, photo_id: UUID) -> Photo | None:
        try:
            return self.repository.get(photo_id)
        except AggregateNotFoundError:
            return None

    def get_photo(self, photo_id: UUID) -> Photo:
        return self.repository.get(photo_id)

    def record_faces(
        self,
        photo_id: UUID,
        detector: str,
        detector_version: str,
        faces: list[dict[str, Any]],
        embeddings: list[dict[str, Any]],
        timing_ms: dict[str, float],
    ) -> bool:
        """Records one photo's analysis at once; False when it was already analysed (a redelivery)."""
        photo: Photo = self.repository.get(photo_id)
        if not photo.needs_analysis:
            return False
        photo.record_faces(detector, detector_version, faces, timing_ms)
        for embedding in embeddings:
            photo.record_embedding(**embedding)
        try:
            self.save(photo)
        except IntegrityError:  # another worker got there first
            return False
        return True

    def record_embeddings(self, photo_id: UUID, embeddings: list[dict[str, Any]]) -> int:
        """Adds vectors of a later model to an analysed photo; returns how many were new
        (0 for a redelivery: `record_embedding` skips a known model and face)."""
        for attempt in range(3):
            photo: Photo = self.repository.get(photo_id)
            for embedding in embeddings:
                photo.record_embedding(**embedding)
            new = len(photo.pending_events)
            if not new:
                return 0
            try:
                self.save(photo)
                return new
            except IntegrityError:  # another model's vectors were saved meanwhile: load again
                if attempt == 2:
                    raise
        return 0

    def record_analysis_failure(self, photo_id: UUID, reason: str) -> None:
        photo: Photo = self.repository.get(photo_id)
        photo.record_failure(reason)
        self.save(photo)

    def delete_photo(self, photo_id: UUID) -> None:
        photo: Photo = self.repository.get(photo_id)
        photo.delete()
        self.save(photo)

    # Import jobs ---------------------------------------------------------------------------

    def request_import(self, *, owner: str, source: str, target: str, options: dict[str, Any] | None = None) -> UUID:
        job = ImportJob.request(owner=owner, source=source, target=target, options=options)
        self.save(job)
        return job.id

    def get_import(self, import_id: UUID) -> ImportJob:
        return self.repository.get(import_id)

    def save_import(self, job: ImportJob) -> None:
        self.save(job)

    def open_import_ids(self) -> list[UUID]:
        """Import jobs that never completed, failed or were cancelled (to resume after a crash)."""
        ids = []
        for notification in self.recorder.select_notifications(
            start=None, limit=1_000_000, topics=[_topic_of(ImportJob, "ImportRequested")]
        ):
            job: ImportJob = self.repository.get(cast(UUID, notification.originator_id))  # this app's ids are UUIDs
            if job.is_open:
                ids.append(job.id)
        return ids


def _topic_of(aggregate: type, event_name: str) -> str:
    from eventsourcing.utils import get_topic

    module = __import__(aggregate.__module__, fromlist=[event_name])
    return get_topic(getattr(module, event_name))
