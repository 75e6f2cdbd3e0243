"""The faces read model: every face with its photo, source, box, landmarks, scores, quality
flags, detector, embedding models and processing date; and the photos that have none."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.envelope import EventEnvelope
from domain.faces import DetectedFace
from projections.base import Projection
from projections.queries import embedded_by
from projections.tables import face_photos, faces

faces_projection = Projection("faces", ("photos",), (face_photos, faces))


@faces_projection.on("PhotoImported")
async def photo_imported(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    await conn.execute(
        face_photos.insert().values(
            photo_id=e.aggregate_id, owner=p["owner"], source=p["source"], source_ref=p["source_ref"],
            import_id=p["import_id"], imported_at=e.timestamp, status="imported",
        )
    )


async def _photo(conn: AsyncConnection, photo_id: str):
    return (await conn.execute(sa.select(face_photos).where(face_photos.c.photo_id == photo_id))).first()


@faces_projection.on("FacesDetected")
async def faces_detected(conn: AsyncConnection, e: EventEnvelope) -> None:
    photo = await _photo(conn, e.aggregate_id)
    p = e.payload
    rows = []
    for index, data in enumerate(p["faces"]):
        face = DetectedFace.from_dict(data)
        rows.append(
            dict(
                id=f"{e.aggregate_id}:{index}", photo_id=e.aggregate_id, face_index=index,
                owner=photo.owner, source=photo.source, source_ref=photo.source_ref, import_id=photo.import_id,
                x1=face.box.x1, y1=face.box.y1, x2=face.box.x2, y2=face.box.y2,
                landmarks=[list(point) for point in face.landmarks.points], score=face.score,
                size_px=face.quality.size_px, blur=face.quality.blur, flags=",".join(face.quality.flags),
                detector=p["detector"], detector_version=p["detector_version"], models="",
                processed_at=e.timestamp, deleted=False,
            )
        )
    if rows:
        await conn.execute(faces.insert(), rows)
    await conn.execute(
        face_photos.update().where(face_photos.c.photo_id == e.aggregate_id).values(status="analysed", processed_at=e.timestamp)
    )


@faces_projection.on("NoFacesFound")
async def no_faces_found(conn: AsyncConnection, e: EventEnvelope) -> None:
    await conn.execute(
        face_photos.update().where(face_photos.c.photo_id == e.aggregate_id).values(status="no_faces", processed_at=e.timestamp)
    )
    logger.info("photo {} has no faces ({}): filed under 'no faces'", e.aggregate_id, e.payload["detector"])


@faces_projection.on("FaceEmbedded")
async def face_embedded(conn: AsyncConnection, e: EventEnvelope) -> None:
    key = faces.c.id == f"{e.aggregate_id}:{e.payload['face_index']}"
    current = (await conn.execute(sa.select(faces.c.models).where(key))).scalar_one_or_none()
    if current is None:
        return
    models = sorted(set(filter(None, current.split(","))) | {e.payload["model"]})
    await conn.execute(faces.update().where(key).values(models=",".join(models)))


@faces_projection.on("PhotoDeleted")
async def photo_deleted(conn: AsyncConnection, e: EventEnvelope) -> None:
    await conn.execute(faces.update().where(faces.c.photo_id == e.aggregate_id).values(deleted=True))


# Queries ------------------------------------------------------------------------------------


async def faces_of_photos(engine: AsyncEngine, photo_ids: list[str]) -> dict[str, list[dict]]:
    """Every face of these photos, by photo id, in face-index order."""
    if not photo_ids:
        return {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(faces).where(faces.c.photo_id.in_(photo_ids) & faces.c.deleted.is_(False)).order_by(faces.c.face_index)
        )
        out: dict[str, list[dict]] = {}
        for row in rows:
            out.setdefault(row.photo_id, []).append(dict(row._mapping))
        return out


async def archive_face_count(
    engine: AsyncEngine, owner: str, model: str, source: str | None = None, import_id: str | None = None,
    imported_from: datetime | None = None, imported_to: datetime | None = None,
) -> int:
    """The faces a search by `model` covers: the owner's, embedded by that model, within the
    filters (the same ones `projections.vectors.filter_expression` gives Milvus). Counted here
    because Milvus Lite counts a filtered collection row by row in Python (over a second at
    20,000 faces); a projection a moment behind Milvus only shifts percentages slightly."""
    query = (
        sa.select(sa.func.count()).select_from(faces)
        .where((faces.c.owner == owner) & faces.c.deleted.is_(False) & embedded_by(model))
    )
    if source:
        query = query.where(faces.c.source == source)
    if import_id:
        query = query.where(faces.c.import_id == import_id)
    if imported_from or imported_to:  # Milvus compares whole epoch seconds
        query = query.join(face_photos, face_photos.c.photo_id == faces.c.photo_id)
        if imported_from:
            query = query.where(face_photos.c.imported_at >= _iso_second(imported_from))
        if imported_to:
            query = query.where(face_photos.c.imported_at < _iso_second(imported_to, plus=1))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


def _iso_second(moment: datetime, plus: int = 0) -> str:
    """The whole second of `moment` (+ `plus`), as the read model writes times (UTC ISO 8601)."""
    return datetime.fromtimestamp(int(moment.timestamp()) + plus, UTC).isoformat()


async def photos_without_faces(engine: AsyncEngine, owner: str | None = None) -> list[dict]:
    """The "no faces" category: analysed photos in which no face was found."""
    query = sa.select(face_photos).where(face_photos.c.status == "no_faces")
    if owner is not None:
        query = query.where(face_photos.c.owner == owner)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query.order_by(face_photos.c.imported_at))]
