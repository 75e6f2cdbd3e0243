"""Schema creation that several processes can run at once on one PostgreSQL database.

Relay, projections, workers and the API each create the tables they need when they start.
PostgreSQL answers concurrent `CREATE OR REPLACE FUNCTION` (the event store's) and racing
`CREATE TABLE IF NOT EXISTS` with "tuple concurrently updated" or a duplicate-key error, so
every process takes the same advisory lock around its DDL. SQLite needs no lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    import psycopg

# One key for all of facesearch's DDL ("facesrch" in ASCII); projections/db.py uses it too.
DDL_LOCK_KEY = 0x6661636573726368


async def create_all_locked(conn: AsyncConnection, metadata: sa.MetaData) -> None:
    """`metadata.create_all` inside the caller's transaction, serialised on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK_KEY})
    await conn.run_sync(metadata.create_all)


def create_all_locked_sync(engine: sa.Engine, metadata: sa.MetaData) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DDL_LOCK_KEY})
        metadata.create_all(conn)


@contextmanager
def postgres_ddl_lock(connect: Callable[[], psycopg.Connection[Any]]) -> Iterator[None]:
    """Holds the DDL lock on a connection of its own (for libraries that run their own DDL)."""
    conn = connect()
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK_KEY,))
        yield
    finally:
        conn.close()  # closing the session releases the lock
