"""People use cases that need the whole system: clustering runs over the read models and
Milvus, recorded through the command handlers in commands/people.py."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from commands.clustering import DEFAULT_ALGORITHM
from commands.people import (
    ATTACH_SEARCH_LIMIT,
    FaceSet,
    cosine_threshold,
    peek_people,
    record_attachments,
    record_clustering,
)
from projections.people import embedded_faces
from projections.vectors import filter_expression


async def load_face_set(
    engine: Any, index: Any, owner: str, model: str, exclude: set[str] | None = None, chunk: int = 1000,
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


def _model_and_threshold(system: Any, model: str | None, percent: float | None) -> tuple[str, float]:
    model = model or system.settings.embedder
    percent = percent if percent is not None else system.settings.search_threshold_percent
    calibration = Path(system.settings.models_dir) / model / "calibration.json"  # gpu_workers.weights.calibration_path
    return model, cosine_threshold(calibration, percent)


async def run_clustering(
    system: Any, owner: str, model: str | None = None, algorithm: str | None = None,
    params: dict[str, Any] | None = None, percent: float | None = None, threshold: float | None = None,
) -> RunSummary:
    """A full run over the owner's faces embedded by `model` (default: the workers' model),
    recorded as ClusteringCompleted. `percent` is the calibrated similarity for "same person"
    (default: the search threshold, 85 %); `threshold` overrides it with a raw cosine."""
    started = time.perf_counter()
    if threshold is None:
        model, threshold = _model_and_threshold(system, model, percent)
    model = model or system.settings.embedder
    faces = await load_face_set(system.engine, system.vectors, owner, model)
    plan = await asyncio.to_thread(
        record_clustering, system.app, owner, model, faces, threshold, algorithm or DEFAULT_ALGORITHM, params,
    )
    return RunSummary(
        owner, model, plan.algorithm, plan.parameters, len(faces.ids), len(plan.people) + len(plan.attached),
        sum(len(v) for v in plan.attached.values()), len(plan.unassigned), round(time.perf_counter() - started, 3),
    )


async def attach_new_faces(
    system: Any, owner: str, model: str | None = None, percent: float | None = None, threshold: float | None = None,
) -> dict[str, list[str]]:
    """Attaches the owner's faces that arrived since the last run to existing people by
    their nearest neighbours in Milvus (no re-clustering); returns person id → new faces."""
    if threshold is None:
        model, threshold = _model_and_threshold(system, model, percent)
    model = model or system.settings.embedder
    people = await asyncio.to_thread(peek_people, system.app, owner, model)
    seen = (people.seen | set(people.person_of)) if people else set()
    faces = await load_face_set(system.engine, system.vectors, owner, model, exclude=seen)
    if not faces.ids or people is None:
        return {}
    metric = system.vectors.config.metric_for(model)
    expression = filter_expression(owner)

    def neighbours(face_id: str, vector: np.ndarray) -> list[tuple[str, float]]:
        hits = system.vectors.search(model, vector, ATTACH_SEARCH_LIMIT, expression)
        # Milvus answers cosine for COSINE and squared L2 otherwise (unit vectors: cos = 1 − d²/2).
        return [(h.face_id, h.distance if metric == "COSINE" else 1.0 - h.distance / 2.0) for h in hits]

    return await asyncio.to_thread(record_attachments, system.app, owner, model, faces, neighbours, threshold)
