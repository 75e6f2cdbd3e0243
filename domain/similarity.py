"""Calibrated similarity: one percentage that means the same in a search, whichever model answered.

A search compares the example with every face of the archive, so what a user needs to know of a
score is how likely a *stranger* is to reach it among that many faces. Each embedding model gets
a `Calibration` fitted on many pairs of different people (impostor pairs):
`false_match_rate(score)` is the share of stranger pairs scoring at least `score`. In an archive
of N faces the expected number of strangers at or above a score is N * false_match_rate, and the
percentage shown is a fixed, model-independent function of that number (`STRANGERS_AT`):

    70 %  about 1 stranger per search scores this high        (favours recall)
    85 %  about 1 stranger in 10 searches                      (a clean answer; the default)
    95 %  about 1 stranger in 1,000 searches                   (near certain)

piecewise linear in log10(strangers) between the anchors and beyond them. A threshold thus states
a false-match count, the same for every model, and the same raw score counts for less in a bigger
archive: what keeps a threshold that is clean among 1,000 faces clean among 100,000. A pair
(`verify`) is judged as a search among `MIN_ARCHIVE_FACES` faces.

The score is not the raw cosine but the cosine normalised by a cohort of faces of other people
(adaptive s-norm): `normalised_score` subtracts the mean, and divides by the spread, of each
face's `cohort_top` best cohort scores, averaged over both faces of the pair. A face that
resembles many people (a hub) then needs more to match; measured on LFW, it halves the false
matches at the same recall. Faces whose cohort statistics are unknown use the typical ones.

The false-match rate is the empirical tail of the impostor scores (knots every quarter decade)
and, beyond the rarest knot, an exponential tail fitted on the last two decades of knots: a
normal score distribution falls faster than that, so extrapolated rates err on the safe side.
Raw cosine and L2 distance (unit vectors: cos = 1 - d^2 / 2) stay available beside it.
Pure Python: no numpy, no I/O.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Metric = Literal["cosine", "l2"]
METRICS: tuple[str, ...] = ("cosine", "l2")
DEFAULT_ANCHOR_PERCENT = 85.0
# Expected strangers per search at or above a score, for the anchor percentages users see.
STRANGERS_AT: dict[float, float] = {70.0: 1.0, 85.0: 0.1, 95.0: 0.001}
# A pair, or a tiny archive, is judged as a search among this many faces.
MIN_ARCHIVE_FACES = 10
MAX_PERCENT = 99.9


def higher_is_more_similar(metric: str) -> bool:
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {METRICS}")
    return metric == "cosine"


def cosine_to_l2(cos: float) -> float:
    """L2 distance between two unit vectors with this cosine similarity."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * cos))


def l2_to_cosine(distance: float) -> float:
    """Cosine similarity of two unit vectors this L2 distance apart."""
    return 1.0 - distance * distance / 2.0


def to_cosine(raw: float, metric: str) -> float:
    return raw if higher_is_more_similar(metric) else l2_to_cosine(raw)


# The anchors as (percent, log10 strangers), rising in percent; the mapping is piecewise
# linear between them and continues the end segments beyond them.
_ANCHORS = sorted((p, math.log10(n)) for p, n in STRANGERS_AT.items())
_SEGMENTS = list(zip(_ANCHORS, _ANCHORS[1:]))


def percent_for_log_strangers(log_strangers: float) -> float:
    """The percentage users see for 10**log_strangers expected strangers per search (0 to 99.9)."""
    for (pa, la), (pb, lb) in _SEGMENTS:
        if log_strangers >= lb:
            break
    value = pa + (log_strangers - la) * (pb - pa) / (lb - la)
    return min(max(value, 0.0), MAX_PERCENT)


def log_strangers_for_percent(percent: float) -> float:
    """Inverse of `percent_for_log_strangers`."""
    for (pa, la), (pb, lb) in _SEGMENTS:
        if percent <= pb:
            break
    return la + (percent - pa) * (lb - la) / (pb - pa)


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


def normalised_score(cos: Any, query_mean: Any, query_std: Any, face_mean: Any, face_std: Any) -> Any:
    """The cohort-normalised score of a pair (symmetric s-norm) from its cosine and each face's
    cohort statistics (mean and spread of its best cohort scores); plain arithmetic, so numbers
    or arrays alike."""
    return ((cos - query_mean) / query_std + (cos - face_mean) / face_std) / 2.0


