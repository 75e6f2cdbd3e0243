"""The API's read side: plain queries over the read models, always scoped to one owner.

Every function takes the owner (a user id) and never returns another owner's rows: access
control lives here, once, not in each resolver or endpoint.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.people import people_id_for
from projections.db import snapshot
from projections.tables import checkpoints, import_problems, imports, people, person_faces, photo_sources, photos


class BadCursor(ValueError):
    """A pagination cursor this API did not make."""


@dataclass(frozen=True)
class PhotoFilter:
    source: str | None = None
    import_id: str | None = None
    has_faces: bool | None = None
    no_faces: bool = False  # the "no faces" category: analysed, and none found
    status: str | None = None
    imported_from: str | None = None  # ISO 8601, inclusive
    imported_to: str | None = None  # ISO 8601, exclusive


def iso_bound(value: str | None, name: str) -> str | None:
    """A filter bound in the spelling `imported_at` is stored in (ISO 8601, UTC), so string
    order is time order: a date stays a date (the whole day), a time moves to UTC (a time
    without an offset is taken as UTC). Raises ValueError, naming `name`, for anything else."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} is not an ISO 8601 date or time (like 2024-05-31 or 2024-05-31T18:00:00+03:00): "
                         f"{value[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("\x1f".join(parts).encode()).decode()


def decode_cursor(cursor: str, parts: int) -> list[str]:
    try:
        values = base64.urlsafe_b64decode(cursor.encode()).decode().split("\x1f")
    except (ValueError, UnicodeDecodeError):
        raise BadCursor("this cursor is not one the API gave out") from None
    if len(values) != parts:
        raise BadCursor("this cursor is not one the API gave out")
    return values


