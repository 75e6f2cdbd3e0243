"""Runs an import job: discovers photos at a source, fetches the new ones, stores them.

Progress is saved with every photo, atomically with the photo itself, so a job resumed
after a crash skips what it already settled and never downloads it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from loguru import logger

from commands.app import FaceSearchApp
from commands.importers.base import (
    ChecksumMismatch,
    PhotoSource,
    PhotoTooLarge,
    RemotePhoto,
    SkippedItem,
    SourceError,
    UnsupportedImage,
)
from domain.import_job import ImportJob, ImportNotOpen

# Errors about one photo; any other SourceError (expired token, no access) stops the job.
PER_PHOTO_ERRORS = (ChecksumMismatch, UnsupportedImage, PhotoTooLarge)

Progress = Callable[[dict[str, int]], None]


@dataclass(frozen=True)
class ImportResult:
    import_id: UUID
    status: str
    counts: dict[str, int]
    reason: str = ""


class ImportCancelledElsewhere(Exception):
    pass


def run_import(
    app: FaceSearchApp,
    import_id: UUID,
    source: PhotoSource,
    *,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> ImportResult:
    job = app.get_import(import_id)
    if not job.is_open:
        return ImportResult(job.id, job.status, job.counts())
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fetch") as pool:
            for item, fetched in _fetch_ahead(pool, source, job, window=concurrency * 2):
                job = _settle(app, job, item, fetched)
                if progress:
                    progress(job.counts())
        job = _complete(app, job)
    except SourceError as error:
        logger.warning("import {} stopped: {}", import_id, error)
        job = _reload(app, job)
        if job.is_open:
            job.fail(str(error), error.code, error.params)
            app.save_import(job)
        return ImportResult(job.id, job.status, job.counts(), str(error))
    except (ImportCancelledElsewhere, ImportNotOpen):
        job = app.get_import(import_id)
    finally:
        source.close()
    return ImportResult(job.id, job.status, job.counts())


def _fetch_ahead(
    pool: ThreadPoolExecutor, source: PhotoSource, job: ImportJob, window: int
) -> Iterator[tuple[RemotePhoto | SkippedItem, Future[bytes] | None]]:
    """Yields discovered items in order, with fetches of up to `window` photos in flight."""
    pending: list[tuple[RemotePhoto | SkippedItem, Future[bytes] | None]] = []
    items = iter(source.discover())
    while True:
        for item in islice(items, window - len(pending)):
            future = None
            if isinstance(item, RemotePhoto) and not job.is_settled(item.source_ref):
                future = pool.submit(source.fetch, item)
            pending.append((item, future))
        if not pending:
            return
        yield pending.pop(0)


# Saves of one photo that may meet another writer of the job before giving up.
SETTLE_ATTEMPTS = 5


def _settle(app: FaceSearchApp, job: ImportJob, item: RemotePhoto | SkippedItem, fetched: Future[bytes] | None) -> ImportJob:
    for _ in range(SETTLE_ATTEMPTS - 1):
        try:
            return _settle_once(app, job, item, fetched)
        except IntegrityError:
            # Someone else changed the job (a cancel, or another process running it too,
            # as API processes resuming it at start do): reload and look.
            job = _reload(app, job)
            if not job.is_open:
                raise ImportCancelledElsewhere() from None
    return _settle_once(app, job, item, fetched)


def _complete(app: FaceSearchApp, job: ImportJob) -> ImportJob:
    """Completes the job, unless another process running it got there first."""
    try:
        job.complete()
        app.save_import(job)
    except IntegrityError:
        job = _reload(app, job)
        if job.is_open:  # what this run settled is saved: the rest was settled by the other
            job.complete()
            app.save_import(job)
    return job


def _settle_once(app: FaceSearchApp, job: ImportJob, item: RemotePhoto | SkippedItem, fetched: Future[bytes] | None) -> ImportJob:
    job.discover(item.source_ref, item.name)
    if job.is_settled(item.source_ref):
        app.save_import(job)
        return job
    if isinstance(item, SkippedItem):
        job.record_skipped(item.source_ref, item.reason, item.code)
        app.save_import(job)
        return job
    assert fetched is not None
    try:
        data = fetched.result()
    except PER_PHOTO_ERRORS as error:
        job.record_failed(item.source_ref, str(error), error.code, error.params)
        app.save_import(job)
        return job
    except OSError as error:
        job.record_failed(item.source_ref, f"download failed: {error}", "download_failed")
        app.save_import(job)
        return job
    app.store_photo(data, owner=job.owner, source=item.source, source_ref=item.source_ref, import_job=job)
    return job


def _reload(app: FaceSearchApp, job: ImportJob) -> ImportJob:
    return app.repository.get(job.id)  # the cache fast-forwards from the store
