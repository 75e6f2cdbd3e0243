"""Clustering quality on LFW identities: every image of a `path,identity` CSV embedded once
(largest face, cached under var/bench), then clustered by each algorithm through the same
planning code a `facesearch cluster` run uses (quality rules, one face per photo, leftovers
joining their nearest person).

    python -m benchmarks.clustering --clusters ../shared/data/lfw/clusters.csv --root ../shared/data/lfw

Prints a Markdown table and, last, one JSON line: per algorithm pairwise and BCubed
precision/recall/F1, NMI, clusters against identities, and seconds. Faces a run leaves
unassigned count as clusters of their own (as a user would see them: unsorted faces).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path

from benchmarks._common import machine, print_json, print_table
from commands.clustering import ALGORITHMS, DEFAULT_ALGORITHM


def _pairs(counts: Counter) -> int:
    return sum(c * (c - 1) // 2 for c in counts.values())


def scores(predicted: list[str], truth: list[str]) -> dict[str, float]:
    """Pairwise and BCubed precision, recall and F1, and NMI, of `predicted` against `truth`."""
    n = len(truth)
    joint, by_pred, by_true = Counter(zip(predicted, truth)), Counter(predicted), Counter(truth)
    together = _pairs(joint)
    precision = together / _pairs(by_pred) if _pairs(by_pred) else 1.0
    recall = together / _pairs(by_true) if _pairs(by_true) else 1.0
    b_precision = sum(joint[(p, t)] / by_pred[p] for p, t in zip(predicted, truth)) / n
    b_recall = sum(joint[(p, t)] / by_true[t] for p, t in zip(predicted, truth)) / n

    def entropy(counts: Counter) -> float:
        return -sum(c / n * math.log(c / n) for c in counts.values())

    mutual = sum(c / n * math.log(c * n / (by_pred[p] * by_true[t])) for (p, t), c in joint.items())
    h_pred, h_true = entropy(by_pred), entropy(by_true)
    nmi = mutual / ((h_pred + h_true) / 2) if h_pred + h_true else 1.0

    def f1(p: float, r: float) -> float:
        return 2 * p * r / (p + r) if p + r else 0.0

    return {
        "pairwise_precision": precision, "pairwise_recall": recall, "pairwise_f1": f1(precision, recall),
        "bcubed_precision": b_precision, "bcubed_recall": b_recall, "bcubed_f1": f1(b_precision, b_recall),
        "nmi": nmi, "clusters": len(by_pred), "identities": len(by_true),
    }


def main() -> None:
    import numpy as np

    from benchmarks._faces import cluster_embeddings
    from commands.people import FaceSet, cosine_threshold, plan_clustering
    from facesearch.settings import get_settings
    from gpu_workers.weights import calibration_path

    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=Path, default=settings.data_dir / "lfw" / "clusters.csv")
    parser.add_argument("--root", type=Path, default=settings.data_dir / "lfw")
    parser.add_argument("--model", default=settings.embedder)
    parser.add_argument("--algorithm", choices=sorted(ALGORITHMS), action="append",
                        help="Repeat to compare several (default: all, the default first)")
    parser.add_argument("--percent", type=float, default=settings.search_threshold_percent,
                        help="Calibrated similarity for 'same person' (default 85)")
    args = parser.parse_args()

    vectors, paths, identities = cluster_embeddings(args.clusters, args.root, args.model)
    threshold = cosine_threshold(calibration_path(settings.models_dir, args.model), args.percent)
    faces = FaceSet([f"{path}:0" for path in paths], vectors, np.zeros(len(paths), dtype=bool))
    names = args.algorithm or [DEFAULT_ALGORITHM] + sorted(set(ALGORITHMS) - {DEFAULT_ALGORITHM})

    results, rows = {}, []
    for name in names:
        started = time.perf_counter()
        plan = plan_clustering(None, faces, threshold, name)
        seconds = time.perf_counter() - started
        labels = [label or f"alone:{face}" for label, face in zip(plan.labels_for(faces.ids), faces.ids)]
        result = {**scores(labels, list(identities)), "seconds": round(seconds, 3), "parameters": plan.parameters,
                  "unassigned": len(plan.unassigned)}
        results[name] = result
        rows.append([
            name, result["pairwise_precision"], result["pairwise_recall"], result["pairwise_f1"],
            result["bcubed_precision"], result["bcubed_recall"], result["bcubed_f1"], result["nmi"],
            f"{result['clusters']} / {result['identities']}", result["unassigned"], f"{seconds:.2f}",
        ])
    print(f"{len(paths)} faces of {len(set(identities))} identities, model {args.model}, "
          f"threshold cosine {threshold:.4f} ({args.percent:g} %), {machine()}")
    print_table(
        ["algorithm", "pair P", "pair R", "pair F1", "BCubed P", "BCubed R", "BCubed F1", "NMI",
         "clusters / identities", "unassigned", "seconds"],
        rows,
    )
    print_json({"benchmark": "clustering", "model": args.model, "faces": len(paths), "threshold": threshold,
                "machine": machine(), "default": DEFAULT_ALGORITHM, "algorithms": results})


if __name__ == "__main__":
    main()
