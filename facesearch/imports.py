"""Starting and resuming import jobs from the CLI and the API (the edge that knows settings)."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from loguru import logger

from commands.app import FaceSearchApp
from commands.importers import open_local_source
from commands.importers.base import PhotoSource, SourceError
from commands.importing import ImportResult, Progress, run_import
from facesearch.settings import Settings


def local_source(settings: Settings, folder: str, operator: bool) -> PhotoSource:
    """The operator's own CLI may import any folder it names; others only under allowed roots."""
    roots = list(settings.allowed_import_roots)
    if operator and not roots:
        roots = [Path(folder)]
    return open_local_source(folder, roots, max_bytes=settings.max_upload_bytes)


def import_local(
    app: FaceSearchApp, settings: Settings, folder: str, *, owner: str, operator: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    target = str(Path(folder).resolve())
    source = local_source(settings, folder, operator)  # refuses bad paths before any event
    import_id = app.request_import(owner=owner, source="local", target=target, options={"operator": operator})
    return run_import(app, import_id, source, progress=progress)


def resume_import(app: FaceSearchApp, settings: Settings, import_id: UUID, progress: Progress | None = None) -> ImportResult:
    job = app.get_import(import_id)
    if job.source != "local":
        raise SourceError(f"import {import_id} ({job.source}) must be resumed with its credentials")
    source = local_source(settings, job.target, bool(job.options.get("operator")))
    return run_import(app, import_id, source, progress=progress)


def resume_open_imports(app: FaceSearchApp, settings: Settings) -> list[ImportResult]:
    results = []
    for import_id in app.open_import_ids():
        try:
            results.append(resume_import(app, settings, import_id))
            logger.info("resumed import {}: {}", import_id, results[-1].counts)
        except SourceError as error:
            logger.warning("import {} not resumed: {}", import_id, error)
    return results
