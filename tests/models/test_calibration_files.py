"""A model's calibration is read from its files once per version of them: every search asks
for it (it was read, cohort included, on each search), and a refit is seen at once."""

from __future__ import annotations

import numpy as np

from domain.similarity import Calibration
from gpu_workers.calibration import ScoreCalibration, load_score_calibration, save_score_calibration


def calibration(tail_slope: float, cohort: np.ndarray | None) -> ScoreCalibration:
    return ScoreCalibration(
        Calibration("facenet512", (1.0, 3.0, 5.0), (-1.0, -3.0, -5.0), tail_slope, 0.1, 0.05), cohort)


def test_read_once_and_read_again_after_a_refit(tmp_path, monkeypatch):
    cohort = np.eye(4, dtype=np.float32)
    save_score_calibration(tmp_path, calibration(-1.0, cohort))
    first = load_score_calibration(tmp_path)
    assert first is not None and first.calibration.tail_slope == -1.0

    loads = []
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(a) or cohort)
    assert load_score_calibration(tmp_path) is first and loads == []  # from memory
    monkeypatch.undo()
    assert first.cohort is not None and not first.cohort.flags.writeable  # shared: nobody may change it

    save_score_calibration(tmp_path, calibration(-2.5, cohort[:2]))  # `models calibrate` refits
    again = load_score_calibration(tmp_path)
    assert again is not first and again.calibration.tail_slope == -2.5 and again.cohort.shape == (2, 4)


def test_missing_is_none(tmp_path):
    assert load_score_calibration(tmp_path) is None
