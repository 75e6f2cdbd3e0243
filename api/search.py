"""Search by example, REST half: the example image arrives as multipart, its faces are
found, and it is kept for a while under an id so the GraphQL `searchByExample` query
can search with any of its faces and thresholds without uploading it again.

Examples are not photos of the archive: they live in memory only, per user, and expire.
What is kept is the decoded example re-encoded small (at most EXAMPLE_MAX_SIDE pixels a
side), never the upload: faces are found on exactly those pixels, so the boxes the client
gets and the ones a search uses agree.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Request, UploadFile, status
from PIL import Image
from pydantic import BaseModel

from api.auth import CurrentUser
from api.cpu import cpu_slots_for
from api.errors import UserError, megabytes
from api.photos import read_limited
from commands.images import FORMATS_IN_WORDS, ImageRejected, read_header
from facesearch.services.search import SearchInputError, decode_example

EXAMPLE_SECONDS = 30 * 60
EXAMPLES_PER_USER = 10  # the oldest of the user's own goes first
EXAMPLE_BYTES_PER_USER = 12 * 1024 * 1024
EXAMPLE_MAX_SIDE = 2048
UNSUPPORTED = {"NOT_AN_IMAGE", "UNSUPPORTED_FORMAT"}


@dataclass(frozen=True)
class Example:
    data: bytes  # JPEG, EXIF orientation applied
    expires_at: float


class ExampleStore:
    """Each user's recent examples, bounded in count and bytes per user: one user's uploads
    never evict another's."""

    def __init__(self, per_user: int = EXAMPLES_PER_USER, bytes_per_user: int = EXAMPLE_BYTES_PER_USER) -> None:
        self.per_user = per_user
        self.bytes_per_user = bytes_per_user
        self._users: dict[str, OrderedDict[str, Example]] = {}

    def put(self, owner: str, data: bytes) -> str:
        self._expire()
        example_id = secrets.token_urlsafe(16)
        mine = self._users.setdefault(owner, OrderedDict())
        mine[example_id] = Example(data, time.time() + EXAMPLE_SECONDS)
        while len(mine) > self.per_user or (len(mine) > 1 and self.bytes_of(owner) > self.bytes_per_user):
            mine.popitem(last=False)
        return example_id

    def get(self, owner: str, example_id: str) -> bytes | None:
        self._expire()
        mine = self._users.get(owner)
        example = mine.get(example_id) if mine is not None else None
        return example.data if example else None

    def bytes_of(self, owner: str) -> int:
        return sum(len(e.data) for e in self._users.get(owner, {}).values())

    def _expire(self) -> None:
        now = time.time()
        for owner, mine in list(self._users.items()):
            for key in [k for k, v in mine.items() if v.expires_at < now]:
                del mine[key]
            if not mine:
                del self._users[owner]


def shrink(image: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The example as kept: at most EXAMPLE_MAX_SIDE a side, JPEG, and the pixels it decodes to."""
    picture = Image.fromarray(image)
    picture.thumbnail((EXAMPLE_MAX_SIDE, EXAMPLE_MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=92)
    data = out.getvalue()
    return data, decode_example(data, EXAMPLE_MAX_SIDE * EXAMPLE_MAX_SIDE)


def prepare_example(data: bytes, max_pixels: int) -> tuple[bytes, np.ndarray]:
    return shrink(decode_example(data, max_pixels))


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
    responses={413: {"description": "Larger than the upload limit"}, 415: {"description": f"Not a {FORMATS_IN_WORDS} image"},
               422: {"description": "Corrupt, or no face in it"}},
)
async def upload_example(
    request: Request, user: CurrentUser, file: Annotated[UploadFile, File(description=f"{FORMATS_IN_WORDS} with a face")]
) -> ExampleOut:
    """Finds the faces in an example photo (largest first) and keeps it for searching:
    pass `exampleId` and a `faceIndex` to the GraphQL query `searchByExample`."""
    system = request.app.state.system
    data = await read_limited(file, system.settings.max_upload_bytes)
    limit = system.settings.max_upload_bytes
    if data is None:
        raise UserError(status.HTTP_413_CONTENT_TOO_LARGE, "TOO_LARGE", f"file too large (limit {limit:,} bytes)",
                        {"limit_megabytes": megabytes(limit)})
    try:  # from the header alone: a forged or oversized image costs nothing
        read_header(data, system.settings.max_image_pixels)
    except ImageRejected as rejection:
        code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE if rejection.code in UNSUPPORTED else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise UserError(code, rejection.code, f"{rejection} [{rejection.code}]", rejection.params) from None
    searcher = system.searcher
    slots = cpu_slots_for(system)
    async with slots.held():  # decode, detect and embed off the event loop, a few at a time
        try:
            kept, image = await asyncio.to_thread(prepare_example, data, system.settings.max_image_pixels)
        except SearchInputError as error:
            code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE if error.code in UNSUPPORTED else status.HTTP_422_UNPROCESSABLE_CONTENT
            raise UserError(code, error.code, str(error), error.params) from None
        del data
        faces = await searcher.faces_in(image, system.settings.embedder)
    if not faces:
        raise UserError(status.HTTP_422_UNPROCESSABLE_CONTENT, "NO_FACE", "no face found in the example photo")
    example_id = request.app.state.examples.put(user.id, kept)
    return ExampleOut(
        example_id=example_id, width=image.shape[1], height=image.shape[0],
        faces=[ExampleFaceOut(face_index=i, box=BoxOut(x1=f.box.x1, y1=f.box.y1, x2=f.box.x2, y2=f.box.y2), score=f.score)
               for i, (f, _) in enumerate(faces)],
    )
