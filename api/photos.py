"""REST endpoints for bytes: uploading photos, and serving originals and thumbnails.

GraphQL carries data about photos; these carry the photos themselves, where multipart
bodies and binary answers with their own content types and caching belong.
"""

from __future__ import annotations

import asyncio
import functools
import io
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from fastapi import APIRouter, File, HTTPException, Query, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from PIL import Image, ImageOps
from pydantic import BaseModel

from api import queries
from api.auth import CurrentUser
from api.cpu import cpu_slots_for
from api.errors import UserError, megabytes
from commands.images import ACCEPTED_FORMATS, FORMATS_IN_WORDS, decode_rgb, sniff_image
from commands.importers.upload import SPEC as UPLOAD
from domain.import_job import ImportJob
from domain.names import file_name, printable
from facesearch.infra import metrics
from gpu_workers.orientation import upright_turns

if TYPE_CHECKING:
    from facesearch.system import System

THUMBNAIL_SIZES = (128, 256, 512, 1024)
MAX_FILES_PER_UPLOAD = 100
# Content-addressed answers never change: let the browser keep them.
IMMUTABLE = "private, max-age=31536000, immutable"

router = APIRouter(prefix="/api", tags=["photos"])


class UploadResult(BaseModel):
    filename: str
    status: Literal["new", "duplicate", "rejected", "refused"]
    photo_id: str | None = None
    reason: str = ""  # English, for logs and scripts; clients word `code` and `params`
    code: str = ""  # for refused and rejected files: TOO_LARGE, EMPTY_FILE, NOT_AN_IMAGE, TOO_MANY_PIXELS, …
    params: dict[str, Any] = {}  # e.g. {"megapixels": 400.0, "limit_megapixels": 60.0}


class UploadAnswer(BaseModel):
    import_id: str  # the upload's import job (listed with the others)
    results: list[UploadResult]


class UploadJobIn(BaseModel):
    names: list[str] = []  # the files about to be sent, for the job's description


class UploadJobOut(BaseModel):
    import_id: str


async def read_limited(upload: UploadFile, max_bytes: int) -> bytes | None:
    """The file's bytes, or None when it is larger than `max_bytes` (read no further)."""
    if upload.size is not None and upload.size > max_bytes:
        return None
    data = await upload.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def upload_name(filename: str | None) -> str:
    """The name an upload is stored and shown under: the last part of what was sent (a browser
    may send a whole Windows path), less control and text-direction characters (NUL, RLO, ...)."""
    last = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = file_name(last)
    return name if name not in ("", ".", "..") else "photo"


def _answer_status(results: list[UploadResult]) -> int:
    if any(r.status in ("new", "duplicate") for r in results):
        return status.HTTP_201_CREATED
    if all(r.status == "refused" and r.code == "TOO_LARGE" for r in results):
        return status.HTTP_413_CONTENT_TOO_LARGE
    if all(r.status == "refused" for r in results):
        return status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    return status.HTTP_422_UNPROCESSABLE_CONTENT


def _describe(names: list[str]) -> str:
    """The job's target: the files' names, shortened (the gallery's import filter shows it)."""
    clean = [printable(Path(n).name).strip() for n in names if n]
    text = ", ".join(clean[:3]) + (f" … (+{len(clean) - 3})" if len(clean) > 3 else "")
    return text[:200] or "upload"


def _refusal(data: bytes | None, limit: int) -> tuple[str, str, dict[str, Any]] | None:
    """Why the bytes are not even looked at as an image (reason, code, params), or None."""
    if data is None:
        return f"file too large (limit {limit:,} bytes)", "TOO_LARGE", {"limit_megabytes": megabytes(limit)}
    if not data:
        return "empty file (0 bytes)", "EMPTY_FILE", {}
    if sniff_image(data) is None:
        return f"not a {FORMATS_IN_WORDS} image", "NOT_AN_IMAGE", {}
    return None


def _open_job(system: System, owner: str, import_id: str | None, names: list[str]) -> ImportJob:
    """The open upload job `import_id` of `owner`, or a new one when none is given (blocking)."""
    if import_id is None:
        return system.app.get_import(system.app.request_import(owner=owner, source=UPLOAD.name, target=_describe(names)))
    try:
        job = system.app.get_import(UUID(import_id))
    except (ValueError, AggregateNotFoundError):
        job = None
    if job is None or job.owner != owner or job.source != UPLOAD.name:
        raise UserError(status.HTTP_404_NOT_FOUND, "NOT_FOUND", "no such upload")
    if not job.is_open:
        raise UserError(status.HTTP_409_CONFLICT, "IMPORT_CLOSED", f"this upload is {job.status}", {"status": job.status})
    return job


def _settle_file(system: System, import_id: UUID, owner: str, name: str, data: bytes,
                 refusal: tuple[str, str, dict[str, Any]] | None) -> UploadResult:
    """Records one file as the job's (a photo, a duplicate, or a rejected file with its
    reason), all in one thread: a decode never waits outside its CPU slot."""
    for attempt in range(2):
        job = system.app.get_import(import_id)
        if not job.is_open:
            raise UserError(status.HTTP_409_CONFLICT, "IMPORT_CLOSED", f"this upload is {job.status}", {"status": job.status})
        job_ref = f"upload:{len(job.discovered)}:{name}"  # unique in the job: names may repeat
        job.discover(job_ref, name)
        if refusal is None:
            outcome = system.app.store_photo(data, owner=owner, source=UPLOAD.name, source_ref=f"upload:{name}",
                                             import_job=job, job_ref=job_ref)
            return UploadResult(filename=name, status=outcome.status, photo_id=str(outcome.photo_id),
                                reason=outcome.reason, code=outcome.code, params=outcome.params)
        reason, code, params = refusal
        job.record_failed(job_ref, reason, code, params)
        try:
            system.app.save_import(job)
        except IntegrityError:  # the job changed meanwhile (a cancel, another tab): look again
            if attempt:
                raise
            continue
        return UploadResult(filename=name, status="refused", reason=reason, code=code, params=params)
    raise AssertionError("unreachable")


