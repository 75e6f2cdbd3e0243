"""Calibration math and face value objects: pure Python (and numpy for the cohort), no models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from domain.faces import Box, DetectedFace, Embedding, FaceQuality, Landmarks
from domain.similarity import (
    MIN_ARCHIVE_FACES,
    STRANGERS_AT,
    Calibration,
    best_threshold,
    cosine_to_l2,
    fit_calibration,
    l2_to_cosine,
    log_strangers_for_percent,
    percent_for_log_strangers,
)
from gpu_workers.calibration import VETO_PERCENT, cross_check_accepts, fit_score_calibration, impostor_tail


def _exponential_tail_calibration() -> Calibration:
    """Impostor scores with P(score >= s) = 10 ** -s for s >= 0: one decade per unit."""
    points = [(s / 4, -s / 4) for s in range(0, 21)]
    return fit_calibration("m", points, typical_mean=0.2, typical_std=0.05, cohort_top=50, impostor_pairs=10**5)


def test_best_threshold_separates_clean_data():
    t, acc = best_threshold([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [False, False, False, True, True, True], "cosine")
    assert acc == 1.0 and 0.3 < t < 0.7
    t, acc = best_threshold([1.3, 1.2, 1.1, 0.7, 0.6, 0.5], [False, False, False, True, True, True], "l2")
    assert acc == 1.0 and 0.7 < t < 1.1


def test_the_percent_scale_puts_the_anchors_where_documented():
    # 70 %: one stranger per search; 85 %: one in ten searches; 95 %: one in a thousand.
    assert STRANGERS_AT == {70.0: 1.0, 85.0: 0.1, 95.0: 0.001}
    for percent, strangers in STRANGERS_AT.items():
        assert percent_for_log_strangers(math.log10(strangers)) == pytest.approx(percent)
        assert 10 ** log_strangers_for_percent(percent) == pytest.approx(strangers)
    grid = [x / 10 for x in range(-60, 20)]
    values = [percent_for_log_strangers(x) for x in grid]
    assert all(b <= a for a, b in zip(values, values[1:]))  # more strangers: a lower percentage
    assert 0.0 <= min(values) and max(values) <= 99.9


def test_a_threshold_states_the_expected_strangers_for_the_archive_size():
    cal = _exponential_tail_calibration()
    assert cal.tail_slope == pytest.approx(-1.0)
    for faces in (MIN_ARCHIVE_FACES, 1_000, 100_000):
        for percent, strangers in STRANGERS_AT.items():
            score = cal.score_threshold(percent, faces)
            assert cal.strangers(score, faces) == pytest.approx(strangers, rel=1e-6)
            assert cal.percent(score, faces) == pytest.approx(percent)
    # The same score counts for less in a bigger archive: one decade more faces, one unit more score.
    assert cal.score_threshold(85.0, 100_000) - cal.score_threshold(85.0, 10_000) == pytest.approx(1.0)
    assert cal.percent(4.0, 1_000) > cal.percent(4.0, 100_000)
    # Beyond the rarest knot the exponential tail goes on: still a clean inverse.
    assert cal.score_threshold(95.0, 10**9) > cal.knots_score[-1]
    assert cal.percent(cal.score_threshold(95.0, 10**9), 10**9) == pytest.approx(95.0)


def test_pairs_are_judged_as_a_search_among_a_few_faces():
    cal = _exponential_tail_calibration()
    assert cal.percent(3.0, 1) == cal.percent(3.0, MIN_ARCHIVE_FACES)
    # A pair at 85 %: a false-match rate of 1 %.
    assert cal.false_match_rate(cal.score_threshold(85.0)) == pytest.approx(0.01)
    assert cal.is_same(cal.score_threshold(86.0)) and not cal.is_same(cal.score_threshold(84.0))
    assert cal.typical_cosine(85.0) == pytest.approx(0.2 + 0.05 * cal.score_threshold(85.0))


def test_calibration_round_trips_and_refuses_bad_or_old_data():
    cal = _exponential_tail_calibration()
    assert Calibration.from_json(cal.to_json()) == cal
    with pytest.raises(ValueError, match="old-format"):
        Calibration.from_dict({"model": "m", "metric": "cosine", "slope": 3.0, "intercept": 0.0, "threshold": 0.4})
    with pytest.raises(ValueError):
        Calibration("m", (0.0, 1.0), (0.0, 0.5), -1.0, 0.2, 0.05)  # a rate that rises with the score
    with pytest.raises(ValueError):
        Calibration("m", (0.0, 1.0), (0.0, -1.0), 0.5, 0.2, 0.05)  # a tail that rises


def test_impostor_tail_reads_the_empirical_rates():
    scores = np.arange(100_000)[::-1] / 100_000  # uniform: P(score >= s) = 1 - s
    points = impostor_tail(scores, step_decades=1.0, min_pairs=10)
    assert [round(f) for _, f in points] == [0, -1, -2, -3, -4]
    for s, f in points:
        assert np.mean(scores >= s) == pytest.approx(10**f, rel=1e-3)


def test_cohort_normalisation_penalises_a_face_that_resembles_everyone():
    rng = np.random.default_rng(3)
    dim = 64

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    people = [f"p{i // 2}" for i in range(400)]
    centres = unit(rng.normal(size=(200, dim)))
    vectors = unit(np.repeat(centres, 2, axis=0) * 3 + rng.normal(size=(400, dim)))
    fitted = fit_score_calibration("m", vectors, people, cohort_top=20)
    assert fitted.cohort is not None and 150 <= len(fitted.cohort) <= 250  # half the people
    query = unit(rng.normal(size=dim))
    ordinary = unit(rng.normal(size=dim))
    hub = unit(fitted.cohort.astype(np.float64).mean(axis=0))  # close to every cohort face
    cos = 0.3
    ordinary_score, hub_score = fitted.scores(query, np.stack([ordinary, hub]), np.array([cos, cos]))
    assert hub_score < ordinary_score  # the same cosine says less of a face like everyone's
    # The fitted tail describes the impostor pairs it was fitted on.
    assert fitted.calibration.impostor_pairs > 10_000 and fitted.calibration.genuine_pairs > 0


def test_the_cross_check_needs_enough_combined_evidence_and_no_veto():
    assert cross_check_accepts(90.0, [88.0, 75.0], 85.0)
    assert not cross_check_accepts(84.0, [99.0, 99.0], 85.0)  # not enough together
    assert not cross_check_accepts(99.0, [99.0, VETO_PERCENT - 1], 85.0)  # one model finds a stranger
    assert not cross_check_accepts(99.0, [99.0, None], 85.0)  # one model has no vector of the face


def test_l2_and_cosine_convert_exactly_for_unit_vectors():
    for cos in (-0.5, 0.0, 0.3, 0.99):
        assert l2_to_cosine(cosine_to_l2(cos)) == pytest.approx(cos)
    assert math.isclose(cosine_to_l2(0.5), 1.0)


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


def test_a_faces_own_copy_in_the_cohort_does_not_count_as_a_stranger():
    """Found by benchmarks.search_quality: archive photos that are also in the cohort (LFW)
    had their statistics inflated by their own copy (cosine 1), so strangers scored low."""
    import numpy as np

    from domain.similarity import Calibration
    from gpu_workers.calibration import ScoreCalibration

    rng = np.random.default_rng(3)
    cohort = rng.standard_normal((200, 64)).astype(np.float32)
    cohort /= np.linalg.norm(cohort, axis=1, keepdims=True)
    calibration = Calibration("m", (0.0, 1.0), (0.0, -1.0), -1.0, 0.0, 1.0, cohort_top=20)
    face = cohort[:1]
    with_copy = ScoreCalibration(calibration, cohort).stats(face)
    without = ScoreCalibration(calibration, cohort[1:]).stats(face)
    assert np.allclose(with_copy, without)


def test_query_expansion_seeds_are_the_near_certain_matches_and_cost_their_strangers():
    from domain.similarity import EXPAND_AT_PERCENT, expanded_archive_faces, expansion_seeds

    found = [("a", 97.0), ("b", EXPAND_AT_PERCENT), ("c", EXPAND_AT_PERCENT - 0.1), ("d", 99.0)]
    assert expansion_seeds(found) == ["d", "a", "b"]  # best first, none below the bar
    assert expansion_seeds(found, limit=1) == ["d"]
    assert expansion_seeds(found, limit=0) == []
    # Each seed is one search more: its strangers count as those of an archive that much larger.
    assert expanded_archive_faces(6_000, 0) == 6_000 and expanded_archive_faces(6_000, 3) == 24_000
    assert expanded_archive_faces(1, 1) == 2 * MIN_ARCHIVE_FACES


def test_a_face_unlike_the_example_is_found_through_a_near_certain_match():
    """Three photos of one person: the example, a match close to it (the seed), and one close
    to the seed only (another angle). The expanded score of the third is its score with the
    seed, a seed never finds itself, and a stranger gains nothing."""
    from gpu_workers.calibration import ScoreCalibration

    rng = np.random.default_rng(5)
    cohort = rng.standard_normal((300, 64)).astype(np.float32)
    cohort /= np.linalg.norm(cohort, axis=1, keepdims=True)
    calibration = ScoreCalibration(Calibration("m", (0.0, 1.0), (0.0, -1.0), -1.0, 0.0, 1.0, cohort_top=20), cohort)

    def unit(x):
        return (x / np.linalg.norm(x)).astype(np.float32)

    a, b = unit(rng.standard_normal(64)), unit(rng.standard_normal(64))
    example, seed, other_angle = unit(a), unit(a + b), unit(0.3 * a + b)
    stranger = unit(rng.standard_normal(64))
    faces = np.stack([seed, other_angle, stranger])
    direct = calibration.scores(example, faces)
    best, via = calibration.expanded_scores(example, faces, [0])
    through_seed = calibration.scores(seed, faces)
    assert best[1] == pytest.approx(through_seed[1]) and best[1] > direct[1] and via[1] == 0
    assert best[0] == pytest.approx(direct[0]) and via[0] == -1  # the seed's own pass leaves it out
    assert best[2] == pytest.approx(max(direct[2], through_seed[2]))
    assert np.array_equal(calibration.expanded_scores(example, faces, [])[0], direct)


def test_a_calibration_fitted_for_the_other_flip_setting_is_stale(tmp_path):
    """`models pull` (the install) refits a calibration whose embeddings were made with the
    mirrored pass on when the settings now turn it off, and the other way round."""
    from facesearch.cli.models import _calibration_current

    def calibration_file(fitted_on: str):
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps({"cosine": {"knots_score": [0.0], "fitted_on": fitted_on}}))
        return path

    with_flip = calibration_file("4722 faces of 3027 people, detector retinaface, flip=True")
    without = calibration_file("4722 faces of 3027 people, detector retinaface, flip=False")
    older = calibration_file("4722 faces of 3027 people")  # before fitted_on said: fitted with flip
    assert _calibration_current(with_flip, True) and not _calibration_current(with_flip, False)
    assert _calibration_current(without, False) and not _calibration_current(without, True)
    assert _calibration_current(older, True) and not _calibration_current(older, False)
    assert not _calibration_current(tmp_path / "missing.json", True)
