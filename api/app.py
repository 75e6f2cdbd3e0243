"""The FastAPI application. Its lifespan starts the whole System in the embedded profile."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from facesearch.settings import Settings, get_settings
from facesearch.system import System
from projections import queries


def create_app(settings: Settings | None = None, *, run_system: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        system = System(settings)
        app.state.system = system
        await system.start(reconcile=run_system) if run_system else await system.prepare_read_models()
        if run_system:
            from facesearch.imports import resume_open_imports

            app.state.resume = asyncio.create_task(asyncio.to_thread(resume_open_imports, system.app, settings))
        try:
            yield
        finally:
            await system.stop()

    app = FastAPI(title="facesearch", version="0.1.0", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, object]:
        system: System = app.state.system
        return {"status": "ok", "photos": await queries.status_counts(system.engine)}

    return app
