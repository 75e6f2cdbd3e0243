"""Search by example at the thresholds users choose, measured on LFW people the calibration
never saw (the clusters people: `facesearch models calibrate` leaves them out), with the real
models, Milvus Lite and the product's scoring (benchmarks/search_quality.py).

The archive is what the issue measures on: the clusters photos among the 4,768 other LFW
photos as distractors (6,052 faces), searched exactly in memory (Milvus's part is tested in
tests/pipeline); docs/benchmarks.md quotes the same benchmark through Milvus Lite (HNSW)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.search_quality import ExactIndex, build_archive, evaluate, index_faces
from gpu_workers.calibration import load_joint_calibration, load_score_calibration

MODELS = ["facenet512", "arcface"]
# On a fresh machine the fixture embeds 6,052 LFW photos with each model first (then cached).
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def quality(settings, data_dir, models_dir):
    clusters = data_dir / "lfw" / "clusters.csv"
    calibrations = {m: load_score_calibration(Path(settings.models_dir) / m) for m in MODELS}
    assert all(calibrations.values()), "calibrations missing: `facesearch models calibrate`"
    joint = load_joint_calibration(settings.models_dir, MODELS)
    assert joint is not None, "cross-check calibration missing: `facesearch models calibrate`"
    archives = {m: build_archive(m, clusters, data_dir / "lfw", data_dir / "lfw") for m in MODELS}
    index = ExactIndex()
    for model, archive in archives.items():
        index_faces(index, model, archive)
    return {
        "expanded": evaluate(MODELS, archives, calibrations, joint, index, 50),  # as the product searches
        "direct": evaluate(MODELS, archives, calibrations, joint, index, 50, expand_seeds=0),
    }


def test_the_default_threshold_gives_a_clean_answer(quality):
    """Issue 11's targets at 85 %, on people the calibration never saw."""
    expanded = quality["expanded"]
    for model in (*MODELS, "cross-check"):
        at85 = expanded[model]["85"]
        # "A clean answer": about one stranger in ten searches; measured within a factor of three.
        assert at85["false_matches_per_query"] <= 0.3, (model, at85)
    assert expanded["facenet512"]["85"]["precision"] >= 0.95 and expanded["facenet512"]["85"]["recall"] >= 0.80
    for model in ("arcface", "cross-check"):
        assert expanded[model]["85"]["precision"] >= 0.99 and expanded[model]["85"]["recall"] >= 0.95, expanded[model]


def test_70_favours_recall_and_95_is_near_certain(quality):
    for model in MODELS:
        q = quality["expanded"][model]
        assert q["70"]["recall"] > q["85"]["recall"] > q["95"]["recall"]
        assert q["95"]["precision"] >= 0.99, (model, q["95"])
        assert q["recall_at_10"] >= 0.98, (model, q["recall_at_10"])
    assert quality["expanded"]["cross-check"]["95"]["precision"] >= 0.99


def test_query_expansion_finds_more_of_the_person_without_more_strangers(quality):
    for model in MODELS:
        direct, expanded = quality["direct"][model]["85"], quality["expanded"][model]["85"]
        assert expanded["recall"] > direct["recall"], (model, direct, expanded)
        # The extra searches' strangers are paid for by scoring for a larger archive.
        assert expanded["false_matches_per_query"] <= max(0.15, 1.25 * direct["false_matches_per_query"]), (model, direct, expanded)
