"""Face verification of a pair (what DeepFace's `verify` does): the raw score in the model's
metric, the cohort-normalised score, its calibrated similarity, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass

from domain.similarity import Calibration, cosine_to_l2


@dataclass(frozen=True)
class Verdict:
    model: str
    metric: str  # "cosine" or "l2"
    distance: float  # cosine distance (1 - cosine) or L2 distance: lower is more alike
    raw: float  # cosine similarity, or L2 distance, as `metric` says
    score: float  # cohort-normalised score, the calibrated similarity's input
    similarity: float  # calibrated, percent
    threshold: float  # percent the verdict was taken at
    same: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def verdict(
    calibration: Calibration, cos: float, score: float, metric: str, threshold_percent: float | None = None,
    archive_faces: int | None = None,
) -> Verdict:
    """Same person or not, at `threshold_percent` (default: the calibration's anchor, 85 %),
    judged as a pair, or among `archive_faces` faces when given."""
    threshold = calibration.anchor_percent if threshold_percent is None else threshold_percent
    similarity = calibration.percent(score) if archive_faces is None else calibration.percent(score, archive_faces)
    raw = cos if metric == "cosine" else cosine_to_l2(cos)
    distance = 1.0 - cos if metric == "cosine" else raw
    return Verdict(calibration.model, metric, distance, raw, score, similarity, threshold, similarity >= threshold)