def _complete(system: System, owner: str, import_id: str) -> None:
    job = _open_job(system, owner, import_id, [])
    job.complete()
    system.app.save_import(job)


@router.post("/uploads", response_model=UploadJobOut, status_code=201)
async def start_upload(request: Request, user: CurrentUser, job: UploadJobIn | None = None) -> UploadJobOut:
    """Opens an upload import job: send its files with `POST /api/photos?import_id=…`, then
    `POST /api/uploads/{id}/complete`. It is listed under imports with the others."""
    names = (job.names if job else [])[:MAX_FILES_PER_UPLOAD * 100]
    created = await asyncio.to_thread(_open_job, request.app.state.system, user.id, None, names)
    return UploadJobOut(import_id=str(created.id))


@router.post("/uploads/{import_id}/complete", response_model=UploadJobOut)
async def complete_upload(import_id: str, request: Request, user: CurrentUser) -> UploadJobOut:
    """Ends an upload job: its counts are final."""
    await asyncio.to_thread(_complete, request.app.state.system, user.id, import_id)
    return UploadJobOut(import_id=import_id)


@router.post(
    "/photos",
    response_model=UploadAnswer,
    status_code=201,
    responses={
        413: {"description": "Every file is larger than the upload limit"},
        415: {"description": f"No file is a {FORMATS_IN_WORDS} image"},
        422: {"description": "Every file was refused or rejected (corrupt, too many pixels)"},
    },
)
async def upload_photos(
    request: Request, user: CurrentUser, files: Annotated[list[UploadFile], File(description=FORMATS_IN_WORDS)],
    import_id: Annotated[str | None, Query(description="An open upload job (POST /api/uploads); "
                                                       "without it the request is a job of its own")] = None,
) -> JSONResponse:
    """Stores uploaded photos as the signed-in user's (source `upload`), as files of an
    upload import job.

    Each file gets its own result: `new`, `duplicate` (the same bytes are already yours),
    `rejected` (an image that cannot be analysed: corrupt, too many pixels; recorded as
    `PhotoRejected`) or `refused` (empty, not an image, or over the size limit). Rejected and
    refused files are the job's failed files, each with its reason's code.
    """
    system = request.app.state.system
    limit = system.settings.max_upload_bytes
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise UserError(status.HTTP_413_CONTENT_TOO_LARGE, "TOO_MANY_FILES", f"at most {MAX_FILES_PER_UPLOAD} files at once",
                        {"limit": MAX_FILES_PER_UPLOAD})
    job = await asyncio.to_thread(_open_job, system, user.id, import_id, [u.filename or "" for u in files])
    results = []
    for upload in files:
        name = upload_name(upload.filename)
        data = await read_limited(upload, limit)
        refusal = _refusal(data, limit)
        # Checking the image decodes it: in a thread, a few at a time (see api.cpu).
        result = await cpu_slots_for(system).run(
            functools.partial(_settle_file, system, job.id, user.id, name, data or b"", refusal))
        if result.status == "new":
            metrics.photo_imported(UPLOAD.name)
        results.append(result)
    if import_id is None:  # a job of its own: done with this request
        await asyncio.to_thread(_complete, system, user.id, str(job.id))
    answer = UploadAnswer(import_id=str(job.id), results=results)
    return JSONResponse(answer.model_dump(), status_code=_answer_status(results))


async def owned_photo(request: Request, user_id: str, photo_id: str) -> dict:
    row = await queries.photo(request.app.state.system.engine, user_id, photo_id)
    if row is None or row["status"] == "rejected":
        # The same answer whether it does not exist or belongs to someone else.
        raise UserError(status.HTTP_404_NOT_FOUND, "NOT_FOUND", "no such photo")
    return row


def _not_modified(request: Request, etag: str) -> bool:
    return request.headers.get("if-none-match", "") == etag


@router.get(
    "/photos/{photo_id}/original",
    response_class=Response,
    responses={200: {"content": {mime: {} for mime in ACCEPTED_FORMATS.values()}}, 404: {"description": "No such photo"}},
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
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
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


# np.rot90's anticlockwise quarter turns as PIL transposes.
_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


def make_face_crop(data: bytes, box: tuple[float, float, float, float], size: int, turns: int = 0, *,
                   max_pixels: int) -> bytes:
    """A square JPEG around the face box, with a margin of a fifth of the box on each side,
    turned by `turns` quarter turns (a face of a sideways or upside-down photo, shown upright)."""
    x1, y1, x2, y2 = box
    margin = 0.2 * max(x2 - x1, y2 - y1)
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2 + margin
    # Boxes are in the pixels the worker detected on: decoded the same way.
    image = Image.fromarray(decode_rgb(data, max_pixels))
    crop = image.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
    crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    if turns % 4:
        crop = crop.transpose(_TURNS[turns % 4])
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
    turns = upright_turns(face["landmarks"])
    max_pixels = request.app.state.system.settings.max_image_pixels
    data = await asyncio.to_thread(cached, path, lambda: make_face_crop(blobs.get(photo["content_hash"]), box, size, turns,
                                                                        max_pixels=max_pixels))
    return Response(data, media_type="image/jpeg", headers=headers)
