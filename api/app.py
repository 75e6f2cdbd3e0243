"""The FastAPI application. Its lifespan starts the whole System in the embedded profile.

GraphQL at /graphql (GraphiQL in the embedded profile), REST for bytes under /api, the
built web client at /, /health and /metrics. Every request except health, sign-in and the
client's own files needs a signed-in user (see api.auth).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from api import auth, export, oauth, photos, search
from api.client import mount_client
from api.gql.schema import context_for, schema
from api.imports import ImportJobs
from api.monitoring import install_monitoring
from api.security import BodyLimit, SecurityHeaders
from api.users import UserStore
from facesearch.settings import Settings, get_settings
from facesearch.system import System
from projections import queries

# Room for the multipart framing around a file of max_upload_bytes, and a few such files.
UPLOAD_FILES_PER_REQUEST = 20


def create_app(settings: Settings | None = None, *, run_system: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        system = System(settings)
        app.state.system = system
        # Embedded: the whole system lives in the API's process. Production: the relay,
        # projections and workers run as their own processes (`facesearch run ROLE`).
        runs_system = run_system and settings.embedded
        await system.start(reconcile=True) if runs_system else await system.prepare_read_models()
        app.state.users = UserStore(system.engine, system.runner.writer)
        await app.state.users.create_tables()
        app.state.imports = ImportJobs(system)
        await app.state.imports.drop_legacy_tables()
        app.state.examples = search.ExampleStore()
        if runs_system:
            app.state.resume = asyncio.create_task(asyncio.to_thread(app.state.imports.resume_open))
        try:
            yield
        finally:
            app.state.monitoring.stop()
            for task in list(app.state.imports.running.values()):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(task), 30)
            await system.stop()
            app.state.imports.close()

    app = FastAPI(
        title="facesearch",
        version="0.1.0",
        lifespan=lifespan,
        description="Face search for photo archives. Data through GraphQL at /graphql; bytes (uploads, "
        "images, exports) through the REST endpoints below. Sign in with POST /api/auth/login.",
    )

    @app.get("/health", tags=["monitoring"])
    async def health() -> dict[str, object]:
        system: System = app.state.system
        return {"status": "ok", "photos": await queries.status_counts(system.engine)}

    app.include_router(auth.router)
    app.include_router(photos.router)
    app.include_router(export.router)
    app.include_router(search.router)
    app.include_router(oauth.router)
    app.include_router(
        GraphQLRouter(
            schema,
            context_getter=context_for,
            graphql_ide="graphiql" if settings.embedded else None,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL],
        ),
        prefix="/graphql",
        include_in_schema=False,
    )
    # Middleware added later wraps what came before: requests are timed (401s included),
    # the body cap sees bytes first, and security headers go on every answer.
    app.add_middleware(auth.AuthGate)
    install_monitoring(app, settings)  # /metrics, /api/monitoring/series, request timing
    mount_client(app)  # last: its catch-all route must not shadow the API's
    app.add_middleware(SecurityHeaders, hsts=not settings.embedded)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes * UPLOAD_FILES_PER_REQUEST + 1024 * 1024)
    return app
