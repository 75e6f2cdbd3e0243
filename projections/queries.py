"""Plain queries over the read models (the read side the API and operators use)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from projections.tables import checkpoints, faces, imports, photos


async def checkpoint_rows(engine: AsyncEngine) -> list[tuple[str, str, int, int, float]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(checkpoints.c.projection, checkpoints.c.topic, checkpoints.c.partition,
                      checkpoints.c.last_id, checkpoints.c.updated_at)
        )
        return [tuple(r) for r in rows]


async def unanalysed_photos(engine: AsyncEngine, imported_before_iso: str) -> list[tuple[str, str, str, str]]:
    """(photo id, content hash, owner, imported at) of photos still waiting for analysis."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(photos.c.id, photos.c.content_hash, photos.c.owner, photos.c.imported_at).where(
                (photos.c.status == "imported") & (photos.c.deleted.is_(False)) & (photos.c.imported_at < imported_before_iso)
            )
        )
        return [tuple(r) for r in rows]


async def analysis_progress(engine: AsyncEngine, imported_after_iso: str) -> tuple[str | None, list[tuple[str, str]]]:
    """When the workers last finished a photo (ISO time, None if never), and (photo id,
    imported at) of the finished photos imported at or after the bound."""
    finished = photos.c.status.in_(["analysed", "no_faces"])
    async with engine.connect() as conn:
        last = (await conn.execute(sa.select(sa.func.max(photos.c.analysed_at)).where(finished))).scalar()
        rows = await conn.execute(
            sa.select(photos.c.id, photos.c.imported_at).where(finished & (photos.c.imported_at >= imported_after_iso))
        )
        return last, [tuple(r) for r in rows]


def embedded_by(model: str) -> sa.ColumnElement[bool]:
    """The face's comma-separated `models` names `model` (whole names: "arcface" is not "arcface2")."""
    return (sa.literal(",") + faces.c.models + sa.literal(",")).contains(f",{model},", autoescape=True)


async def photos_missing_model(
    engine: AsyncEngine, model: str, processed_before_iso: str, limit: int
) -> list[tuple[str, str, str]]:
    """(photo id, content hash, owner) of up to `limit` photos, in id order, with a face that
    `model` has not embedded, analysed before the cutoff."""
    query = (
        sa.select(faces.c.photo_id, photos.c.content_hash, photos.c.owner)
        .join(photos, photos.c.id == faces.c.photo_id)
        .where(
            faces.c.deleted.is_(False) & photos.c.deleted.is_(False) & ~embedded_by(model)
            & (faces.c.processed_at < processed_before_iso)
        )
        .distinct()
        .order_by(faces.c.photo_id)
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(query)]


async def embedding_progress(engine: AsyncEngine, models: list[str]) -> dict[str, dict[str, int]]:
    """Per model: faces it has embedded, of the faces detected (deleted photos left out)."""
    columns = [sa.func.count()] + [sa.func.coalesce(sa.func.sum(sa.case((embedded_by(m), 1), else_=0)), 0) for m in models]
    async with engine.connect() as conn:
        total, *embedded = (await conn.execute(sa.select(*columns).where(faces.c.deleted.is_(False)))).one()
    return {model: {"embedded": int(n), "faces": int(total)} for model, n in zip(models, embedded)}


async def status_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(photos.c.status, sa.func.count()).group_by(photos.c.status))
        return {status: count for status, count in rows}


async def imports_oldest_first(engine: AsyncEngine, owner: str | None = None) -> list[dict]:
    """Every import job's row (of `owner`, when given), for the operator's `facesearch status`."""
    query = sa.select(imports).order_by(imports.c.created_at)
    if owner is not None:
        query = query.where(imports.c.owner == owner)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]
