"""Verification on labelled image pairs (LFW format) and calibration fitting: shared by
`facesearch models calibrate`, the LFW benchmark and the tests."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from commands.images import decode_rgb
from domain.faces import DetectedFace
from domain.similarity import Calibration, best_threshold
from gpu_workers.analyzer import FaceAnalyzer
from gpu_workers.calibration import (
    ScoreCalibration,
    fit_joint_calibration,
    fit_score_calibration,
    save_joint_calibration,
    save_score_calibration,
)
from gpu_workers.weights import calibration_path


@dataclass(frozen=True)
class Pair:
    path_a: str
    path_b: str
    same: bool
    fold: int | None = None


def read_pairs(csv_path: Path) -> list[Pair]:
    """Rows `path_a,path_b,same[,fold]` (header required)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        Pair(r["path_a"], r["path_b"], str(r["same"]).strip() in ("1", "true", "True"),
             int(r["fold"]) if r.get("fold") not in (None, "") else None)
        for r in rows
    ]


# Evaluation images are this project's own data, not what users send: the pixel limit, a guard
# against hostile uploads, does not apply (Pillow's own decompression-bomb check still does).
EVALUATION_MAX_PIXELS = 2**40


def read_rgb(path: Path) -> np.ndarray:
    """An evaluation image, decoded as the worker decodes photos (so calibrations fitted on
    these pixels hold for the archive's)."""
    return decode_rgb(Path(path).read_bytes(), EVALUATION_MAX_PIXELS)


