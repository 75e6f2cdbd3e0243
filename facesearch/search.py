"""Search by example: every face of an example photo, the nearest faces in Milvus for one
embedding model, kept when their calibrated similarity reaches the threshold, grouped by
photo; the top candidates re-checked by exact distance (verification).

The API calls `search_by_example`; the CLI `facesearch search` and `verify` call it too.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.faces import DetectedFace
from domain.similarity import Calibration
from domain.verification import Verdict, verify
from projections.faces import faces_of_photos
from projections.vectors import FaceVectorIndex, filter_expression

SEARCH_FORMATS = {"JPEG", "PNG", "WEBP"}
MIN_THRESHOLD, MAX_THRESHOLD = 70.0, 95.0


class SearchInputError(ValueError):
    """The example cannot be searched with (bad image, no face, bad option); the message says why."""


@dataclass(frozen=True)
class FaceBox:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class ExampleFace:
    face_index: int  # in the example, largest first
    box: FaceBox
    score: float


@dataclass(frozen=True)
class Verification:
    """The exact check of one candidate beside what Milvus answered."""

    raw: float  # exact cosine similarity or L2 distance
    similarity: float  # calibrated percent of the exact score
    same: bool  # exact similarity >= threshold
    index_raw: float  # the score Milvus reported, in the same units
    difference: float  # |raw - index_raw|
    agrees: bool  # same verdict from both


@dataclass(frozen=True)
class FaceMatch:
    face_id: str
    face_index: int
    box: FaceBox
    similarity: float  # calibrated percent
    raw_score: float  # cosine similarity or L2 distance, as the model's metric says
    verification: Verification | None = None


@dataclass(frozen=True)
class PhotoMatch:
    photo_id: str
    source: str
    source_ref: str
    import_id: str | None
    similarity: float  # of its best face
    faces: list[FaceMatch]


@dataclass(frozen=True)
class Agreement:
    checked: int  # candidates verified exactly
    agreeing: int  # of them, how many got the same verdict from Milvus and the exact check
    max_difference: float  # the largest |exact - Milvus| raw score

    @property
    def rate(self) -> float:
        return self.agreeing / self.checked if self.checked else 1.0


@dataclass(frozen=True)
class SearchFilters:
    source: str | None = None
    import_id: str | None = None
    imported_from: datetime | None = None
    imported_to: datetime | None = None


@dataclass(frozen=True)
class SearchResult:
    model: str
    metric: str  # "cosine" or "l2"
    threshold: float
    top_k: int
    query_face: ExampleFace
    example_faces: list[ExampleFace]
    photos: list[PhotoMatch]  # best first
    candidates: int  # neighbours Milvus returned before the threshold
    agreement: Agreement
    timings_ms: dict[str, float] = field(default_factory=dict)


def decode_example(image_bytes: bytes, max_pixels: int = 60_000_000) -> np.ndarray:
    """JPEG, PNG or WEBP bytes -> RGB uint8; anything else is a `SearchInputError`."""
    if not image_bytes:
        raise SearchInputError("the example is empty")
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            if image.format not in SEARCH_FORMATS:
                raise SearchInputError(f"unsupported image format {image.format or 'unknown'}: use JPG, PNG or WEBP")
            if image.width * image.height > max_pixels:
                raise SearchInputError(f"the example is too large ({image.width} × {image.height} pixels)")
            from PIL import ImageOps

            rgb = ImageOps.exif_transpose(image).convert("RGB")
            return np.asarray(rgb)
    except SearchInputError:
        raise
    except UnidentifiedImageError:
        raise SearchInputError("the example is not an image: use JPG, PNG or WEBP") from None
    except Exception as error:  # truncated or corrupt data
        raise SearchInputError(f"the example image is corrupt: {error}") from None


def ordered_faces(faces: Sequence[tuple[DetectedFace, np.ndarray]]) -> list[tuple[DetectedFace, np.ndarray]]:
    """Largest box first: face 0 is the default query face."""
    return sorted(faces, key=lambda f: -(f[0].box.width * f[0].box.height))


def _box(face: DetectedFace) -> FaceBox:
    return FaceBox(face.box.x1, face.box.y1, face.box.x2, face.box.y2)


class FaceSearcher:
    """Holds what searching needs: settings, the read models, the vector index, and one
    analyzer per embedding model (loaded on first use)."""

    def __init__(self, settings: Any, engine: AsyncEngine, index: FaceVectorIndex) -> None:
        self.settings = settings
        self.engine = engine
        self.index = index
        self._analyzers: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def analyzer(self, model: str) -> Any:
        from gpu_workers.registry import UnknownModel
        from gpu_workers.worker import make_analyzer

        async with self._lock:
            if model not in self._analyzers:
                try:
                    self._analyzers[model] = await asyncio.to_thread(make_analyzer, self.settings, model)
                except UnknownModel as error:
                    raise SearchInputError(str(error)) from None
            return self._analyzers[model]

    def metric(self, model: str) -> str:
        return "l2" if self.index.config.metric_for(model) == "L2" else "cosine"

    async def calibration(self, model: str) -> Calibration:
        analyzer = await self.analyzer(model)
        calibration = analyzer.embedder.calibration(self.metric(model))
        if calibration is None:
            raise RuntimeError(f"model {model} has no calibration: run `facesearch models calibrate --embedder {model}`")
        return calibration

    async def faces_in(self, image: np.ndarray, model: str) -> list[tuple[DetectedFace, np.ndarray]]:
        analyzer = await self.analyzer(model)
        [faces] = await asyncio.to_thread(analyzer.analyze, [image])
        return ordered_faces(faces)

    async def search(
        self,
        image_bytes: bytes,
        owner: str,
        *,
        threshold: float | None = None,
        top_k: int | None = None,
        model: str | None = None,
        face_index: int | None = None,
        filters: SearchFilters | None = None,
        verify_top: int | None = None,
    ) -> SearchResult:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        threshold = self.settings.search_threshold_percent if threshold is None else float(threshold)
        top_k = self.settings.search_top_k if top_k is None else int(top_k)
        model = model or self.settings.embedder
        verify_top = self.settings.search_verify_top if verify_top is None else verify_top
        if not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD:
            raise SearchInputError(f"threshold must be between {MIN_THRESHOLD:.0f} and {MAX_THRESHOLD:.0f} %")
        if not 1 <= top_k <= 16_384:
            raise SearchInputError("top-k must be between 1 and 16384")
        image = await asyncio.to_thread(decode_example, image_bytes, self.settings.max_image_pixels)
        timings["decode"] = (time.perf_counter() - start) * 1000

        t = time.perf_counter()
        faces = await self.faces_in(image, model)
        calibration = await self.calibration(model)
        timings["analyse"] = (time.perf_counter() - t) * 1000
        if not faces:
            raise SearchInputError("no face found in the example photo")
        chosen = 0 if face_index is None else face_index
        if not 0 <= chosen < len(faces):
            raise SearchInputError(f"the example has {len(faces)} faces: choose a face index from 0 to {len(faces) - 1}")
        example_faces = [ExampleFace(i, _box(f), f.score) for i, (f, _) in enumerate(faces)]
        query = faces[chosen][1]

        t = time.perf_counter()
        filters = filters or SearchFilters()
        expression = filter_expression(owner, filters.source, filters.import_id, filters.imported_from, filters.imported_to)
        hits = await asyncio.to_thread(self.index.search, model, query, top_k, expression)
        timings["milvus"] = (time.perf_counter() - t) * 1000

        metric = calibration.metric
        # Exact check of the top candidates, against the vectors Milvus stores.
        t = time.perf_counter()
        checked = hits[:verify_top]
        stored = await asyncio.to_thread(self.index.vectors, model, [h.face_id for h in checked])
        verifications: dict[str, Verification] = {}
        for hit in checked:
            if hit.face_id not in stored:
                continue
            exact: Verdict = verify(query.tolist(), stored[hit.face_id].tolist(), calibration, threshold)
            index_raw = hit.raw(self.index.config.metric_for(model))
            index_same = calibration.percent(index_raw) >= threshold
            verifications[hit.face_id] = Verification(
                exact.raw, exact.similarity, exact.same, index_raw, abs(exact.raw - index_raw), exact.same == index_same
            )
        timings["verify"] = (time.perf_counter() - t) * 1000

        kept = [(h, h.raw(self.index.config.metric_for(model))) for h in hits]
        kept = [(h, raw, calibration.percent(raw)) for h, raw in kept]
        kept = [k for k in kept if k[2] >= threshold]

        t = time.perf_counter()
        photo_ids = list(dict.fromkeys(h.photo_id for h, _, _ in kept))
        rows = await faces_of_photos(self.engine, photo_ids)
        photos: list[PhotoMatch] = []
        for photo_id in photo_ids:
            face_rows = {r["face_index"]: r for r in rows.get(photo_id, [])}
            if not face_rows:  # read model behind Milvus, or the photo was deleted
                continue
            matches = [
                FaceMatch(
                    h.face_id, h.face_index,
                    FaceBox(face_rows[h.face_index]["x1"], face_rows[h.face_index]["y1"],
                            face_rows[h.face_index]["x2"], face_rows[h.face_index]["y2"]),
                    percent, raw, verifications.get(h.face_id),
                )
                for h, raw, percent in kept
                if h.photo_id == photo_id and h.face_index in face_rows
            ]
            first = next(iter(face_rows.values()))
            photos.append(
                PhotoMatch(photo_id, first["source"], first["source_ref"], first["import_id"],
                           max(m.similarity for m in matches), matches)
            )
        photos.sort(key=lambda p: -p.similarity)
        timings["read_models"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - start) * 1000

        agreement = Agreement(
            len(verifications), sum(v.agrees for v in verifications.values()),
            max((v.difference for v in verifications.values()), default=0.0),
        )
        return SearchResult(model, metric, threshold, top_k, example_faces[chosen], example_faces, photos, len(hits), agreement, timings)

    async def verify_pair(self, image_a: bytes, image_b: bytes, model: str | None = None, threshold: float | None = None) -> Verdict:
        """Same person or not: the largest face of each image, by direct distance."""
        model = model or self.settings.embedder
        vectors = []
        for label, data in (("first", image_a), ("second", image_b)):
            faces = await self.faces_in(await asyncio.to_thread(decode_example, data), model)
            if not faces:
                raise SearchInputError(f"no face found in the {label} image")
            vectors.append(faces[0][1])
        calibration = await self.calibration(model)
        return verify(vectors[0].tolist(), vectors[1].tolist(), calibration, threshold)


def searcher_for(system: Any) -> FaceSearcher:
    """The System's searcher (made once: it caches the models)."""
    searcher = getattr(system, "searcher", None)
    if searcher is None:
        searcher = FaceSearcher(system.settings, system.engine, system.vectors)
        system.searcher = searcher
    return searcher


async def search_by_example(
    system: Any,
    image_bytes: bytes,
    owner: str,
    threshold: float | None = None,
    top_k: int | None = None,
    model: str | None = None,
    face_index: int | None = None,
    filters: SearchFilters | None = None,
) -> SearchResult:
    """Photos of `owner` showing the person in the example (`face_index` of its faces,
    largest first; default the largest), best first. Raises `SearchInputError` for bad input.

    `system` is anything with `settings`, `engine` (read models) and `vectors` (a
    `FaceVectorIndex`): a started `facesearch.system.System` does.
    """
    return await searcher_for(system).search(
        image_bytes, owner, threshold=threshold, top_k=top_k, model=model, face_index=face_index, filters=filters
    )
