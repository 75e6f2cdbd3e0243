"""Search by example: every face of an example photo, the nearest faces in Milvus for one
embedding model, scored against the model's calibration (cohort-normalised, for an archive of
as many faces as the search covers), kept when the calibrated similarity reaches the
threshold, grouped by photo.

The cross-check: every other configured model re-scores the same candidates with its own
vectors of the same faces and gives its verdict; `require_all_models` keeps only the matches
every model accepts (a face another model has not embedded yet is not accepted by it).

The API calls `search_by_example`; the CLI `facesearch search` and `verify` call it too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from commands.images import FORMATS_IN_WORDS, ImageRejected, decode_rgb
from domain.faces import DetectedFace
from domain.similarity import expanded_archive_faces, expansion_seeds, to_cosine
from domain.verification import Verdict, verdict
from facesearch.infra import metrics
from facesearch.settings import Settings
from gpu_workers.calibration import ScoreCalibration, cross_check_accepts, load_joint_calibration
from projections.faces import archive_face_count, faces_of_photos
from projections.people import people_of_faces
from projections.vectors import FaceVectorIndex, VectorHit, filter_expression

MIN_THRESHOLD, MAX_THRESHOLD = 70.0, 95.0


class SearchInputError(ValueError):
    """The example cannot be searched with (bad image, no face, bad option); the message says
    why in English, `code` and `params` for clients to say it in the user's language."""

    def __init__(self, message: str, code: str = "BAD_EXAMPLE", params: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.params = params or {}


class SearchUnavailable(RuntimeError):
    """The model cannot search yet (no calibration); the message says what to run."""


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
class ModelVerdict:
    """One model's judgement of a candidate face; None fields: the model has no vector of it yet."""

    model: str
    metric: str  # "cosine" or "l2"
    raw: float | None  # cosine similarity or L2 distance
    similarity: float | None  # calibrated percent, for the archive searched
    same: bool | None  # similarity >= the search's threshold
    pair_similarity: float | None = None  # calibrated percent of the two faces judged as a pair
    score: float | None = None  # cohort-normalised score


@dataclass(frozen=True)
class FaceMatch:
    face_id: str
    face_index: int
    box: FaceBox
    similarity: float  # calibrated percent, by the searched model
    raw_score: float  # cosine similarity or L2 distance, as the model's metric says
    score: float  # cohort-normalised score, the calibrated percentage's input
    verdicts: list[ModelVerdict] = field(default_factory=list)  # the searched model first, then the others
    cross_check_similarity: float | None = None  # calibrated percent of every model's evidence combined
    cross_check: bool | None = None  # the cross-check's verdict (None: one model only)
    person_id: str | None = None
    person_name: str | None = None


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
    """Milvus's scores beside the exact ones computed from the stored vectors."""

    checked: int  # candidates scored exactly
    agreeing: int  # of them, how many got the same verdict from Milvus's score and the exact one
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
    archive_faces: int  # faces the search covered (the calibration's archive size)
    models: list[str]  # the searched model, then the models that cross-checked it
    require_all_models: bool
    timings_ms: dict[str, float] = field(default_factory=dict)


def decode_example(image_bytes: bytes, max_pixels: int) -> np.ndarray:
    """The example's pixels, decoded as the worker decodes photos (`commands.images.decode_rgb`:
    RGB uint8, EXIF orientation applied); a file it refuses is a `SearchInputError` with its code."""
    if not image_bytes:
        raise SearchInputError("the example is empty", "EMPTY_FILE")
    try:
        return decode_rgb(image_bytes, max_pixels)
    except ImageRejected as rejection:
        if rejection.code == "NOT_AN_IMAGE":
            raise SearchInputError(f"the example is not an image: use {FORMATS_IN_WORDS}", "NOT_AN_IMAGE") from None
        if rejection.code == "UNSUPPORTED_FORMAT":
            raise SearchInputError(str(rejection), rejection.code, rejection.params) from None
        if rejection.code == "CORRUPT_IMAGE":
            raise SearchInputError(f"the example image is corrupt: {rejection}", rejection.code, rejection.params) from None
        raise SearchInputError(f"the example is not usable: {rejection}", rejection.code, rejection.params) from None


def ordered_faces(faces: Sequence[tuple[DetectedFace, np.ndarray]]) -> list[tuple[DetectedFace, np.ndarray]]:
    """Largest box first: face 0 is the default query face."""
    return sorted(faces, key=lambda f: -(f[0].box.width * f[0].box.height))


def _box(face: DetectedFace) -> FaceBox:
    return FaceBox(face.box.x1, face.box.y1, face.box.x2, face.box.y2)


@dataclass(frozen=True)
class _Scored:
    """A candidate with its exact scores by the searched model."""

    hit: VectorHit
    cos: float
    score: float
    percent: float


class FaceSearcher:
    """Holds what searching needs: settings, the read models, the vector index, and one
    analyzer per embedding model (loaded on first use)."""

    def __init__(self, settings: Settings, engine: AsyncEngine, index: FaceVectorIndex) -> None:
        self.settings = settings
        self.engine = engine
        self.index = index
        self._analyzers: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def analyzer(self, model: str) -> Any:
        from gpu_workers.registry import UnknownModel
        from gpu_workers.weights import WeightsError
        from gpu_workers.worker import make_analyzer

        async with self._lock:
            if model not in self._analyzers:
                try:
                    self._analyzers[model] = await asyncio.to_thread(make_analyzer, self.settings, model)
                except (UnknownModel, WeightsError) as error:
                    raise SearchInputError(str(error)) from None
            return self._analyzers[model]

    def metric(self, model: str) -> str:
        return "l2" if self.index.config.metric_for(model) == "L2" else "cosine"

    async def calibration(self, model: str) -> ScoreCalibration:
        analyzer = await self.analyzer(model)
        try:
            calibration = analyzer.embedder.calibration()
        except ValueError as error:  # an old format
            raise SearchUnavailable(f"model {model}: {error}") from None
        if calibration is None:
            raise SearchUnavailable(f"model {model} has no calibration: run `facesearch models calibrate --embedder {model}`")
        return calibration

    async def faces_in(self, image: np.ndarray, model: str) -> list[tuple[DetectedFace, np.ndarray]]:
        analyzer = await self.analyzer(model)
        [faces] = await asyncio.to_thread(analyzer.analyze, [image])
        return ordered_faces(faces)

    async def embed_face(self, image: np.ndarray, face: DetectedFace, model: str) -> np.ndarray:
        """One detected face embedded by another model (its own alignment, the same detection)."""
        embedder = (await self.analyzer(model)).embedder
        return (await asyncio.to_thread(lambda: embedder.embed(np.stack([embedder.align(image, face)]))))[0]

    def cross_check_models(self, model: str) -> list[str]:
        """The other configured models that can judge this model's candidates."""
        return [m for m in self.settings.embedders if m != model]

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
        require_all_models: bool = False,
    ) -> SearchResult:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        threshold, top_k = self._limits(threshold, top_k)
        model = model or self.settings.embedder
        image = await asyncio.to_thread(decode_example, image_bytes, self.settings.max_image_pixels)
        timings["decode"] = (time.perf_counter() - start) * 1000

        t = time.perf_counter()
        faces = await self.faces_in(image, model)
        calibration = await self.calibration(model)
        timings["analyse"] = (time.perf_counter() - t) * 1000
        chosen = _chosen_face(len(faces), face_index)
        example_faces = [ExampleFace(i, _box(f), f.score) for i, (f, _) in enumerate(faces)]
        face, query = faces[chosen]

        t = time.perf_counter()
        filters = filters or SearchFilters()
        expression = filter_expression(owner, filters.source, filters.import_id, filters.imported_from, filters.imported_to)
        archive_faces, hits = await asyncio.gather(
            archive_face_count(self.engine, owner, model, filters.source, filters.import_id, filters.imported_from,
                               filters.imported_to),
            asyncio.to_thread(self.index.search, model, query, top_k, expression),
        )
        timings["milvus"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        scored, agreement, stored = await self._score(model, calibration, query, hits, archive_faces, threshold)
        scored, scored_among = await self._expand(model, calibration, query, scored, stored, expression, top_k, archive_faces)
        others, verdicts, cross = await self._judge(owner, model, calibration, image, face, scored, threshold, scored_among)
        if require_all_models:
            kept = [s for s in scored if cross[s.hit.face_id][1]]
        else:  # the model's own matches, and any the cross-check accepts besides
            kept = [s for s in scored if s.percent >= threshold or cross[s.hit.face_id][1]]
        timings["score"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        photos = await self._photos(owner, model, kept, verdicts, cross)
        timings["read_models"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - start) * 1000
        metrics.search_answered(timings["total"] / 1000)  # the search latency series and Grafana panel
        return SearchResult(
            model, self.metric(model), threshold, top_k, example_faces[chosen], example_faces, photos, len(hits), agreement,
            archive_faces, [model, *others], require_all_models, timings,
        )

    def _limits(self, threshold: float | None, top_k: int | None) -> tuple[float, int]:
        """The threshold and top-k asked for (the settings' when not), checked."""
        threshold = self.settings.search_threshold_percent if threshold is None else float(threshold)
        top_k = self.settings.search_top_k if top_k is None else int(top_k)
        if not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD:
            raise SearchInputError(f"threshold must be between {MIN_THRESHOLD:.0f} and {MAX_THRESHOLD:.0f} %", "BAD_THRESHOLD",
                                   {"min": MIN_THRESHOLD, "max": MAX_THRESHOLD})
        if not 1 <= top_k <= 16_384:
            raise SearchInputError("top-k must be between 1 and 16384")
        return threshold, top_k

    async def _score(
        self, model: str, calibration: ScoreCalibration, query: np.ndarray, hits: list[VectorHit], archive_faces: int,
        threshold: float,
    ) -> tuple[list[_Scored], Agreement, dict[str, np.ndarray]]:
        """Exact cosines from the stored vectors, normalised scores and percentages, best first;
        how Milvus's own scores compare; and the stored vectors (query expansion reuses them)."""
        stored = await asyncio.to_thread(self.index.vectors, model, [h.face_id for h in hits])
        hits = [h for h in hits if h.face_id in stored]
        if not hits:
            return [], Agreement(0, 0, 0.0), stored
        vectors = np.stack([stored[h.face_id] for h in hits])
        cosines = vectors @ np.asarray(query, dtype=np.float32)
        index_metric = self.index.config.metric_for(model)
        index_cos = np.array([to_cosine(h.raw(index_metric), self.metric(model)) for h in hits])
        scores, index_scores = calibration.scores(query, vectors, cosines, index_cos)
        percents = calibration.percents(scores, archive_faces)
        index_percents = calibration.percents(index_scores, archive_faces)
        agreement = Agreement(
            len(hits), int(np.sum((percents >= threshold) == (index_percents >= threshold))),
            float(np.max(np.abs(cosines - index_cos))),
        )
        scored = [_Scored(h, float(c), float(z), float(p)) for h, c, z, p in zip(hits, cosines, scores, percents)]
        return sorted(scored, key=lambda s: -s.score), agreement, stored

    async def _expand(
        self, model: str, calibration: ScoreCalibration, query: np.ndarray, scored: list[_Scored],
        stored: dict[str, np.ndarray], expression: str, top_k: int, archive_faces: int,
    ) -> tuple[list[_Scored], int]:
        """Query expansion (domain.similarity): the archive searched again from each near-certain
        match, every candidate scored by its best search, its percent for an archive that many
        times larger. Returns the candidates, best first, and the archive size they are scored for."""
        seeds = expansion_seeds([(s.hit.face_id, s.percent) for s in scored], limit=self.settings.search_expand_seeds)
        if not seeds:
            return scored, archive_faces
        hits = {s.hit.face_id: s.hit for s in scored}
        # Every seed in one request (a seed is a scored hit: its vector is in `stored`).
        for seed_hits in await asyncio.to_thread(self.index.search_many, model, [stored[s] for s in seeds], top_k, expression):
            for hit in seed_hits:
                hits.setdefault(hit.face_id, hit)
        new = [face_id for face_id in hits if face_id not in stored]
        stored = {**stored, **(await asyncio.to_thread(self.index.vectors, model, new) if new else {})}
        ids = [face_id for face_id in hits if face_id in stored]
        row = {face_id: i for i, face_id in enumerate(ids)}
        seed_rows = [row[seed] for seed in seeds if seed in row]
        vectors = np.stack([stored[face_id] for face_id in ids])
        scores, _ = calibration.expanded_scores(query, vectors, seed_rows)
        among = expanded_archive_faces(archive_faces, len(seed_rows))
        percents = calibration.percents(scores, among)
        cosines = vectors @ np.asarray(query, dtype=np.float32)
        out = [_Scored(hits[f], float(c), float(z), float(p)) for f, c, z, p in zip(ids, cosines, scores, percents)]
        return sorted(out, key=lambda s: -s.score), among

    async def _judge(
        self, owner: str, model: str, calibration: ScoreCalibration, image: np.ndarray, face: DetectedFace, scored: list[_Scored],
        threshold: float, archive_faces: int,
    ) -> tuple[list[str], dict[str, list[ModelVerdict]], dict[str, tuple[float | None, bool | None]]]:
        """The cross-checking models, each candidate's verdicts (the searched model first) and
        the cross-check's (combined percent, accepted) of each candidate."""
        verdicts = {s.hit.face_id: [self._verdict(model, calibration, s.cos, s.score, threshold, archive_faces)] for s in scored}
        others = [m for m in self.cross_check_models(model) if await archive_face_count(self.engine, owner, m) > 0]
        for other in others:
            checked = await self._cross_check(other, image, face, list(verdicts), threshold, archive_faces)
            for face_id, v in checked.items():
                verdicts[face_id].append(v)
        joint = self._joint_calibration([model, *others]) if others else None
        cross = {face_id: self._cross_verdict(joint, v, threshold, archive_faces) for face_id, v in verdicts.items()}
        return others, verdicts, cross

    def _verdict(
        self, model: str, calibration: ScoreCalibration, cos: float, score: float, threshold: float, archive_faces: int,
    ) -> ModelVerdict:
        v = verdict(calibration.calibration, cos, score, self.metric(model), threshold, archive_faces)
        return ModelVerdict(model, v.metric, v.raw, v.similarity, v.same, calibration.calibration.percent(score), score)

    def _joint_calibration(self, models: list[str]) -> Any:
        joint = load_joint_calibration(self.settings.models_dir, models)
        if joint is None:
            raise SearchUnavailable(f"no cross-check calibration for {', '.join(models)}: run `facesearch models calibrate`")
        return joint

    @staticmethod
    def _cross_verdict(joint: Any, verdicts: list[ModelVerdict], threshold: float, archive_faces: int) -> tuple[float | None, bool | None]:
        """(combined percent, accepted) of one candidate; (None, None) with one model only."""
        if joint is None:
            return None, None
        scores = [v.score for v in verdicts if v.score is not None]
        if len(scores) < len(verdicts):  # a model has no vector of this face yet
            return None, False
        percent = joint.percent(sum(scores), archive_faces)
        return percent, cross_check_accepts(percent, [v.pair_similarity for v in verdicts], threshold)

    async def _cross_check(
        self, model: str, image: np.ndarray, face: DetectedFace, face_ids: list[str], threshold: float, archive_faces: int,
    ) -> dict[str, ModelVerdict]:
        """`model`'s verdict on each candidate face, from its own vectors of the same faces."""
        if not face_ids:
            return {}
        calibration = await self.calibration(model)
        query = await self.embed_face(image, face, model)
        stored = await asyncio.to_thread(self.index.vectors, model, face_ids)
        out = {fid: ModelVerdict(model, self.metric(model), None, None, None) for fid in face_ids if fid not in stored}
        known = [fid for fid in face_ids if fid in stored]
        if known:
            vectors = np.stack([stored[fid] for fid in known])
            cosines = vectors @ query
            for fid, cos, score in zip(known, cosines, calibration.scores(query, vectors, cosines)):
                out[fid] = self._verdict(model, calibration, float(cos), float(score), threshold, archive_faces)
        return out

    async def _photos(
        self, owner: str, model: str, kept: list[_Scored], verdicts: dict[str, list[ModelVerdict]],
        cross: dict[str, tuple[float | None, bool | None]],
    ) -> list[PhotoMatch]:
        """The kept faces grouped by photo (best first), with their boxes and people from the read models."""
        photo_ids = list(dict.fromkeys(s.hit.photo_id for s in kept))
        rows = await faces_of_photos(self.engine, photo_ids)
        people = await people_of_faces(self.engine, owner, model, [s.hit.face_id for s in kept])
        photos: list[PhotoMatch] = []
        for photo_id in photo_ids:
            face_rows = {r["face_index"]: r for r in rows.get(photo_id, [])}
            if not face_rows:  # read model behind Milvus, or the photo was deleted
                continue
            matches = []
            for s in kept:
                row = face_rows.get(s.hit.face_index)
                if s.hit.photo_id != photo_id or row is None:
                    continue
                person_id, person_name = people.get(s.hit.face_id, (None, None))
                searched = verdicts[s.hit.face_id][0]
                assert searched.raw is not None  # the searched model found this face by its vector
                matches.append(FaceMatch(
                    s.hit.face_id, s.hit.face_index, FaceBox(row["x1"], row["y1"], row["x2"], row["y2"]), s.percent,
                    searched.raw, s.score, verdicts[s.hit.face_id], *cross[s.hit.face_id],
                    person_id, person_name,
                ))
            first = next(iter(face_rows.values()))
            photos.append(PhotoMatch(photo_id, first["source"], first["source_ref"], first["import_id"],
                                     max(m.similarity for m in matches), matches))
        photos.sort(key=lambda p: -p.similarity)
        return photos

    async def verify_pair(self, image_a: bytes, image_b: bytes, model: str | None = None, threshold: float | None = None) -> Verdict:
        """Same person or not: the largest face of each image, by direct distance, judged as a pair."""
        model = model or self.settings.embedder
        vectors = []
        for label, data in (("first", image_a), ("second", image_b)):
            faces = await self.faces_in(await asyncio.to_thread(decode_example, data, self.settings.max_image_pixels), model)
            if not faces:
                raise SearchInputError(f"no face found in the {label} image")
            vectors.append(faces[0][1])
        calibration = await self.calibration(model)
        score, _ = calibration.pair_percent(vectors[0], vectors[1])
        return verdict(calibration.calibration, float(vectors[0] @ vectors[1]), score, self.metric(model), threshold)


def _chosen_face(faces: int, face_index: int | None) -> int:
    """The example's face to search for: the largest (0) unless one is chosen."""
    if not faces:
        raise SearchInputError("no face found in the example photo", "NO_FACE")
    chosen = 0 if face_index is None else face_index
    if not 0 <= chosen < faces:
        raise SearchInputError(f"the example has {faces} faces: choose a face index from 0 to {faces - 1}",
                               "BAD_FACE_INDEX", {"faces": faces})
    return chosen


class Searching(Protocol):
    """What search needs of its caller: a started `facesearch.system.System` is one."""

    @property
    def searcher(self) -> FaceSearcher: ...


async def search_by_example(
    system: Searching,
    image_bytes: bytes,
    owner: str,
    threshold: float | None = None,
    top_k: int | None = None,
    model: str | None = None,
    face_index: int | None = None,
    filters: SearchFilters | None = None,
    require_all_models: bool = False,
) -> SearchResult:
    """Photos of `owner` showing the person in the example (`face_index` of its faces,
    largest first; default the largest), best first; `require_all_models` keeps only the matches
    every configured model accepts. Raises `SearchInputError` for bad input.

    """
    return await system.searcher.search(
        image_bytes, owner, threshold=threshold, top_k=top_k, model=model, face_index=face_index, filters=filters,
        require_all_models=require_all_models,
    )
