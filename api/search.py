"""Search by example, REST half: the example image arrives as multipart, its faces are
found, and it is kept for a while under an id so the GraphQL `searchByExample` mutation
can search with any of its faces and thresholds without uploading it again.

Examples are not photos of the archive: they live in memory only, per user, and expire.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Request, UploadFile, status
from pydantic import BaseModel

from api.auth import CurrentUser
from api.photos import read_limited
from facesearch.search import SearchInputError, decode_example, searcher_for

EXAMPLE_SECONDS = 30 * 60
MAX_EXAMPLES = 64  # across users; the oldest goes first


@dataclass(frozen=True)
class Example:
    owner: str
    data: bytes
    expires_at: float


class ExampleStore:
    def __init__(self) -> None:
        self._items: OrderedDict[str, Example] = OrderedDict()

    def put(self, owner: str, data: bytes) -> str:
        self._expire()
        example_id = secrets.token_urlsafe(16)
        self._items[example_id] = Example(owner, data, time.time() + EXAMPLE_SECONDS)
        while len(self._items) > MAX_EXAMPLES:
            self._items.popitem(last=False)
        return example_id

    def get(self, owner: str, example_id: str) -> bytes | None:
        self._expire()
        example = self._items.get(example_id)
        return example.data if example and example.owner == owner else None

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, v in self._items.items() if v.expires_at < now]:
            del self._items[key]


class BoxOut(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class ExampleFaceOut(BaseModel):
    face_index: int
    box: BoxOut
    score: float


class ExampleOut(BaseModel):
    example_id: str
    width: int
    height: int
    faces: list[ExampleFaceOut]


router = APIRouter(prefix="/api/search", tags=["search"])


@router.post(
    "/examples",
    response_model=ExampleOut,
    status_code=201,
    responses={413: {"description": "Larger than the upload limit"}, 415: {"description": "Not a JPG, PNG or WEBP image"},
               422: {"description": "Corrupt, or no face in it"}},
)
async def upload_example(
    request: Request, user: CurrentUser, file: Annotated[UploadFile, File(description="JPG, PNG or WEBP with a face")]
) -> ExampleOut:
    """Finds the faces in an example photo (largest first) and keeps it for searching:
    pass `exampleId` and a `faceIndex` to the GraphQL mutation `searchByExample`."""
    system = request.app.state.system
    data = await read_limited(file, system.settings.max_upload_bytes)
    if data is None:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"file too large (limit {system.settings.max_upload_bytes:,} bytes)")
    try:
        image = decode_example(data, system.settings.max_image_pixels)
    except SearchInputError as error:
        code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE if "format" in str(error) or "not an image" in str(error) else (
            status.HTTP_422_UNPROCESSABLE_CONTENT)
        raise HTTPException(code, str(error)) from None
    searcher = searcher_for(system)
    faces = await searcher.faces_in(image, system.settings.embedder)
    if not faces:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no face found in the example photo")
    example_id = request.app.state.examples.put(user.id, data)
    return ExampleOut(
        example_id=example_id, width=image.shape[1], height=image.shape[0],
        faces=[ExampleFaceOut(face_index=i, box=BoxOut(x1=f.box.x1, y1=f.box.y1, x2=f.box.x2, y2=f.box.y2), score=f.score)
               for i, (f, _) in enumerate(faces)],
    )