def central_face(image: np.ndarray, faces: list[DetectedFace]) -> int | None:
    """Index of the face LFW is about: the one nearest the image centre, bigger faces first
    when several are equally near."""
    if not faces:
        return None
    h, w = image.shape[:2]

    def cost(face: DetectedFace) -> float:
        cx, cy = (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2
        return np.hypot(cx - w / 2, cy - h / 2) / max(face.box.size, 1.0)

    return min(range(len(faces)), key=lambda i: cost(faces[i]))


@dataclass
class PairScores:
    """Raw cosine per pair (NaN where an image had no face) and the images without a face."""

    pairs: list[Pair]
    cosine: np.ndarray
    no_face: list[str] = field(default_factory=list)
    normalised: np.ndarray | None = None  # cohort-normalised scores, when scored with a calibration

    def raw(self, metric: str) -> np.ndarray:
        return self.cosine if metric == "cosine" else np.sqrt(np.maximum(0.0, 2.0 - 2.0 * self.cosine))

    @property
    def labels(self) -> np.ndarray:
        return np.array([p.same for p in self.pairs])


def embed_images(analyzer: FaceAnalyzer, root: Path, paths: list[str], batch: int = 8) -> dict[str, np.ndarray | None]:
    """One embedding per image (its central face), None where no face was found."""
    out: dict[str, np.ndarray | None] = {}
    for i in range(0, len(paths), batch):
        chunk = paths[i : i + batch]
        images = [read_rgb(Path(root) / p) for p in chunk]
        results = analyzer.analyze(images)
        for path, image, faces in zip(chunk, images, results):
            k = central_face(image, [f for f, _ in faces])
            out[path] = None if k is None else faces[k][1]
    return out


def score_pairs(analyzer: FaceAnalyzer, pairs: list[Pair], root: Path, calibration: ScoreCalibration | None = None) -> PairScores:
    """Raw cosine per pair; with a calibration also its cohort-normalised score (`normalised`)."""
    paths = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
    vectors = embed_images(analyzer, root, paths)
    found = {path: v for path, v in vectors.items() if v is not None}
    both = [p.path_a in found and p.path_b in found for p in pairs]
    cos = np.array([float(np.dot(found[p.path_a], found[p.path_b])) if ok else np.nan for p, ok in zip(pairs, both)])
    normalised = None
    if calibration is not None:
        normalised = np.array([
            calibration.pair_percent(found[p.path_a], found[p.path_b])[0] if ok else np.nan for p, ok in zip(pairs, both)
        ])
    return PairScores(pairs, cos, [p for p in paths if p not in found], normalised)


@dataclass(frozen=True)
class Verification:
    accuracy: float
    precision: float
    recall: float
    f1: float
    threshold: float
    pairs: int
    failed_pairs: int  # pairs with an image without a face: counted as errors


def verify_at(raw: np.ndarray, labels: np.ndarray, threshold: float, metric: str) -> Verification:
    """Metrics at a threshold; a pair without a score (no face) is always wrong."""
    ok = ~np.isnan(raw)
    pred = np.zeros(len(raw), dtype=bool)
    pred[ok] = raw[ok] >= threshold if metric == "cosine" else raw[ok] <= threshold
    correct = (pred == labels) & ok
    tp = int(np.sum(pred & labels & ok))
    fp = int(np.sum(pred & ~labels & ok))
    fn = int(np.sum(labels)) - tp  # a same pair without a face is a miss
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Verification(float(np.mean(correct)), precision, recall, f1, float(threshold), len(raw), int(np.sum(~ok)))


def ten_fold(raw: np.ndarray, labels: np.ndarray, folds: np.ndarray, metric: str) -> tuple[Verification, list[float]]:
    """The LFW protocol: threshold chosen on nine folds, applied to the tenth; pooled metrics
    over all test folds, the mean threshold, and each fold's accuracy."""
    accs, thresholds = [], []
    pooled_raw, pooled_lab, pooled_thr = [], [], []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        ok = train & ~np.isnan(raw)
        t, _ = best_threshold(raw[ok].tolist(), labels[ok].tolist(), metric)
        v = verify_at(raw[test], labels[test], t, metric)
        accs.append(v.accuracy)
        thresholds.append(t)
        pooled_raw.append(raw[test])
        pooled_lab.append(labels[test])
        pooled_thr.append(np.full(int(test.sum()), t))
    r, lab, thr = map(np.concatenate, (pooled_raw, pooled_lab, pooled_thr))
    # Per-pair thresholds: shift each pair so one comparison at 0 applies its fold's threshold.
    shifted = r - thr
    v = verify_at(shifted, lab, 0.0, metric)
    return Verification(float(np.mean(accs)), v.precision, v.recall, v.f1, float(np.mean(thresholds)), v.pairs, v.failed_pairs), accs


def calibration_images(pairs_csvs: list[Path], held_out_csv: Path | None) -> list[str]:
    """The images a calibration is fitted on: every image of the pairs files, less the people of
    `held_out_csv` (a `path,identity` file such as LFW clusters.csv) so they stay unseen."""
    paths = sorted({path for csv_path in pairs_csvs for p in read_pairs(csv_path) for path in (p.path_a, p.path_b)})
    held_out: set[str] = set()
    if held_out_csv is not None and Path(held_out_csv).is_file():
        with open(held_out_csv, newline="") as f:
            held_out = {row["identity"] for row in csv.DictReader(f)}
    return [p for p in paths if Path(p).parent.name not in held_out]


@dataclass(frozen=True)
class CalibrationFaces:
    """The central face of each calibration image that has one, with its person."""

    paths: list[str]
    vectors: np.ndarray
    people: list[str]
    source: str


def calibration_faces(analyzer: FaceAnalyzer, pairs_csvs: list[Path], root: Path, held_out_csv: Path | None = None) -> CalibrationFaces:
    """Embeds the images of `pairs_csvs` less the people of `held_out_csv` (each image's
    central face, labelled by its folder)."""
    paths = calibration_images(pairs_csvs, held_out_csv)
    vectors = embed_images(analyzer, root, paths)
    found = {path: v for path, v in vectors.items() if v is not None}
    kept = [p for p in paths if p in found]
    people = [Path(p).parent.name for p in kept]
    source = (
        f"{' + '.join(Path(p).name for p in pairs_csvs)} images less the people of "
        f"{Path(held_out_csv).name if held_out_csv else 'none'}: {len(kept)} faces of {len(set(people))} people, "
        f"detector {analyzer.detector_name}, flip={analyzer.embedder.flip}"
    )
    return CalibrationFaces(kept, np.stack([found[p] for p in kept]), people, source)


def fit_and_store_calibration(analyzer: FaceAnalyzer, faces: CalibrationFaces, models_dir: Path) -> ScoreCalibration:
    """Fit the embedder's calibration on these faces and store it beside the weights (see
    gpu_workers.calibration)."""
    calibration = fit_score_calibration(analyzer.embedder.name, faces.vectors, faces.people, fitted_on=faces.source)
    save_score_calibration(calibration_path(models_dir, analyzer.embedder.name).parent, calibration)
    return calibration


def fit_and_store_joint_calibration(
    calibrations: list[ScoreCalibration], faces: list[CalibrationFaces], models_dir: Path
) -> Calibration:
    """The cross-check's calibration of these models, on the faces every one of them embedded."""
    common = sorted(set.intersection(*(set(f.paths) for f in faces)))
    rows = [{p: i for i, p in enumerate(f.paths)} for f in faces]
    vectors = [f.vectors[[r[p] for p in common]] for f, r in zip(faces, rows)]
    joint = fit_joint_calibration(calibrations, vectors, [Path(p).parent.name for p in common])
    save_joint_calibration(models_dir, joint)
    return joint
