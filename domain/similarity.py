"""Calibrated similarity: one percentage that means the same whichever model answered.

Each embedding model gets a `Calibration`, fitted on labelled pairs (LFW View 1 training
pairs) from its raw scores (cosine similarity, or L2 distance between L2-normalised vectors):

1. a logistic fit P(same | raw) = sigmoid(slope * raw + intercept) (maximum likelihood), which
   gives the shape of the curve: how fast confidence grows with the raw score for this model;
2. the accuracy-optimal threshold on the same pairs, which is where every model's curve is
   pinned to `anchor_percent` (85 % by default):

       percent(raw) = 100 * sigmoid(slope * (raw - threshold) + logit(anchor_percent / 100))

So 85 % is, for every model, the score at which it best separates same from different people
on LFW, and each step away from it follows that model's own fitted odds. The mapping is
monotone (increasing in cosine, decreasing in L2 distance) and invertible (`raw_threshold`).
Pure Python: no numpy, no I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Sequence

Metric = Literal["cosine", "l2"]
METRICS: tuple[str, ...] = ("cosine", "l2")
DEFAULT_ANCHOR_PERCENT = 85.0


def higher_is_more_similar(metric: str) -> bool:
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {METRICS}")
    return metric == "cosine"


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def l2(a: Sequence[float], b: Sequence[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def cosine_to_l2(cos: float) -> float:
    """L2 distance between two unit vectors with this cosine similarity."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * cos))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def best_threshold(scores: Sequence[float], same: Sequence[bool], metric: str) -> tuple[float, float]:
    """The threshold with the highest accuracy on these pairs, and that accuracy.

    A pair is predicted "same" when score >= threshold (cosine) or score <= threshold (L2).
    The threshold is the midpoint between the two scores where the best split falls.
    """
    if not scores or len(scores) != len(same):
        raise ValueError("Need as many labels as scores, and at least one pair")
    sign = 1.0 if higher_is_more_similar(metric) else -1.0
    pairs = sorted(((sign * s, bool(y)) for s, y in zip(scores, same)), key=lambda p: p[0])
    n = len(pairs)
    n_same = sum(1 for _, y in pairs if y)
    # Threshold below everything: all predicted same.
    correct = n_same
    best_correct, best_i = correct, 0
    for i, (_, y) in enumerate(pairs):
        # Moving the threshold above pairs[i] predicts it "different".
        correct += -1 if y else 1
        if i + 1 < n and pairs[i + 1][0] == pairs[i][0]:
            continue
        if correct > best_correct:
            best_correct, best_i = correct, i + 1
    if best_i == 0:
        t = pairs[0][0] - 1e-6
    elif best_i == n:
        t = pairs[-1][0] + 1e-6
    else:
        t = (pairs[best_i - 1][0] + pairs[best_i][0]) / 2
    return sign * t, best_correct / n


def fit_logistic(scores: Sequence[float], same: Sequence[bool], l2_penalty: float = 1e-6) -> tuple[float, float]:
    """Maximum-likelihood (slope, intercept) of P(same) = sigmoid(slope * score + intercept)
    by Newton's method on standardised scores (a tiny ridge keeps separable data finite)."""
    n = len(scores)
    mean = sum(scores) / n
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / n) or 1.0
    xs = [(s - mean) / std for s in scores]
    ys = [1.0 if y else 0.0 for y in same]
    a, b = 0.0, 0.0
    for _ in range(100):
        ga = gb = 0.0
        haa = hab = hbb = 0.0
        for x, y in zip(xs, ys):
            p = _sigmoid(a * x + b)
            r = p - y
            w = p * (1 - p)
            ga += r * x
            gb += r
            haa += w * x * x
            hab += w * x
            hbb += w
        ga += l2_penalty * n * a
        haa += l2_penalty * n
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) < 1e-10 and abs(db) < 1e-10:
            break
    # Back to raw score units.
    return a / std, b - a * mean / std


@dataclass(frozen=True)
class Calibration:
    """Monotone mapping from a model's raw score to the percentage users see."""

    model: str
    metric: str
    slope: float
    intercept: float
    threshold: float
    anchor_percent: float = DEFAULT_ANCHOR_PERCENT
    train_accuracy: float = 0.0
    pairs: int = 0
    fitted_on: str = ""

    def __post_init__(self) -> None:
        higher = higher_is_more_similar(self.metric)
        if self.slope == 0 or (self.slope > 0) != higher:
            raise ValueError(f"Calibration slope {self.slope} has the wrong sign for metric {self.metric}")

    def percent(self, raw: float) -> float:
        """Calibrated similarity in percent (0..100) for a raw cosine or L2 score."""
        z = self.slope * (raw - self.threshold) + _logit(self.anchor_percent / 100)
        return 100.0 * _sigmoid(z)

    def raw_threshold(self, percent: float) -> float:
        """The raw score that maps to this percentage (inverse of `percent`)."""
        if not 0 < percent < 100:
            raise ValueError("percent must be strictly between 0 and 100")
        return self.threshold + (_logit(percent / 100) - _logit(self.anchor_percent / 100)) / self.slope

    def is_same(self, raw: float, percent: float | None = None) -> bool:
        """Whether a raw score reaches the percentage (default: the anchor, the LFW-optimal point)."""
        return self.percent(raw) >= (self.anchor_percent if percent is None else percent)

    def probability_same(self, raw: float) -> float:
        """The fitted P(same person | raw) on the calibration pairs (balanced classes)."""
        return _sigmoid(self.slope * raw + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls.from_dict(json.loads(text))


def fit_calibration(
    model: str,
    metric: str,
    scores: Iterable[float],
    same: Iterable[bool],
    anchor_percent: float = DEFAULT_ANCHOR_PERCENT,
    fitted_on: str = "",
) -> Calibration:
    """Fit a `Calibration` on labelled pairs' raw scores (see the module docstring)."""
    scores = [float(s) for s in scores]
    same = [bool(y) for y in same]
    threshold, accuracy = best_threshold(scores, same, metric)
    slope, intercept = fit_logistic(scores, same)
    return Calibration(
        model=model,
        metric=metric,
        slope=slope,
        intercept=intercept,
        threshold=threshold,
        anchor_percent=anchor_percent,
        train_accuracy=accuracy,
        pairs=len(scores),
        fitted_on=fitted_on,
    )
