"""Calibration math and face value objects: pure Python, no models."""

from __future__ import annotations

import json
import math
import random

import pytest

from domain.faces import Box, DetectedFace, Embedding, FaceQuality, Landmarks
from domain.similarity import Calibration, best_threshold, cosine_to_l2, fit_calibration, fit_logistic


def _synthetic(n=400, seed=1):
    rng = random.Random(seed)
    scores, same = [], []
    for _ in range(n):
        y = rng.random() < 0.5
        scores.append(rng.gauss(0.6 if y else 0.1, 0.12))
        same.append(y)
    return scores, same


def test_best_threshold_separates_clean_data():
    t, acc = best_threshold([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [False, False, False, True, True, True], "cosine")
    assert acc == 1.0 and 0.3 < t < 0.7
    t, acc = best_threshold([1.3, 1.2, 1.1, 0.7, 0.6, 0.5], [False, False, False, True, True, True], "l2")
    assert acc == 1.0 and 0.7 < t < 1.1


def test_logistic_fit_recovers_direction_and_midpoint():
    scores, same = _synthetic()
    slope, intercept = fit_logistic(scores, same)
    assert slope > 0
    assert -intercept / slope == pytest.approx(0.35, abs=0.05)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_calibration_is_monotone_anchored_and_invertible(metric):
    scores, same = _synthetic()
    if metric == "l2":
        scores = [cosine_to_l2(min(1.0, s)) for s in scores]
    cal = fit_calibration("m", metric, scores, same)
    assert cal.percent(cal.threshold) == pytest.approx(85.0)
    grid = [i / 50 for i in range(-10, 60)]
    values = [cal.percent(s) for s in grid]
    pairs = list(zip(values, values[1:]))
    assert all(b >= a for a, b in pairs) if metric == "cosine" else all(b <= a for a, b in pairs)
    for p in (70.0, 85.0, 95.0):
        assert cal.percent(cal.raw_threshold(p)) == pytest.approx(p)
    assert cal.is_same(cal.raw_threshold(86)) and not cal.is_same(cal.raw_threshold(84))
    again = Calibration.from_json(cal.to_json())
    assert again == cal
    assert 0.85 < cal.train_accuracy <= 1.0


def test_calibration_rejects_a_slope_of_the_wrong_sign():
    with pytest.raises(ValueError):
        Calibration("m", "l2", slope=3.0, intercept=0.0, threshold=1.0)


def test_value_objects_round_trip_as_json():
    face = DetectedFace(
        Box(1.5, 2, 30, 40),
        Landmarks(((10, 12), (20, 12), (15, 18), (11, 25), (19, 25))),
        0.99,
        FaceQuality(0.99, 28.5, 120.0, ("small",)),
    )
    assert DetectedFace.from_dict(json.loads(json.dumps(face.to_dict()))) == face
    emb = Embedding((0.6, 0.8), "facenet512")
    assert emb.dim == 2
    assert Embedding.from_dict(json.loads(json.dumps(emb.to_dict()))) == emb
    assert Box(0, 0, 10, 10).iou(Box(5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert math.isclose(cosine_to_l2(0.5), 1.0)
