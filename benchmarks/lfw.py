"""Face verification on LFW-format pairs.

    python -m benchmarks.lfw --pairs CSV --root DIR [--detector NAME] [--embedder NAME]

CSV rows `path_a,path_b,same[,fold]`, paths relative to --root. With folds: the 10-fold
protocol (threshold chosen on nine folds, tested on the tenth). Without: the verdict
`facesearch verify` gives, the pair's cohort-normalised score against the calibrated 85 %
(`facesearch models calibrate`; the threshold column is then in normalised-score units). Images where no face was
found make their pairs count as errors; they are never skipped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks._common import default_models_dir, machine, parse_options, print_json, print_table
from facesearch.settings import get_settings
from gpu_workers.analyzer import FaceAnalyzer
from gpu_workers.evaluation import read_pairs, score_pairs, ten_fold, verify_at


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--detector", default="retinaface")
    parser.add_argument("--embedder", default="facenet512")
    parser.add_argument("--metric", choices=["cosine", "l2"], default=None, help="default: the embedder's")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=get_settings().embed_flip,
                        help="flip test-time augmentation (default: the embed_flip setting)")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--detector-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--embedder-option", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    embedder_options = parse_options(args.embedder_option) | {"flip": args.flip}
    analyzer = FaceAnalyzer(
        args.detector, args.embedder, args.models_dir or default_models_dir(), threads=args.threads, use_gpu=False,
        detector_options=parse_options(args.detector_option), embedder_options=embedder_options,
    )
    metric = args.metric or analyzer.embedder.default_metric
    pairs = read_pairs(args.pairs)
    folds = [p.fold for p in pairs]
    calibration = None
    if not all(f is not None for f in folds):
        calibration = analyzer.embedder.calibration()
        if calibration is None:
            raise SystemExit(f"{args.embedder} has no calibration: run `facesearch models calibrate` first")
    started = time.perf_counter()
    scores = score_pairs(analyzer, pairs, args.root, calibration)
    seconds = time.perf_counter() - started
    raw, labels = scores.raw(metric), scores.labels

    fold_accuracies: list[float] = []
    if calibration is None:
        protocol = "10-fold"
        result, fold_accuracies = ten_fold(raw, labels, np.array(folds), metric)
    else:
        # What `facesearch verify` answers: the pair's normalised score against the calibrated 85 %.
        protocol = f"calibrated 85 % for a pair ({calibration.calibration.fitted_on})"
        assert scores.normalised is not None
        result = verify_at(scores.normalised, labels, calibration.calibration.score_threshold(85.0), "cosine")

    ok = ~np.isnan(scores.cosine)
    auc = _auc(scores.cosine[ok], labels[ok])
    print(f"LFW verification: {args.pairs} ({len(pairs)} pairs), {args.detector} + {args.embedder}, "
          f"metric {metric}, flip={args.flip}, {protocol}; {machine()}")
    print_table(
        ["detector", "embedder", "metric", "accuracy", "precision", "recall", "F1", "threshold", "ROC AUC", "no-face images", "failed pairs"],
        [[args.detector, args.embedder, metric, result.accuracy, result.precision, result.recall, result.f1,
          result.threshold, auc, len(scores.no_face), result.failed_pairs]],
    )
    if scores.no_face:
        print("no face found in: " + ", ".join(scores.no_face[:20]) + (" ..." if len(scores.no_face) > 20 else ""))
    out = {
        "benchmark": "lfw", "pairs_file": str(args.pairs), "pairs": len(pairs), "detector": args.detector,
        "embedder": args.embedder, "metric": metric, "flip": args.flip, "protocol": protocol,
        "accuracy": result.accuracy, "precision": result.precision, "recall": result.recall, "f1": result.f1,
        "threshold": result.threshold, "roc_auc": auc, "no_face_images": len(scores.no_face),
        "failed_pairs": result.failed_pairs, "fold_accuracies": fold_accuracies, "seconds": round(seconds, 1),
        "machine": machine(),
    }
    print_json(out)
    return out


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of cosine similarity (rank statistic)."""
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels.sum()
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg)) if pos and neg else float("nan")


if __name__ == "__main__":
    main()
