"""People use cases: clustering runs over the read models and Milvus, recorded through the
command handlers in commands/people.py. They take a `PeopleArchive` (the System is one)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from commands.app import FaceSearchApp
from commands.clustering import DEFAULT_ALGORITHM, ClusteringError
from commands.people import (
    ATTACH_SEARCH_LIMIT,
    CLUSTERING_ARCHIVE_FACES,
    FaceCandidate,
    FaceSet,
    PersonPair,
    cosine_threshold,
    join_threshold,
    merge_suggestions,
    nearest_people,
    peek_people,
    record_attachments,
    record_clustering,
    unassigned_candidates,
)
from domain.similarity import Calibration
from facesearch.settings import Settings
from projections.faces import archive_face_count
from projections.people import embedded_faces
from projections.vectors import FaceVectorIndex, filter_expression

ATTACH_SEARCH_BATCH = 64  # new faces whose neighbours one Milvus request finds


class PeopleArchive(Protocol):
    """What the people use cases read and write: the settings, the read models, the face
    vectors and the event store's application."""

    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> AsyncEngine: ...
    @property
    def vectors(self) -> FaceVectorIndex: ...
    @property
    def app(self) -> FaceSearchApp: ...


async def load_face_set(
    engine: AsyncEngine, index: FaceVectorIndex, owner: str, model: str, exclude: set[str] | None = None, chunk: int = 1000,
) -> FaceSet:
    """The owner's faces embedded by `model`, with their vectors from Milvus and their
    quality flags from the faces read model."""
    rows = await embedded_faces(engine, owner, model, exclude)
    ids = [face_id for face_id, _ in rows]
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), chunk):
        vectors |= await asyncio.to_thread(index.vectors, model, ids[start : start + chunk])
    kept = [(face_id, low) for face_id, low in rows if face_id in vectors]  # not in Milvus yet: the next run
    if not kept:
        return FaceSet([], np.zeros((0, 1), dtype=np.float32), np.zeros(0, dtype=bool))
    return FaceSet(
        [face_id for face_id, _ in kept], np.stack([vectors[face_id] for face_id, _ in kept]),
        np.array([low for _, low in kept]),
    )


@dataclass(frozen=True)
class RunSummary:
    owner: str
    model: str
    algorithm: str
    parameters: dict[str, Any]
    faces: int
    people: int
    attached: int
    unassigned: int
    seconds: float


def _calibration(archive: PeopleArchive, model: str | None, percent: float | None) -> tuple[str, Path, float]:
    model = model or archive.settings.embedder
    percent = percent if percent is not None else archive.settings.search_threshold_percent
    return model, Path(archive.settings.models_dir) / model / "calibration.json", percent  # gpu_workers.weights.calibration_path


async def run_clustering(
    archive: PeopleArchive, owner: str, model: str | None = None, algorithm: str | None = None,
    params: dict[str, Any] | None = None, percent: float | None = None, threshold: float | None = None,
) -> RunSummary:
    """A full run over the owner's faces embedded by `model` (default: the workers' model),
    recorded as ClusteringCompleted. `percent` is the calibrated similarity for "same person"
    (default: the search threshold, 85 %); `threshold` overrides it with a raw cosine (for
    the algorithm and for faces joining afterwards alike)."""
    started = time.perf_counter()
    model, calibration, percent = _calibration(archive, model, percent)
    faces = await load_face_set(archive.engine, archive.vectors, owner, model)
    join = threshold
    if threshold is None:
        threshold = cosine_threshold(calibration, percent)
        join = join_threshold(calibration, percent, len(faces.ids))
    plan = await asyncio.to_thread(
        record_clustering, archive.app, owner, model, faces, threshold, algorithm or DEFAULT_ALGORITHM, params, join,
        archive.settings.people_min_faces,
    )
    # Every person after the run, the ones it kept as the owner corrected them included.
    after = await asyncio.to_thread(peek_people, archive.app, owner, model)
    return RunSummary(
        owner, model, plan.algorithm, plan.parameters, len(faces.ids), len(after.persons) if after else 0,
        sum(len(v) for v in plan.attached.values()), len(plan.unassigned), round(time.perf_counter() - started, 3),
    )


