"""A model's score calibration with its cohort: fitting, storage, and scoring of candidates.

`ScoreCalibration` pairs the pure mapping of `domain.similarity.Calibration` with the cohort
it was fitted with: unit vectors of faces of people that the archive is not expected to hold
(LFW people, never the clusters people the benchmarks measure on). Each face's cohort
statistics are the mean and spread of its `cohort_top` best cosines with the cohort.

Fitting (`fit_score_calibration`) splits the calibration people in two halves: one half is the
cohort, every pair of different people of the other half gives an impostor score; so no
impostor pair scored is itself in the cohort, as in a real search.

Stored beside the weights: `<models_dir>/<model>/calibration.json` and `cohort.npy`.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from domain.similarity import MIN_ARCHIVE_FACES, Calibration, fit_calibration, normalised_score

COHORT_FILE = "cohort.npy"
CALIBRATION_FILE = "calibration.json"
COHORT_TOP = 50
# A cohort face this close to a scored face is that very photo (a copy, a re-encode), not a
# stranger: left out of that face's statistics, or its own copy would inflate them.
SAME_PHOTO_COSINE = 0.95


@dataclass(frozen=True)
class ScoreCalibration:
    calibration: Calibration
    cohort: np.ndarray | None  # (faces, dim) float32 unit vectors; None: typical statistics only

    @property
    def model(self) -> str:
        return self.calibration.model

    def stats(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(means, spreads) of each vector's best cohort scores."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        c = self.calibration
        if self.cohort is None or len(vectors) == 0:
            return np.full(len(vectors), c.typical_mean), np.full(len(vectors), c.typical_std)
        top = min(c.cohort_top, len(self.cohort))
        scores = vectors @ self.cohort.T
        scores[scores >= SAME_PHOTO_COSINE] = -1.0
        best = -np.partition(-scores, top - 1, axis=1)[:, :top]
        return best.mean(axis=1), np.maximum(best.std(axis=1), 1e-6)

    def scores(self, query: np.ndarray, faces: np.ndarray, *cosines: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Normalised scores of `query` (one vector) against each of `faces` (rows), from their
        cosines; given one or more cosine arrays instead, the scores of each (cohort
        statistics computed once)."""
        faces = np.atleast_2d(np.asarray(faces, dtype=np.float32))
        if len(faces) == 0:
            return np.zeros(0) if len(cosines) < 2 else tuple(np.zeros(0) for _ in cosines)
        (q_mean,), (q_std,) = self.stats(query)
        f_mean, f_std = self.stats(faces)
        arrays = cosines or (faces @ np.asarray(query, dtype=np.float32),)
        out = tuple(normalised_score(np.asarray(c, dtype=np.float64), q_mean, q_std, f_mean, f_std) for c in arrays)
        return out[0] if len(out) == 1 else out

    def expanded_scores(self, query: np.ndarray, faces: np.ndarray, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Each face's best normalised score over the search from `query` and from each seed
        (a row of `faces`; a seed's match with itself left out), and the seed row it came
        through (-1: the query itself). See domain.similarity's query expansion."""
        faces = np.atleast_2d(np.asarray(faces, dtype=np.float32))
        if len(faces) == 0:
            return np.zeros(0), np.zeros(0, dtype=int)
        (q_mean,), (q_std,) = self.stats(query)
        f_mean, f_std = self.stats(faces)  # once: a seed's statistics are its row's
        best = normalised_score((faces @ np.asarray(query, dtype=np.float32)).astype(np.float64), q_mean, q_std, f_mean, f_std)
        via = np.full(len(faces), -1)
        for seed in seeds:
            cosines = (faces @ faces[seed]).astype(np.float64)
            through = normalised_score(cosines, f_mean[seed], f_std[seed], f_mean, f_std)
            through[seed] = -np.inf
            better = through > best
            best[better], via[better] = through[better], seed
        return best, via

    def percents(self, scores: np.ndarray, archive_faces: int = MIN_ARCHIVE_FACES) -> np.ndarray:
        return np.array([self.calibration.percent(float(s), archive_faces) for s in scores])

    def pair_percent(self, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """(normalised score, percent) of two faces judged as a pair."""
        score = float(self.scores(a, np.asarray(b)[None, :])[0])
        return score, self.calibration.percent(score)


def load_score_calibration(model_dir: Path) -> ScoreCalibration | None:
    """The stored calibration of a model (None when missing); an old format raises ValueError.
    Read once per version of its files: every search asks for it."""
    path = Path(model_dir) / CALIBRATION_FILE
    try:
        stamp = _stamp(path)
    except FileNotFoundError:
        return None
    cohort_path = Path(model_dir) / COHORT_FILE
    cohort_stamp = _stamp(cohort_path) if cohort_path.is_file() else None
    return _read_score_calibration(path, cohort_path, stamp, cohort_stamp)


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_mtime_ns, status.st_size


@functools.lru_cache(maxsize=16)
def _read_score_calibration(
    path: Path, cohort_path: Path, stamp: tuple[int, int], cohort_stamp: tuple[int, int] | None,
) -> ScoreCalibration:
    calibration = Calibration.from_dict(json.loads(path.read_text())["cosine"])
    cohort = np.load(cohort_path).astype(np.float32) if cohort_stamp is not None else None
    if cohort is not None:
        cohort.setflags(write=False)  # shared by every caller
    return ScoreCalibration(calibration, cohort)


def save_score_calibration(model_dir: Path, calibration: ScoreCalibration) -> None:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if calibration.cohort is not None:
        np.save(model_dir / COHORT_FILE, calibration.cohort.astype(np.float16))
    (model_dir / CALIBRATION_FILE).write_text(json.dumps({"cosine": calibration.calibration.to_dict()}, indent=2, sort_keys=True))


def impostor_tail(scores: np.ndarray, step_decades: float = 0.25, min_pairs: int = 20) -> list[tuple[float, float]]:
    """(score, log10 share of impostor scores at least that) every `step_decades`, down to the
    rarest level that still holds `min_pairs` pairs."""
    ordered = np.sort(np.asarray(scores))[::-1]
    n = len(ordered)
    points, level = [], 0.0
    while n and 10**level * n >= min_pairs:
        k = max(int(round(10**level * n)), 1)
        points.append((float(ordered[k - 1]), math.log10(k / n)))
        level -= step_decades
    return points


def fit_score_calibration(
    model: str, vectors: np.ndarray, identities: list[str], *, cohort_top: int = COHORT_TOP, seed: int = 0,
    fitted_on: str = "",
) -> ScoreCalibration:
    """Fit on faces of labelled people: half the people become the cohort, every pair of
    different people of the other half an impostor score (see the module docstring)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    people = np.asarray(identities)
    names = np.unique(people)
    np.random.default_rng(seed).shuffle(names)
    cohort_people = set(names[: len(names) // 2])
    in_cohort = np.array([p in cohort_people for p in people])
    cohort, fit, fit_people = vectors[in_cohort], vectors[~in_cohort], people[~in_cohort]
    provisional = ScoreCalibration(
        Calibration(model, (0.0, 1.0), (0.0, -1.0), -1.0, 0.0, 1.0, cohort_top=cohort_top), cohort
    )
    means, stds = provisional.stats(fit)
    cos = fit @ fit.T
    z = normalised_score(cos, means[:, None], stds[:, None], means[None, :], stds[None, :])
    upper = np.triu(np.ones_like(cos, dtype=bool), 1)
    same = fit_people[:, None] == fit_people[None, :]
    impostors = z[upper & ~same]
    calibration = fit_calibration(
        model, impostor_tail(impostors), typical_mean=float(np.median(means)), typical_std=float(np.median(stds)),
        cohort_top=cohort_top, impostor_pairs=int(impostors.size), genuine_pairs=int((upper & same).sum()),
        fitted_on=fitted_on or f"{len(fit)} faces of {len(set(fit_people))} people; cohort {len(cohort)} faces",
    )
    return ScoreCalibration(calibration, cohort)



# The cross-check: the models' evidence combined --------------------------------------------

# A model "finds a stranger" when, judged as a pair, the two faces stay below this percentage:
# the cross-check then refuses the match whatever the other models say.
VETO_PERCENT = 70.0


def joint_name(models: list[str]) -> str:
    return "+".join(sorted(models))  # a sum: the order of the models does not matter


def joint_dir(models_dir: Path, models: list[str]) -> Path:
    return Path(models_dir) / "cross-check" / joint_name(models)


def fit_joint_calibration(parts: list[ScoreCalibration], vectors: list[np.ndarray], identities: list[str]) -> Calibration:
    """The calibration of the sum of the models' normalised scores, fitted on the same split of
    the same people as each model's own (`fit_score_calibration` with the same seed): row i of
    every `vectors` array is the same face."""
    people = np.asarray(identities)
    names = np.unique(people)
    np.random.default_rng(0).shuffle(names)
    fit = ~np.isin(people, names[: len(names) // 2])
    total = None
    for part, v in zip(parts, vectors):
        v = np.asarray(v, dtype=np.float32)[fit]
        means, stds = part.stats(v)
        cos = v @ v.T
        z = normalised_score(cos, means[:, None], stds[:, None], means[None, :], stds[None, :])
        total = z if total is None else total + z
    assert total is not None
    fit_people = people[fit]
    upper = np.triu(np.ones_like(total, dtype=bool), 1)
    impostors = total[upper & (fit_people[:, None] != fit_people[None, :])]
    return fit_calibration(
        joint_name([p.model for p in parts]), impostor_tail(impostors), typical_mean=0.0, typical_std=1.0,
        cohort_top=parts[0].calibration.cohort_top, impostor_pairs=int(impostors.size),
        fitted_on=f"the sum of {', '.join(p.model for p in parts)} normalised scores; {int(fit.sum())} faces",
    )


def save_joint_calibration(models_dir: Path, calibration: Calibration) -> None:
    directory = joint_dir(models_dir, calibration.model.split("+"))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CALIBRATION_FILE).write_text(json.dumps({"cosine": calibration.to_dict()}, indent=2, sort_keys=True))


def load_joint_calibration(models_dir: Path, models: list[str]) -> Calibration | None:
    path = joint_dir(models_dir, models) / CALIBRATION_FILE
    return Calibration.from_dict(json.loads(path.read_text())["cosine"]) if path.is_file() else None


def cross_check_accepts(joint_percent: float, pair_percents: list[float | None], threshold: float) -> bool:
    """The cross-check's verdict: the combined evidence reaches the threshold and no model,
    judging the two faces as a pair, finds a stranger (a model without a vector of the face
    cannot vouch for it)."""
    return joint_percent >= threshold and all(p is not None and p >= VETO_PERCENT for p in pair_percents)
