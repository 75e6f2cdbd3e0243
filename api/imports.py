"""Starting import jobs from the API: validate the request, record `ImportRequested`, and
run the job in a background thread (the event-sourced application is synchronous).

VK imports and imports from the user's own Yandex.Disk use the user's saved sign-in
(`api.oauth`: VK ID or Yandex OAuth), kept encrypted in the one `CredentialStore`; the
job's options hold only the credential id, never the token.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from loguru import logger

from commands.credentials import CredentialStore
from commands.importers import SOURCES
from commands.importers.base import SourceError
from commands.importing import ImportResult
from domain.import_job import ImportJob
from facesearch.services.imports import (
    ImportConfigError,
    PreparedImport,
    cancel_import,
    credential_store,
    local_source,
    prepare_import,
    resume_open_imports,
    run_prepared,
)
from facesearch.system import System


def import_sources() -> list[str]:
    """Sources a job can be started (and retried) from here; uploads come through api.photos."""
    return [spec.name for spec in SOURCES.values() if spec.startable]


class ImportRefused(Exception):
    """The import cannot start; the message tells why in English, `code` and `params` let
    the client say it in the user's language."""

    def __init__(self, message: str, code: str = "import_refused", params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.params = params or {}


class ImportJobs:
    """Runs import jobs in the background; owns the app's credential store."""

    def __init__(self, system: System, credentials: CredentialStore | None = None) -> None:
        self.system = system
        self.running: dict[str, asyncio.Task[Any]] = {}
        self._credentials = credentials

    def credentials(self) -> CredentialStore:
        """The credential store, made on first use (`ImportConfigError` without a token_key)."""
        if self._credentials is None:
            self._credentials = credential_store(self.system.settings)
        return self._credentials

    def resume_open(self) -> list[ImportResult]:
        """Runs every unfinished job on (blocking: call it in a thread), with this store."""
        try:
            store = self.credentials()
        except ImportConfigError:
            store = None
        try:
            return resume_open_imports(self.system.app, self.system.settings, credentials=store)
        except Exception:  # it runs in a task nobody awaits: say so in the log
            logger.exception("resuming open imports failed")
            return []

    def close(self) -> None:
        if self._credentials is not None:
            self._credentials.close()

    def _prepare(self, owner: str, source: str, target: str) -> PreparedImport:
        settings = self.system.settings
        app = self.system.app
        if SOURCES[source].kind == "folder":
            photo_source = local_source(settings, target, operator=False)  # refuses bad paths first
            return PreparedImport(app.request_import(owner=owner, source=source, target=target), photo_source)
        try:
            store = self.credentials()
        except ImportConfigError:
            store = None  # no token_key: public Yandex.Disk links still work, prepare_import refuses the rest
        return prepare_import(app, settings, owner=owner, link=target, source=source, credentials=store)

    async def start(self, owner: str, source: str, target: str) -> str:
        """Records the job and starts it; refuses bad links, paths and missing sign-ins
        before any event."""
        if source not in import_sources():
            raise ImportRefused(f"source must be one of {', '.join(import_sources())}", "bad_source")
        target = target.strip()
        if not target:
            raise ImportRefused("say what to import: a link or a folder", "empty_target")
        try:
            prepared = await asyncio.to_thread(self._prepare, owner, source, target)
        except SourceError as error:
            raise ImportRefused(str(error), error.code, error.params) from None
        except ImportConfigError as error:
            raise ImportRefused(str(error), "not_configured") from None
        import_id = str(prepared.import_id)
        task = asyncio.create_task(self._run(prepared))
        self.running[import_id] = task
        task.add_done_callback(lambda _: self.running.pop(import_id, None))
        return import_id

    async def cancel(self, owner: str, import_id: str) -> None:
        """Cancels the owner's running job (a run in progress stops at its next photo)."""
        job = await self._own(owner, import_id)
        if job.is_open:
            await asyncio.to_thread(cancel_import, self.system.app, job.id)

    async def retry(self, owner: str, import_id: str) -> str:
        """Starts the owner's failed or cancelled job again, as a new job with the same
        source and target (what it stored is found again as duplicates, not twice)."""
        job = await self._own(owner, import_id)
        if job.is_open:
            raise ImportRefused(f"import {import_id} is still running", "import_running")
        if job.source not in import_sources():  # an upload's files are in the browser, not here
            raise ImportRefused(f"a {job.source} job cannot run again", "not_retryable", {"source": job.source})
        return await self.start(owner, job.source, job.target)

    async def _own(self, owner: str, import_id: str) -> ImportJob:
        try:
            job = await asyncio.to_thread(self.system.app.get_import, UUID(import_id))
        except (ValueError, AggregateNotFoundError):
            job = None
        if job is None or job.owner != owner:  # the same answer whether missing or someone else's
            raise ImportRefused("no such import", "not_found")
        return job

    async def _run(self, prepared: PreparedImport) -> None:
        try:
            result: ImportResult = await asyncio.to_thread(run_prepared, self.system.app, self.system.settings, prepared)
            logger.info("import {} {}: {}", prepared.import_id, result.status, result.counts)
        except Exception:
            logger.exception("import {} crashed", prepared.import_id)

