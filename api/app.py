"""The FastAPI application. Its lifespan starts the whole System in the embedded profile.

GraphQL at /graphql (GraphiQL in the embedded profile), REST for bytes under /api, the
built web client at /, /health and /metrics. Every request except health, sign-in and the
client's own files needs a signed-in user (see api.auth).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from api import auth, export, oauth, photos, search
from api.client import mount_client
from api.errors import http_error
from api.gql.schema import context_for, schema
from api.health import CachedCounts
from api.imports import ImportJobs
from api.monitoring import install_monitoring
from api.origin import OriginCheck, default_origins
from api.security import BodyLimit, SecurityHeaders, validation_error_without_input
from api.throttle import LoginThrottle
from api.users import UserStore
from facesearch.settings import Settings, get_settings
from facesearch.system import System
from projections import queries

# Room for the multipart framing around a file of max_upload_bytes, and a few such files.
UPLOAD_FILES_PER_REQUEST = 20


def create_app(settings: Settings | None = None, *, run_system: bool = True) -> FastAPI:
    """The API over a System made from `settings`, started by the app's lifespan (with
    `run_system` False it is only prepared: no relay, projections or import resumption)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="facesearch",
        version="0.1.0",
        lifespan=_lifespan(settings, run_system),
        description="Face search for photo archives. Data through GraphQL at /graphql; bytes (uploads, "
        "images, exports) through the REST endpoints below. Sign in with POST /api/auth/login.",
    )
    _add_routes(app, settings)
    # Middleware added later wraps what came before: requests are timed (401s and 403s
    # included), the origin is checked before the session, the body cap sees bytes first,
    # and security headers go on every answer.
    app.state.login_throttle = LoginThrottle(
        settings.login_attempts_per_account, settings.login_attempts_per_address, settings.login_window_seconds)
    # Starlette types every handler for Exception; it calls these only with their own exceptions.
    app.add_exception_handler(RequestValidationError, validation_error_without_input)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]  # every error with a code
    app.add_middleware(auth.AuthGate, metrics_token=settings.metrics_token.get_secret_value())
    app.add_middleware(OriginCheck, cookie=auth.SESSION_COOKIE,
                       allowed=settings.allowed_origins or default_origins(settings.api_host, settings.api_port))
    install_monitoring(app, settings)  # /metrics, /api/monitoring/series, request timing
    mount_client(app)  # last: its catch-all route must not shadow the API's
    app.add_middleware(SecurityHeaders, hsts=not settings.embedded)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes * UPLOAD_FILES_PER_REQUEST + 1024 * 1024)
    return app


def _lifespan(settings: Settings, run_system: bool) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Starts the System and the services on it with the app, and stops them, imports last."""

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
        app.state.examples = search.ExampleStore()
        if run_system:
            # Imports run in the API's process in every profile: a job that a crash left open
            # goes on here (several API processes may each resume it: a job's progress is
            # saved with optimistic concurrency, so no photo is stored twice).
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

    return lifespan


def _add_routes(app: FastAPI, settings: Settings) -> None:
    """/health, the REST routers and GraphQL (its IDE in the embedded profile)."""

    async def read_counts() -> dict[str, Any]:
        system: System = app.state.system
        return await queries.status_counts(system.engine)

    counts = CachedCounts(read_counts)

    @app.get("/health", tags=["monitoring"])
    async def health() -> dict[str, object]:
        return {"status": "ok", "photos": await counts.get()}

    for router in (auth.router, photos.router, export.router, search.router, oauth.router):
        app.include_router(router)
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
