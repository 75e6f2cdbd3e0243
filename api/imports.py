"""Starting import jobs from the API: validate the request, record `ImportRequested`, and
run the job in a background thread (the event-sourced application is synchronous).

VK imports and imports from the user's own Yandex.Disk use the user's saved sign-in
(`api.oauth`: VK ID or Yandex OAuth), kept encrypted in the one `CredentialStore`; the
job's options hold only the credential id, never the token.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from loguru import logger

from commands.credentials import CredentialStore
from commands.importers.base import SourceError
from commands.importing import ImportResult
from facesearch.imports import (
    ImportConfigError,
    PreparedImport,
    credential_store,
    local_source,
    prepare_import,
    resume_open_imports,
    run_prepared,
)
from facesearch.system import System

IMPORT_SOURCES = ("vk", "yadisk", "local")


class ImportRefused(Exception):
    """The import cannot start; the message tells the user why."""


class ImportJobs:
    """Runs import jobs in the background; owns the app's credential store."""

    def __init__(self, system: System, credentials: CredentialStore | None = None) -> None:
        self.system = system
        self.running: dict[str, asyncio.Task[Any]] = {}
        self._credentials = credentials

    async def drop_legacy_tables(self) -> None:
        """Removes `api_vk_tokens`, where this API once kept VK tokens of its own: every
        token now lives in the credential store (users who signed in there sign in again)."""
        async with self.system.engine.begin() as conn:
            await conn.execute(sa.text("DROP TABLE IF EXISTS api_vk_tokens"))

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
        return resume_open_imports(self.system.app, self.system.settings, credentials=store)

    def close(self) -> None:
        if self._credentials is not None:
            self._credentials.close()

    def _prepare(self, owner: str, source: str, target: str) -> PreparedImport:
        settings = self.system.settings
        app = self.system.app
        if source == "local":
            photo_source = local_source(settings, target, operator=False)  # refuses bad paths first
            return PreparedImport(app.request_import(owner=owner, source="local", target=target), photo_source)
        try:
            store = self.credentials()
        except ImportConfigError:
            store = None  # no token_key: public Yandex.Disk links still work, prepare_import refuses the rest
        return prepare_import(app, settings, owner=owner, link=target, source=source, credentials=store)

    async def start(self, owner: str, source: str, target: str) -> str:
        """Records the job and starts it; refuses bad links, paths and missing sign-ins
        before any event."""
        if source not in IMPORT_SOURCES:
            raise ImportRefused(f"source must be one of {', '.join(IMPORT_SOURCES)}")
        target = target.strip()
        if not target:
            raise ImportRefused("say what to import: a link or a folder")
        try:
            prepared = await asyncio.to_thread(self._prepare, owner, source, target)
        except (SourceError, ImportConfigError) as error:
            raise ImportRefused(str(error)) from None
        import_id = str(prepared.import_id)
        task = asyncio.create_task(self._run(prepared))
        self.running[import_id] = task
        task.add_done_callback(lambda _: self.running.pop(import_id, None))
        return import_id

    async def _run(self, prepared: PreparedImport) -> None:
        try:
            result: ImportResult = await asyncio.to_thread(run_prepared, self.system.app, self.system.settings, prepared)
            logger.info("import {} {}: {}", prepared.import_id, result.status, result.counts)
        except Exception:
            logger.exception("import {} crashed", prepared.import_id)

