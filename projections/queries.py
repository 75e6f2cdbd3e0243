"""Plain queries over the read models (the read side the API and operators use)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.tables import checkpoints, imports, photos


async def checkpoint_rows(engine: AsyncEngine) -> list[tuple[str, str, int, int, float]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(checkpoints.c.projection, checkpoints.c.topic, checkpoints.c.partition,
                      checkpoints.c.last_id, checkpoints.c.updated_at)
        )
        return [tuple(r) for r in rows]


async def unanalysed_photos(engine: AsyncEngine, imported_before_iso: str) -> list[tuple[str, str, str]]:
    """(photo id, content hash, owner) of photos still waiting for analysis."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(photos.c.id, photos.c.content_hash, photos.c.owner).where(
                (photos.c.status == "imported") & (photos.c.deleted.is_(False)) & (photos.c.imported_at < imported_before_iso)
            )
        )
        return [tuple(r) for r in rows]


async def status_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(photos.c.status, sa.func.count()).group_by(photos.c.status))
        return {status: count for status, count in rows}


async def import_rows(engine: AsyncEngine, owner: str | None = None) -> list[dict]:
    query = sa.select(imports).order_by(imports.c.created_at)
    if owner is not None:
        query = query.where(imports.c.owner == owner)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]
