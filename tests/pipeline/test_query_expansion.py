"""Query expansion in the product's search (facesearch/services/search.py), on a real Milvus Lite index:
a photo of the person that does not resemble the example enough is found through a near-certain
match, scored for an archive as many times larger as there were searches; with expansion off it
is not found, and strangers are never found either way.

Vectors are synthetic so that each face's relation to the example is known exactly; the
calibration is a plain exponential tail (log10 false-match rate = -10 * score) without a cohort,
so a normalised score is the cosine."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import numpy as np
import pytest

from domain.similarity import Calibration
from facesearch.services.search import FaceSearcher
from facesearch.settings import Settings
from facesearch.system import index_config
from gpu_workers.calibration import ScoreCalibration
from projections.vectors import FaceVectorIndex, face_id, filter_expression

DIM = 64
MODEL = "facenet512"


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x)).astype(np.float32)


def axis(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


@pytest.fixture
def archive(tmp_path: Path):
    """The example e0; a near-certain match (cosine 0.7 with it); another photo of the person,
    cosine 0.15 with the example but 0.6 with the near-certain match; 30 strangers."""
    settings = Settings(var_dir=tmp_path / "var")
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), index_config(settings))
    example = axis(0)
    faces = {
        "seed": unit(0.7 * axis(0) + 0.714 * axis(1)),
        "other-angle": unit(0.15 * axis(0) + 0.7 * axis(1) + 0.698 * axis(2)),
    }
    rng = np.random.default_rng(11)
    for i in range(30):  # strangers: unrelated directions, away from the person's three axes
        faces[f"stranger-{i}"] = unit(np.concatenate([np.zeros(3), rng.standard_normal(DIM - 3)]))
    photo = {name: str(uuid.uuid5(uuid.NAMESPACE_URL, name)) for name in faces}
    index.upsert(MODEL, [
        {"id": face_id(photo[name], 0), "photo_id": photo[name], "owner": "ann", "source": "local", "import_id": "",
         "imported_at": 0, "vector": vector.tolist()}
        for name, vector in faces.items()
    ])
    try:
        yield settings, index, example, {v: k for k, v in photo.items()}
    finally:
        index.close()


async def found(settings: Settings, index: FaceVectorIndex, example: np.ndarray, expand_seeds: int) -> dict[str, tuple[float, int]]:
    """{photo name: (percent, archive size scored for)} of what the search keeps at 85 %."""
    searcher = FaceSearcher(settings.model_copy(update={"search_expand_seeds": expand_seeds}), None, index)  # type: ignore[arg-type]
    calibration = ScoreCalibration(Calibration(MODEL, (0.0, 0.1), (0.0, -1.0), -10.0, 0.0, 1.0), None)
    expression = filter_expression("ann")
    archive_faces = await asyncio.to_thread(index.count, MODEL, expression)
    hits = await asyncio.to_thread(index.search, MODEL, example, 50, expression)
    scored, _, stored = await searcher._score(MODEL, calibration, example, hits, archive_faces, 85.0)
    scored, among = await searcher._expand(MODEL, calibration, example, scored, stored, expression, 50, archive_faces)
    return {s.hit.photo_id: (s.percent, among) for s in scored if s.percent >= 85.0}


async def test_a_photo_unlike_the_example_is_found_through_a_near_certain_match(archive):
    settings, index, example, name_of = archive
    direct = {name_of[p]: v for p, v in (await found(settings, index, example, 0)).items()}
    assert set(direct) == {"seed"}  # the other angle is too far from the example alone
    expanded = {name_of[p]: v for p, v in (await found(settings, index, example, 5)).items()}
    assert set(expanded) == {"seed", "other-angle"}  # found through the seed; no stranger
    # Scored for two searches' worth of strangers (the example's and the seed's) among 32 faces.
    assert all(among == 2 * 32 for _, among in expanded.values())
    assert all(among == 32 for _, among in direct.values())
