"""CSV and JSON export of the signed-in user's faces, streamed row by row.

Rows come from a streaming database cursor and leave as they are encoded, so an export
of any size holds one batch in memory, never the whole result.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api import queries
from api.auth import CurrentUser

router = APIRouter(prefix="/api", tags=["export"])

FLUSH_ROWS = 500  # rows encoded per chunk sent


async def csv_chunks(rows: AsyncIterator[dict]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=queries.EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    pending = 0
    async for row in rows:
        writer.writerow(row)
        pending += 1
        if pending >= FLUSH_ROWS:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode()


async def json_chunks(rows: AsyncIterator[dict]) -> AsyncIterator[bytes]:
    """A JSON array, one face object per line: valid JSON and easy to read line by line."""
    yield b"[\n"
    first = True
    parts: list[str] = []
    async for row in rows:
        parts.append(("" if first else ",\n") + json.dumps(row, ensure_ascii=False))
        first = False
        if len(parts) >= FLUSH_ROWS:
            yield "".join(parts).encode()
            parts.clear()
    yield ("".join(parts) + "\n]\n").encode()


@router.get(
    "/export/faces.{fmt}",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}},
                     "description": "One row per face: " + ", ".join(queries.EXPORT_COLUMNS)}},
)
async def export_faces(
    fmt: Literal["csv", "json"],
    request: Request,
    user: CurrentUser,
    source: Annotated[str | None, Query(description="vk, yadisk, local or upload")] = None,
    import_id: Annotated[str | None, Query(description="Only faces from this import")] = None,
    photo_id: Annotated[str | None, Query()] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    processed_from: Annotated[str | None, Query(description="ISO 8601, inclusive")] = None,
    processed_to: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
    model: Annotated[str | None, Query(description="The embedding model whose people fill the person columns")] = None,
) -> StreamingResponse:
    """Every face of the signed-in user's photos matching the filter, with its metadata:
    face id, photo id, box (x1, y1, x2, y2 in pixels), detector score, source and source
    reference, detector and embedding models, processing date, and person (id and name, from
    the people of `model`; empty for a face that belongs to nobody)."""
    f = queries.FaceFilter(photo_id=photo_id, source=source, import_id=import_id, min_score=min_score,
                           processed_from=processed_from, processed_to=processed_to)
    system = request.app.state.system
    rows = queries.stream_faces(system.engine, user.id, f, model or system.settings.embedder)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    body = csv_chunks(rows) if fmt == "csv" else json_chunks(rows)
    return StreamingResponse(
        body, media_type=media,
        headers={"Content-Disposition": f'attachment; filename="faces-{stamp}.{fmt}"', "Cache-Control": "no-store"},
    )