async def attach_new_faces(
    archive: PeopleArchive, owner: str, model: str | None = None, percent: float | None = None, threshold: float | None = None,
) -> dict[str, list[str]]:
    """Attaches the owner's faces that arrived since the last run to existing people by
    their nearest neighbours in Milvus (no re-clustering); returns person id → new faces."""
    model, calibration, percent = _calibration(archive, model, percent)
    people = await asyncio.to_thread(peek_people, archive.app, owner, model)
    seen = (people.seen | set(people.person_of)) if people else set()
    faces = await load_face_set(archive.engine, archive.vectors, owner, model, exclude=seen)
    if not faces.ids or people is None:
        return {}
    metric = archive.vectors.config.metric_for(model)
    expression = filter_expression(owner)
    if threshold is None:
        archive_faces = await archive_face_count(archive.engine, owner, model)
        threshold = join_threshold(calibration, percent, archive_faces)

    def nearest(vectors: list[np.ndarray]) -> list[list[tuple[str, float]]]:
        # Milvus answers cosine for COSINE and squared L2 otherwise (unit vectors: cos = 1 − d²/2).
        return [[(h.face_id, h.distance if metric == "COSINE" else 1.0 - h.distance / 2.0) for h in hits]
                for hits in archive.vectors.search_many(model, vectors, ATTACH_SEARCH_LIMIT, expression)]

    def attach() -> dict[str, list[str]]:
        # The new faces' neighbours, a batch a request (Milvus Lite reads its keys once a request).
        found: dict[str, list[tuple[str, float]]] = {}
        for start in range(0, len(faces.ids), ATTACH_SEARCH_BATCH):
            ids = faces.ids[start : start + ATTACH_SEARCH_BATCH]
            found |= dict(zip(ids, nearest([faces.vectors[start + k] for k in range(len(ids))])))

        def neighbours(face_id: str, vector: np.ndarray) -> list[tuple[str, float]]:
            return found[face_id] if face_id in found else nearest([vector])[0]

        return record_attachments(archive.app, owner, model, faces, neighbours, threshold)

    return await asyncio.to_thread(attach)


# Suggestions, pickers and the review of faces in no person (read-only) ---------------------

class Similarity:
    """Cosine → calibrated percent, judged as clustering judges a pair (among
    CLUSTERING_ARCHIVE_FACES faces), so the numbers read like the search's."""

    def __init__(self, calibration_file: Path) -> None:
        if not calibration_file.is_file():
            raise ClusteringError(f"no calibration at {calibration_file}: run `facesearch models calibrate` first")
        self.calibration = Calibration.from_dict(json.loads(calibration_file.read_text())["cosine"])

    def percent(self, cosine: float) -> float:
        c = self.calibration
        return round(float(c.percent(c.typical_score(cosine), CLUSTERING_ARCHIVE_FACES)), 1)


async def _people_and_faces(archive: PeopleArchive, owner: str, model: str) -> tuple[Any, FaceSet]:
    people = await asyncio.to_thread(peek_people, archive.app, owner, model)
    if people is None:
        return None, FaceSet([], np.zeros((0, 1), dtype=np.float32), np.zeros(0, dtype=bool))
    return people, await load_face_set(archive.engine, archive.vectors, owner, model)


async def suggest_merges(archive: PeopleArchive, owner: str, model: str, limit: int) -> list[tuple[PersonPair, float]]:
    """Pairs of the owner's people that are probably one, most likely first, with their
    calibrated similarity; pairs declined ("not the same") never come back. A pair is
    suggested when its most alike faces reach the search's "same person" (85 %): measured
    on LFW, two halves of one person reach 100 %, two different people 69-77 %."""
    model, calibration, percent = _calibration(archive, model, None)
    similarity = Similarity(calibration)
    people, faces = await _people_and_faces(archive, owner, model)
    floor = cosine_threshold(calibration, percent)
    pairs = await asyncio.to_thread(merge_suggestions, people, faces, floor, limit)
    return [(pair, similarity.percent(pair.score)) for pair in pairs]


async def people_near(
    archive: PeopleArchive, owner: str, model: str, face_ids: list[str], exclude: str | None, limit: int,
) -> list[tuple[str, float]]:
    """The people nearest these faces (nearest first) with calibrated similarities: for the
    merge, move and assign pickers."""
    model, calibration, _ = _calibration(archive, model, None)
    similarity = Similarity(calibration)
    people, faces = await _people_and_faces(archive, owner, model)
    near = await asyncio.to_thread(nearest_people, people, faces, face_ids, limit, exclude)
    return [(person_id, similarity.percent(score)) for person_id, score in near]


async def review_candidates(archive: PeopleArchive, owner: str, model: str, limit: int) -> list[tuple[FaceCandidate, float]]:
    """The owner's faces in no person, each with its best candidate person, most similar first."""
    model, calibration, _ = _calibration(archive, model, None)
    similarity = Similarity(calibration)
    people, faces = await _people_and_faces(archive, owner, model)
    found = await asyncio.to_thread(unassigned_candidates, people, faces, limit)
    return [(c, similarity.percent(c.score)) for c in found]
