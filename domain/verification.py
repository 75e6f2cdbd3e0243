"""Face verification by direct distance between two embeddings (what DeepFace's `verify`
does): the raw score in the model's metric, its calibrated similarity, and the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.similarity import Calibration, cosine, l2


@dataclass(frozen=True)
class Verdict:
    model: str
    metric: str  # "cosine" or "l2"
    distance: float  # cosine distance (1 - cosine) or L2 distance: lower is more alike
    raw: float  # the calibrated score's input: cosine similarity, or L2 distance
    similarity: float  # calibrated, percent
    threshold: float  # percent the verdict was taken at
    same: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def raw_score(a: Sequence[float], b: Sequence[float], metric: str) -> float:
    return cosine(a, b) if metric == "cosine" else l2(a, b)


def verify(a: Sequence[float], b: Sequence[float], calibration: Calibration, threshold_percent: float | None = None) -> Verdict:
    """Same person or not, at `threshold_percent` (default: the calibration's anchor, 85 %)."""
    threshold = calibration.anchor_percent if threshold_percent is None else threshold_percent
    raw = raw_score(a, b, calibration.metric)
    similarity = calibration.percent(raw)
    distance = 1.0 - raw if calibration.metric == "cosine" else raw
    return Verdict(calibration.model, calibration.metric, distance, raw, similarity, threshold, similarity >= threshold)
