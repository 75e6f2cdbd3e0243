"""REST endpoints for bytes: uploading photos, and serving originals and thumbnails.

GraphQL carries data about photos; these carry the photos themselves, where multipart
bodies and binary answers with their own content types and caching belong.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, HTTPException, Query, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from PIL import Image, ImageOps
from pydantic import BaseModel

from api import queries
from api.auth import CurrentUser
from commands.importers.base import sniff_image
from facesearch import metrics

THUMBNAIL_SIZES = (128, 256, 512, 1024)
MAX_FILES_PER_UPLOAD = 100
# Content-addressed answers never change: let the browser keep them.
IMMUTABLE = "private, max-age=31536000, immutable"

router = APIRouter(prefix="/api", tags=["photos"])


class UploadResult(BaseModel):
    filename: str
    status: Literal["new", "duplicate", "rejected", "refused"]
    photo_id: str | None = None
    reason: str = ""


class UploadAnswer(BaseModel):
    results: list[UploadResult]


async def read_limited(upload: UploadFile, max_bytes: int) -> bytes | None:
    """The file's bytes, or None when it is larger than `max_bytes` (read no further)."""
    if upload.size is not None and upload.size > max_bytes:
        return None
    data = await upload.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def _answer_status(results: list[UploadResult]) -> int:
    if any(r.status in ("new", "duplicate") for r in results):
        return status.HTTP_201_CREATED
    if all(r.status == "refused" and "too large" in r.reason for r in results):
        return status.HTTP_413_CONTENT_TOO_LARGE
    if all(r.status == "refused" for r in results):
        return status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    return status.HTTP_422_UNPROCESSABLE_CONTENT


@router.post(
    "/photos",
    response_model=UploadAnswer,
    status_code=201,
    responses={
        413: {"description": "Every file is larger than the upload limit"},
        415: {"description": "No file is a JPEG, PNG, WebP or HEIC image"},
        422: {"description": "Every file was refused or rejected (corrupt, too many pixels)"},
    },
)
async def upload_photos(
    request: Request, user: CurrentUser, files: Annotated[list[UploadFile], File(description="JPG, PNG, WEBP or HEIC")]
) -> JSONResponse:
    """Stores uploaded photos as the signed-in user's (source `upload`).

    Each file gets its own result: `new`, `duplicate` (the same bytes are already yours),
    `rejected` (an image that cannot be analysed: corrupt, too many pixels; recorded as
    `PhotoRejected`) or `refused` (not an image, or over the size limit; nothing recorded).
    """
    system = request.app.state.system
    limit = system.settings.max_upload_bytes
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {MAX_FILES_PER_UPLOAD} files at once")
    results = []
    for upload in files:
        name = Path(upload.filename or "photo").name[:200]
        data = await read_limited(upload, limit)
        if data is None:
            results.append(UploadResult(filename=name, status="refused", reason=f"file too large (limit {limit:,} bytes)"))
            continue
        if sniff_image(data) is None:
            results.append(UploadResult(filename=name, status="refused", reason="not a JPEG, PNG, WebP or HEIC image"))
            continue
        outcome = await asyncio.to_thread(
            system.app.store_photo, data, owner=user.id, source="upload", source_ref=f"upload:{name}"
        )
        if outcome.status == "new":
            metrics.photo_imported("upload")
        results.append(UploadResult(filename=name, status=outcome.status, photo_id=str(outcome.photo_id), reason=outcome.reason))
    answer = UploadAnswer(results=results)
    return JSONResponse(answer.model_dump(), status_code=_answer_status(results))


async def owned_photo(request: Request, user_id: str, photo_id: str) -> dict:
    row = await queries.photo(request.app.state.system.engine, user_id, photo_id)
    if row is None or row["status"] == "rejected":
        # The same answer whether it does not exist or belongs to someone else.
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such photo")
    return row


def _not_modified(request: Request, etag: str) -> bool:
    return request.headers.get("if-none-match", "") == etag


@router.get(
    "/photos/{photo_id}/original",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}, 404: {"description": "No such photo"}},
)
async def original(photo_id: str, request: Request, user: CurrentUser) -> Response:
    """The photo's bytes as imported, with their own content type."""
    row = await owned_photo(request, user.id, photo_id)
    etag = f'"{row["content_hash"]}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    data = await asyncio.to_thread(request.app.state.system.app.blobs.get, row["content_hash"])
    return Response(data, media_type=row["mime_type"] or "application/octet-stream", headers=headers)


def cache_dir(request: Request, kind: str) -> Path:
    return request.app.state.system.settings.var_dir / "cache" / kind


def make_thumbnail(data: bytes, size: int) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        image.draft("RGB", (size, size))  # JPEG decodes at a reduced scale: much less work
        image = image.convert("RGB")
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=82, optimize=True)
    return out.getvalue()


def cached(path: Path, produce) -> bytes:
    """The file at `path`, made by `produce()` the first time (atomically, so readers never see half)."""
    if path.exists():
        return path.read_bytes()
    data = produce()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{id(data)}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


@router.get(
    "/photos/{photo_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No such photo"}},
)
async def thumbnail(
    photo_id: str, request: Request, user: CurrentUser,
    size: Annotated[int, Query(description=f"Longest side in pixels, one of {THUMBNAIL_SIZES}")] = 256,
) -> Response:
    """A JPEG no larger than `size` on its longest side, made once and cached on disk."""
    if size not in THUMBNAIL_SIZES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"size must be one of {THUMBNAIL_SIZES}")
    row = await owned_photo(request, user.id, photo_id)
    etag = f'"{row["content_hash"]}-{size}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    blobs = request.app.state.system.app.blobs
    path = cache_dir(request, "thumbnails") / row["content_hash"][:2] / f"{row['content_hash']}_{size}.jpg"
    data = await asyncio.to_thread(cached, path, lambda: make_thumbnail(blobs.get(row["content_hash"]), size))
    return Response(data, media_type="image/jpeg", headers=headers)


def make_face_crop(data: bytes, box: tuple[float, float, float, float], size: int) -> bytes:
    """A square JPEG around the face box, with a margin of a fifth of the box on each side."""
    x1, y1, x2, y2 = box
    margin = 0.2 * max(x2 - x1, y2 - y1)
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2 + margin
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")  # boxes are in the stored pixels' frame: no EXIF rotation
        crop = image.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
        crop = crop.resize((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        crop.save(out, "JPEG", quality=88)
    return out.getvalue()


@router.get(
    "/faces/{face_id}/crop",
    response_class=Response,
    tags=["faces"],
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No such face"}},
)
async def face_crop(
    face_id: str, request: Request, user: CurrentUser,
    size: Annotated[int, Query(description="Side of the square in pixels, one of 96, 160, 256")] = 160,
) -> Response:
    """The face cut out of its photo, square, made once and cached on disk."""
    if size not in (96, 160, 256):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "size must be 96, 160 or 256")
    engine = request.app.state.system.engine
    face = await queries.face(engine, user.id, face_id)
    photo = await queries.photo(engine, user.id, face["photo_id"]) if face else None
    if face is None or photo is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such face")
    etag = f'"{photo["content_hash"]}-{face["face_index"]}-{size}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    blobs = request.app.state.system.app.blobs
    box = (face["x1"], face["y1"], face["x2"], face["y2"])
    path = cache_dir(request, "faces") / photo["content_hash"][:2] / f"{photo['content_hash']}_{face['face_index']}_{size}.jpg"
    data = await asyncio.to_thread(cached, path, lambda: make_face_crop(blobs.get(photo["content_hash"]), box, size))
    return Response(data, media_type="image/jpeg", headers=headers)