def photo_conditions(owner: str, f: PhotoFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = [photos.c.owner == owner, photos.c.deleted.is_(False)]
    if f.status:
        where.append(photos.c.status == f.status)
    elif not f.import_id:
        where.append(photos.c.status != "rejected")  # the gallery shows images; rejections show under imports
    if f.source:
        # A photo found in two places has two sources: match any of them.
        where.append(sa.exists().where((photo_sources.c.photo_id == photos.c.id) & (photo_sources.c.source == f.source)))
    if f.import_id:
        where.append(sa.exists().where((photo_sources.c.photo_id == photos.c.id) & (photo_sources.c.import_id == f.import_id)))
    if f.no_faces:
        where.append(photos.c.status == "no_faces")
    if f.has_faces is True:
        where.append(photos.c.face_count > 0)
    elif f.has_faces is False:
        where.append(photos.c.face_count == 0)
    if f.imported_from:
        where.append(photos.c.imported_at >= f.imported_from)
    if f.imported_to:
        where.append(photos.c.imported_at < f.imported_to)
    return where


async def photo_page(
    engine: AsyncEngine, owner: str, f: PhotoFilter, first: int, after: str | None
) -> tuple[list[dict[str, Any]], bool, int]:
    """Newest first: (rows, has_next_page, total_count). The cursor is (imported_at, id)."""
    where = photo_conditions(owner, f)
    page_where = list(where)
    if after:
        at, photo_id = decode_cursor(after, 2)
        page_where.append(sa.tuple_(photos.c.imported_at, photos.c.id) < sa.tuple_(sa.literal(at), sa.literal(photo_id)))
    query = (
        sa.select(photos).where(*page_where)
        .order_by(photos.c.imported_at.desc(), photos.c.id.desc()).limit(first + 1)
    )
    async with snapshot(engine) as conn:
        rows = [dict(r._mapping) for r in await conn.execute(query)]
        total = (await conn.execute(sa.select(sa.func.count()).select_from(photos).where(*where))).scalar_one()
    return rows[:first], len(rows) > first, total


def photo_cursor(row: dict[str, Any]) -> str:
    return encode_cursor(row["imported_at"], row["id"])


async def photo(engine: AsyncEngine, owner: str, photo_id: str) -> dict[str, Any] | None:
    query = sa.select(photos).where((photos.c.id == photo_id) & (photos.c.owner == owner) & photos.c.deleted.is_(False))
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None


async def photos_by_ids(engine: AsyncEngine, owner: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    query = sa.select(photos).where(photos.c.id.in_(list(ids)) & (photos.c.owner == owner) & photos.c.deleted.is_(False))
    async with engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in await conn.execute(query)}


async def sources_by_photo(engine: AsyncEngine, owner: str, photo_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every provenance record of each photo (one query for many photos)."""
    result: dict[str, list[dict[str, Any]]] = {pid: [] for pid in photo_ids}
    if not photo_ids:
        return result
    query = (
        sa.select(photo_sources)
        .join(photos, photos.c.id == photo_sources.c.photo_id)
        .where(photo_sources.c.photo_id.in_(list(photo_ids)) & (photos.c.owner == owner))
        .order_by(photo_sources.c.added_at)
    )
    async with engine.connect() as conn:
        for row in await conn.execute(query):
            result[row.photo_id].append(dict(row._mapping))
    return result


async def import_rows(engine: AsyncEngine, owner: str, limit: int = 100) -> list[dict[str, Any]]:
    query = sa.select(imports).where(imports.c.owner == owner).order_by(imports.c.created_at.desc()).limit(limit)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def imports_by_ids(engine: AsyncEngine, owner: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    query = sa.select(imports).where(imports.c.id.in_(list(ids)) & (imports.c.owner == owner))
    async with engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in await conn.execute(query)}


async def problems_by_import(engine: AsyncEngine, owner: str, import_ids: Sequence[str], limit: int = 100
                             ) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {i: [] for i in import_ids}
    if not import_ids:
        return result
    query = (
        sa.select(import_problems)
        .join(imports, imports.c.id == import_problems.c.import_id)
        .where(import_problems.c.import_id.in_(list(import_ids)) & (imports.c.owner == owner))
        .order_by(import_problems.c.source_ref)
    )
    async with engine.connect() as conn:
        for row in await conn.execute(query):
            if len(result[row.import_id]) < limit:
                result[row.import_id].append(dict(row._mapping))
    return result


async def photo_counts(engine: AsyncEngine, owner: str) -> dict[str, int]:
    """Photos by status, and faces found, for one owner."""
    query = (
        sa.select(photos.c.status, sa.func.count(), sa.func.coalesce(sa.func.sum(photos.c.face_count), 0))
        .where((photos.c.owner == owner) & photos.c.deleted.is_(False))
        .group_by(photos.c.status)
    )
    counts = {"imported": 0, "analysed": 0, "no_faces": 0, "rejected": 0, "faces": 0}
    async with engine.connect() as conn:
        for status, count, faces in await conn.execute(query):
            counts[status] = count
            counts["faces"] += int(faces or 0)
    return counts


async def system_counts(engine: AsyncEngine) -> dict[str, int]:
    """Totals over every owner, for the operator's monitoring (no photo is identified)."""
    query = sa.select(photos.c.status, sa.func.count(), sa.func.coalesce(sa.func.sum(photos.c.face_count), 0)).group_by(
        photos.c.status
    )
    counts = {"imported": 0, "analysed": 0, "no_faces": 0, "rejected": 0, "faces": 0}
    async with engine.connect() as conn:
        for status, count, faces in await conn.execute(query):
            counts[status] = count
            counts["faces"] += int(faces or 0)
    return counts


async def applied_positions(engine: AsyncEngine) -> dict[str, int]:
    """The highest notification id each projection has applied (for queue lag)."""
    query = sa.select(checkpoints.c.projection, sa.func.max(checkpoints.c.last_id)).group_by(checkpoints.c.projection)
    async with engine.connect() as conn:
        return {name: int(last or 0) for name, last in await conn.execute(query)}


# Faces -----------------------------------------------------------------------------------

def _faces_table():
    from projections.tables import faces

    return faces


async def faces_by_photo(engine: AsyncEngine, owner: str, photo_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every face of these photos, in face order (one query for many photos)."""
    faces = _faces_table()
    result: dict[str, list[dict[str, Any]]] = {pid: [] for pid in photo_ids}
    if not photo_ids:
        return result
    query = (
        sa.select(faces)
        .where(faces.c.photo_id.in_(list(photo_ids)) & (faces.c.owner == owner) & faces.c.deleted.is_(False))
        .order_by(faces.c.photo_id, faces.c.face_index)
    )
    async with engine.connect() as conn:
        for row in await conn.execute(query):
            result[row.photo_id].append(dict(row._mapping))
    return result


async def face(engine: AsyncEngine, owner: str, face_id: str) -> dict[str, Any] | None:
    faces = _faces_table()
    query = sa.select(faces).where((faces.c.id == face_id) & (faces.c.owner == owner) & faces.c.deleted.is_(False))
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None


@dataclass(frozen=True)
class FaceFilter:
    photo_id: str | None = None
    source: str | None = None
    import_id: str | None = None
    min_score: float | None = None
    processed_from: str | None = None
    processed_to: str | None = None


def face_conditions(owner: str, f: FaceFilter) -> list[sa.ColumnElement[bool]]:
    faces = _faces_table()
    where: list[sa.ColumnElement[bool]] = [faces.c.owner == owner, faces.c.deleted.is_(False)]
    if f.photo_id:
        where.append(faces.c.photo_id == f.photo_id)
    if f.source:
        where.append(faces.c.source == f.source)
    if f.import_id:
        where.append(faces.c.import_id == f.import_id)
    if f.min_score is not None:
        where.append(faces.c.score >= f.min_score)
    if f.processed_from:
        where.append(faces.c.processed_at >= f.processed_from)
    if f.processed_to:
        where.append(faces.c.processed_at < f.processed_to)
    return where


async def face_page(
    engine: AsyncEngine, owner: str, f: FaceFilter, first: int, after: str | None
) -> tuple[list[dict[str, Any]], bool, int]:
    """Oldest first by id (stable): (rows, has_next_page, total_count)."""
    faces = _faces_table()
    where = face_conditions(owner, f)
    page_where = list(where)
    if after:
        (face_id,) = decode_cursor(after, 1)
        page_where.append(faces.c.id > face_id)
    query = sa.select(faces).where(*page_where).order_by(faces.c.id).limit(first + 1)
    async with snapshot(engine) as conn:
        rows = [dict(r._mapping) for r in await conn.execute(query)]
        total = (await conn.execute(sa.select(sa.func.count()).select_from(faces).where(*where))).scalar_one()
    return rows[:first], len(rows) > first, total


EXPORT_COLUMNS = (
    "face_id", "photo_id", "face_index", "x1", "y1", "x2", "y2", "score", "source", "source_ref",
    "import_id", "detector", "models", "processed_at", "person_id", "person_name",
)


async def stream_faces(engine: AsyncEngine, owner: str, f: FaceFilter, model: str, batch: int = 1000):
    """Yields export rows (dicts keyed by EXPORT_COLUMNS) through a streaming cursor, so
    memory stays bounded whatever the number of faces. The person columns name the face's
    person among the owner's people for `model` (empty when it belongs to none)."""
    faces = _faces_table()
    columns = [faces.c.id, faces.c.photo_id, faces.c.face_index, faces.c.x1, faces.c.y1, faces.c.x2, faces.c.y2,
               faces.c.score, faces.c.source, faces.c.source_ref, faces.c.import_id, faces.c.detector, faces.c.models,
               faces.c.processed_at, people.c.id, people.c.name]
    # One outer join in the same cursor (no query per face): person_faces' key is
    # (people stream, face), and the owner's stream for this model is one id.
    membership = (person_faces.c.people_id == str(people_id_for(owner, model))) & (person_faces.c.face_id == faces.c.id)
    query = (
        sa.select(*columns)
        .select_from(faces.outerjoin(person_faces, membership).outerjoin(people, people.c.id == person_faces.c.person_id))
        .where(*face_conditions(owner, f))
        .order_by(faces.c.id)
    )
    async with engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=batch))
        async for partition in result.partitions(batch):
            for row in partition:
                yield dict(zip(EXPORT_COLUMNS, row))