@dataclass(frozen=True)
class Calibration:
    """Monotone mapping from a model's normalised score to the percentage users see.

    `knots_score` rise and `knots_log10_fmr` fall with them: log10 of the share of impostor
    pairs scoring at least that. `tail_slope` (< 0) continues the last knot's line.
    `typical_mean` / `typical_std` are the median cohort statistics of a face.
    """

    model: str
    knots_score: tuple[float, ...]
    knots_log10_fmr: tuple[float, ...]
    tail_slope: float
    typical_mean: float
    typical_std: float
    cohort_top: int = 50
    impostor_pairs: int = 0
    genuine_pairs: int = 0
    fitted_on: str = ""
    anchor_percent: float = DEFAULT_ANCHOR_PERCENT

    def __post_init__(self) -> None:
        object.__setattr__(self, "knots_score", tuple(float(k) for k in self.knots_score))
        object.__setattr__(self, "knots_log10_fmr", tuple(float(k) for k in self.knots_log10_fmr))
        ks, fs = self.knots_score, self.knots_log10_fmr
        if len(ks) < 2 or len(ks) != len(fs):
            raise ValueError("A calibration needs at least two knots, as many rates as scores")
        if any(b <= a for a, b in zip(ks, ks[1:])) or any(b >= a for a, b in zip(fs, fs[1:])):
            raise ValueError("Calibration knots must rise in score and fall in false-match rate")
        if not self.tail_slope < 0:
            raise ValueError(f"Calibration tail slope {self.tail_slope} must be negative")
        if not self.typical_std > 0:
            raise ValueError("The typical cohort spread must be positive")

    # Score <-> false-match rate -------------------------------------------------------------

    def log10_false_match_rate(self, score: float) -> float:
        """log10 of the share of stranger pairs scoring at least `score`."""
        ks, fs = self.knots_score, self.knots_log10_fmr
        if score <= ks[0]:
            return fs[0]
        if score >= ks[-1]:
            return fs[-1] + self.tail_slope * (score - ks[-1])
        i = bisect_left(ks, score)
        w = (score - ks[i - 1]) / (ks[i] - ks[i - 1])
        return fs[i - 1] + w * (fs[i] - fs[i - 1])

    def false_match_rate(self, score: float) -> float:
        return 10 ** self.log10_false_match_rate(score)

    def _score_at_log10_fmr(self, target: float) -> float:
        ks, fs = self.knots_score, self.knots_log10_fmr
        if target >= fs[0]:
            return ks[0]
        if target <= fs[-1]:
            return ks[-1] + (target - fs[-1]) / self.tail_slope
        i = next(j for j in range(1, len(fs)) if fs[j] <= target)
        w = (fs[i - 1] - target) / (fs[i - 1] - fs[i])
        return ks[i - 1] + w * (ks[i] - ks[i - 1])

    # Score <-> percentage --------------------------------------------------------------------

    def strangers(self, score: float, archive_faces: int = MIN_ARCHIVE_FACES) -> float:
        """Expected faces of other people scoring at least `score` in an archive of that many faces."""
        return max(archive_faces, MIN_ARCHIVE_FACES) * self.false_match_rate(score)

    def percent(self, score: float, archive_faces: int = MIN_ARCHIVE_FACES) -> float:
        """Calibrated similarity in percent (0 to 99.9) of a normalised score, in an archive of that many faces."""
        return percent_for_log_strangers(math.log10(max(archive_faces, MIN_ARCHIVE_FACES)) + self.log10_false_match_rate(score))

    def score_threshold(self, percent: float, archive_faces: int = MIN_ARCHIVE_FACES) -> float:
        """The normalised score at which the percentage reaches `percent` (inverse of `percent`)."""
        if not 0 < percent < MAX_PERCENT:
            raise ValueError(f"percent must be strictly between 0 and {MAX_PERCENT}")
        return self._score_at_log10_fmr(log_strangers_for_percent(percent) - math.log10(max(archive_faces, MIN_ARCHIVE_FACES)))

    def is_same(self, score: float, percent: float | None = None, archive_faces: int = MIN_ARCHIVE_FACES) -> bool:
        """Whether a normalised score reaches the percentage (default: the anchor, 85 %)."""
        return self.percent(score, archive_faces) >= (self.anchor_percent if percent is None else percent)

    def typical_score(self, cos: float) -> float:
        """The normalised score of a pair of two typical faces with this cosine."""
        return (cos - self.typical_mean) / self.typical_std

    def typical_cosine(self, percent: float, archive_faces: int = MIN_ARCHIVE_FACES) -> float:
        """The cosine at which a pair of typical faces reaches `percent` (clustering uses it)."""
        return self.typical_mean + self.typical_std * self.score_threshold(percent, archive_faces)

    # Storage ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["knots_score"] = list(self.knots_score)
        data["knots_log10_fmr"] = list(self.knots_log10_fmr)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        if "knots_score" not in data:
            raise ValueError("an old-format calibration: run `facesearch models calibrate` again")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls.from_dict(json.loads(text))


