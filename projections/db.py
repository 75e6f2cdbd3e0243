"""The read-model database: PostgreSQL through asyncpg, or an SQLite file through aiosqlite."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> AsyncEngine:
    sqlite = async_url(url).startswith("sqlite")
    # A file has no connection to lose: pinging it costs every transaction one more round trip
    # to aiosqlite's thread, while it holds SQLite's only write lock.
    engine = create_async_engine(async_url(url), pool_pre_ping=not sqlite)
    if sqlite:

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cursor.execute("PRAGMA busy_timeout=30000")
            # WAL with NORMAL loses nothing when the process dies (kill -9 included) and stays
            # consistent after a power cut, which may undo the last commits: a projection's
            # checkpoint goes with its effects, so those events are applied again (an account or
            # sign-in made in that last moment is undone). FULL syncs the disk on every commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


@contextlib.asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose reads all see one state of the database. A page and its total count
    are two statements: read while a projection writes, each would otherwise see its own
    moment (a total of 1 above an empty page)."""
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # The driver sends no BEGIN before a SELECT; in WAL mode the first read of an open
            # transaction fixes what every later read of it sees.
            await conn.exec_driver_sql("BEGIN")
        else:
            await conn.execution_options(isolation_level="REPEATABLE READ")
        yield conn


# Processes that start together (projections, API) race to create the same tables, which
# PostgreSQL can answer with a duplicate-key error: they queue on one advisory lock instead
# (the key commands/ddl.py uses for the event store's and the relay's tables).
DDL_LOCK_KEY = 0x6661636573726368


async def create_all_locked(conn: AsyncConnection, metadata: sa.MetaData) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK_KEY})
    await conn.run_sync(metadata.create_all)


class Writer:
    """Opens write transactions. SQLite has one writer at a time, so in-process writers queue
    on a lock instead of failing with "database is locked"; PostgreSQL needs no such lock."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        if self._lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._lock:
            async with self.engine.begin() as conn:
                yield conn
