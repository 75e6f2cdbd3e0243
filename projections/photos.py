"""The photos and imports read models."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.envelope import EventEnvelope
from projections.base import Projection
from projections.tables import import_problems, imports, photo_sources, photos

photos_projection = Projection("photos", ("photos",), (photos, photo_sources))
imports_projection = Projection("imports", ("imports",), (imports, import_problems))


async def _add_source(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    await conn.execute(
        photo_sources.insert().values(
            photo_id=e.aggregate_id, source=p["source"], source_ref=p["source_ref"], import_id=p["import_id"], added_at=e.timestamp
        )
    )


@photos_projection.on("PhotoImported")
async def photo_imported(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    await conn.execute(
        photos.insert().values(
            id=e.aggregate_id,
            owner=p["owner"],
            content_hash=p["content_hash"],
            source=p["source"],
            source_ref=p["source_ref"],
            import_id=p["import_id"],
            status="imported",
            size=p["size"],
            width=p["width"],
            height=p["height"],
            mime_type=p["mime_type"],
            face_count=0,
            imported_at=e.timestamp,
            deleted=False,
        )
    )
    await _add_source(conn, e)


@photos_projection.on("PhotoRejected")
async def photo_rejected(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    await conn.execute(
        photos.insert().values(
            id=e.aggregate_id,
            owner=p["owner"],
            content_hash=p["content_hash"],
            source=p["source"],
            source_ref=p["source_ref"],
            import_id=p["import_id"],
            status="rejected",
            reject_reason=p["reason"],
            size=p["size"],
            face_count=0,
            imported_at=e.timestamp,
            deleted=False,
        )
    )
    await _add_source(conn, e)


@photos_projection.on("PhotoSourceAdded")
async def photo_source_added(conn: AsyncConnection, e: EventEnvelope) -> None:
    await _add_source(conn, e)


@photos_projection.on("FacesDetected")
async def faces_detected(conn: AsyncConnection, e: EventEnvelope) -> None:
    await conn.execute(
        photos.update()
        .where(photos.c.id == e.aggregate_id)
        .values(status="analysed", face_count=len(e.payload["faces"]), detector=e.payload["detector"], analysed_at=e.timestamp)
    )


@photos_projection.on("NoFacesFound")
async def no_faces_found(conn: AsyncConnection, e: EventEnvelope) -> None:
    await conn.execute(
        photos.update()
        .where(photos.c.id == e.aggregate_id)
        .values(status="no_faces", face_count=0, detector=e.payload["detector"], analysed_at=e.timestamp)
    )


@photos_projection.on("PhotoDeleted")
async def photo_deleted(conn: AsyncConnection, e: EventEnvelope) -> None:
    await conn.execute(photos.update().where(photos.c.id == e.aggregate_id).values(deleted=True))


@imports_projection.on("ImportRequested")
async def import_requested(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    await conn.execute(
        imports.insert().values(
            id=e.aggregate_id,
            owner=p["owner"],
            source=p["source"],
            target=p["target"],
            status="running",
            discovered=0,
            stored=0,
            duplicates=0,
            skipped=0,
            failed=0,
            created_at=e.timestamp,
            updated_at=e.timestamp,
        )
    )


async def _bump(conn: AsyncConnection, e: EventEnvelope, **counters: int) -> None:
    values = {name: getattr(imports.c, name) + amount for name, amount in counters.items()}
    await conn.execute(imports.update().where(imports.c.id == e.aggregate_id).values(updated_at=e.timestamp, **values))


@imports_projection.on("PhotoDiscovered")
async def photo_discovered(conn: AsyncConnection, e: EventEnvelope) -> None:
    await _bump(conn, e, discovered=1)


@imports_projection.on("PhotoStored")
async def photo_stored(conn: AsyncConnection, e: EventEnvelope) -> None:
    await _bump(conn, e, stored=1, duplicates=1 if e.payload["duplicate"] else 0)


async def _problem(conn: AsyncConnection, e: EventEnvelope, kind: str) -> None:
    await _bump(conn, e, **{kind: 1})
    await conn.execute(
        import_problems.insert().values(
            import_id=e.aggregate_id, source_ref=e.payload["source_ref"], kind=kind, reason=e.payload["reason"],
            code=e.payload.get("code") or None, params=e.payload.get("params") or {},
        )
    )


@imports_projection.on("PhotoSkipped")
async def photo_skipped(conn: AsyncConnection, e: EventEnvelope) -> None:
    await _problem(conn, e, "skipped")


@imports_projection.on("PhotoFailed")
async def photo_failed(conn: AsyncConnection, e: EventEnvelope) -> None:
    await _problem(conn, e, "failed")


async def _finish(conn: AsyncConnection, e: EventEnvelope, status: str, reason: str | None = None,
                  code: str | None = None, params: dict | None = None) -> None:
    await conn.execute(
        imports.update().where(imports.c.id == e.aggregate_id).values(
            status=status, reason=reason, reason_code=code, reason_params=params, updated_at=e.timestamp)
    )


@imports_projection.on("ImportCompleted")
async def import_completed(conn: AsyncConnection, e: EventEnvelope) -> None:
    await _finish(conn, e, "completed")


@imports_projection.on("ImportFailed")
async def import_failed(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload  # version 1 events are upcast to an empty code (domain.import_job)
    await _finish(conn, e, "failed", p["reason"], p.get("code") or None, p.get("params") or {})


@imports_projection.on("ImportCancelled")
async def import_cancelled(conn: AsyncConnection, e: EventEnvelope) -> None:
    await _finish(conn, e, "cancelled")