def fit_calibration(
    model: str,
    impostor_tail: Sequence[tuple[float, float]],
    *,
    typical_mean: float,
    typical_std: float,
    cohort_top: int,
    impostor_pairs: int,
    genuine_pairs: int = 0,
    fitted_on: str = "",
    tail_decades: float = 2.0,
) -> Calibration:
    """A `Calibration` from the impostor score tail: (score, log10 share of impostor pairs
    scoring at least that) points, any order (for example every quarter decade, see
    gpu_workers.calibration). The exponential tail is the least-squares line through the
    points within `tail_decades` of the rarest one."""
    points = sorted({(float(c), float(f)) for c, f in impostor_tail})
    knots: list[tuple[float, float]] = []
    for c, f in points:  # strictly rising scores with strictly falling rates
        while knots and f >= knots[-1][1]:
            knots.pop()  # ties: keep the highest score of a rate
        if not knots or c > knots[-1][0]:
            knots.append((c, f))
    if len(knots) < 3:
        raise ValueError("Need at least three distinct points of the impostor tail to calibrate")
    rarest = knots[-1][1]
    tail = [(c, f) for c, f in knots if f <= rarest + tail_decades]
    if len(tail) < 2:
        tail = knots[-3:]
    mc = sum(c for c, _ in tail) / len(tail)
    mf = sum(f for _, f in tail) / len(tail)
    var = sum((c - mc) ** 2 for c, _ in tail)
    slope = min(sum((c - mc) * (f - mf) for c, f in tail) / var if var else -1.0, -1e-3)
    return Calibration(
        model=model,
        knots_score=tuple(c for c, _ in knots),
        knots_log10_fmr=tuple(f for _, f in knots),
        tail_slope=slope,
        typical_mean=typical_mean,
        typical_std=typical_std,
        cohort_top=cohort_top,
        impostor_pairs=impostor_pairs,
        genuine_pairs=genuine_pairs,
        fitted_on=fitted_on,
    )


# Query expansion ---------------------------------------------------------------------------
# A face the search finds near certain is the person too, so the archive is searched again from
# it: photos of the person that resemble that face more than the example are found as well
# (another angle, another year). Each extra search brings its own strangers, so the percentages
# of an expanded search are those of an archive as many times larger as there were searches:
# the thresholds keep their promise of strangers per search (measured: docs/benchmarks.md).
EXPAND_AT_PERCENT = 90.0  # about 1 stranger in 100 searches: a seed is almost never a stranger
EXPAND_MAX_SEEDS = 5


def expansion_seeds(percents: Sequence[tuple[str, float]], at: float = EXPAND_AT_PERCENT,
                    limit: int = EXPAND_MAX_SEEDS) -> list[str]:
    """The faces to search again from: the best `limit` of (face, percent) at or above `at`
    (percentages of the direct search, for the archive searched)."""
    ranked = sorted(percents, key=lambda fp: -fp[1])
    return [face for face, percent in ranked if percent >= at][:limit]


def expanded_archive_faces(archive_faces: int, seeds: int) -> int:
    """The archive size whose percentages an expanded search reports (one search per seed more)."""
    return max(archive_faces, MIN_ARCHIVE_FACES) * (1 + seeds)
