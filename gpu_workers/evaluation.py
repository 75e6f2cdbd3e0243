"""Verification on labelled image pairs (LFW format) and calibration fitting: shared by
`facesearch models calibrate`, the LFW benchmark and the tests."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from domain.faces import DetectedFace
from domain.similarity import METRICS, Calibration, best_threshold, fit_calibration
from gpu_workers.analyzer import FaceAnalyzer
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


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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


def score_pairs(analyzer: FaceAnalyzer, pairs: list[Pair], root: Path) -> PairScores:
    paths = sorted({p.path_a for p in pairs} | {p.path_b for p in pairs})
    vectors = embed_images(analyzer, root, paths)
    cos = np.array([
        float(np.dot(vectors[p.path_a], vectors[p.path_b]))
        if vectors[p.path_a] is not None and vectors[p.path_b] is not None else np.nan
        for p in pairs
    ])
    return PairScores(pairs, cos, [p for p in paths if vectors[p] is None])


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


def fit_and_store_calibration(
    analyzer: FaceAnalyzer, pairs_csv: Path, root: Path, models_dir: Path
) -> dict[str, Calibration]:
    """Fit cosine and L2 calibrations for the analyzer's embedder on these pairs and write
    them to `models_dir/<embedder>/calibration.json`. Pairs without a face are left out of
    the fit (they carry no score)."""
    scores = score_pairs(analyzer, read_pairs(pairs_csv), root)
    ok = ~np.isnan(scores.cosine)
    source = f"{Path(pairs_csv).name} ({int(ok.sum())} pairs, detector {analyzer.detector_name}, flip={analyzer.embedder.flip})"
    calibrations = {
        metric: fit_calibration(analyzer.embedder.name, metric, scores.raw(metric)[ok].tolist(), scores.labels[ok].tolist(), fitted_on=source)
        for metric in METRICS
    }
    path = calibration_path(models_dir, analyzer.embedder.name)
    path.write_text(json.dumps({m: c.to_dict() for m, c in calibrations.items()}, indent=2, sort_keys=True))
    return calibrations
