"""Embedders, conversion parity and calibrated verification on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_workers.calibration import ScoreCalibration
from gpu_workers.evaluation import central_face, read_pairs

EMBEDDERS = ["facenet512", "arcface"]


def _embedding(analyzer, image):
    faces = analyzer.analyze([image])[0]
    k = central_face(image, [f for f, _ in faces])
    assert k is not None, "no face found"
    return faces[k][1]


def _first_pairs(data_dir):
    """The first same-person and the first different-people pair of LFW View 1 test."""
    pairs = read_pairs(data_dir / "lfw" / "pairs_dev_test.csv")
    same = next(p for p in pairs if p.same)
    different = next(p for p in pairs if not p.same)
    return same, different


def test_conversion_parity_on_real_faces(models_dir, photo):
    from gpu_workers.parity import face_crops, facenet_parity

    crops = face_crops(models_dir, [photo("photos/insightface/t1.jpg"), photo("photos/astronaut.png")])
    assert len(crops) == 7
    assert facenet_parity(models_dir / "facenet512" / "graph_final.pb", models_dir / "facenet512" / "facenet512.onnx", crops) >= 0.999


@pytest.mark.parametrize("name", EMBEDDERS)
def test_embeddings_are_unit_vectors_and_batch_invariant(analyzers, photo, name):
    analyzer = analyzers[name]
    image = photo("photos/insightface/t1.jpg")
    faces = analyzer.analyze([image])[0]
    assert len(faces) == 6
    vectors = np.stack([v for _, v in faces])
    assert vectors.shape == (6, analyzer.embedder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    crops = np.stack([analyzer.embedder.align(image, f) for f, _ in faces])
    one_by_one = np.concatenate([analyzer.embedder.embed(c[None]) for c in crops])
    assert np.allclose(one_by_one, vectors, atol=1e-4)
    # Six different people: no two faces of t1 look like the same person.
    sims = vectors @ vectors.T
    assert sims[~np.eye(6, dtype=bool)].max() < 0.6
    assert analyzer.timings.faces == 6 and analyzer.timings.embed > 0


@pytest.mark.parametrize("name", EMBEDDERS)
def test_same_person_above_and_different_people_below_calibrated_threshold(analyzers, data_dir, name):
    from gpu_workers.evaluation import read_rgb

    analyzer = analyzers[name]
    calibration = analyzer.embedder.calibration()
    assert isinstance(calibration, ScoreCalibration), "calibration missing: `facesearch models calibrate`"
    assert calibration.cohort is not None and calibration.cohort.shape[1] == analyzer.embedder.dim
    root = data_dir / "lfw"
    for pair in _first_pairs(data_dir):
        a = _embedding(analyzer, read_rgb(root / pair.path_a))
        b = _embedding(analyzer, read_rgb(root / pair.path_b))
        score, percent = calibration.pair_percent(a, b)
        assert (percent >= 85.0) == pair.same, (pair, float(a @ b), score, percent)
