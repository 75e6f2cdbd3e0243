"""Clustering at scale on synthetic vectors: how long a full `facesearch cluster` run's
planning takes for N faces (default 100,000) on this machine, stage by stage.

    python -m benchmarks.clustering_scale --faces 100000

The vectors are 512-d unit vectors around random identity centres (noise chosen so that
faces of one identity have cosine ≈ 0.65 with each other, as FaceNet512 faces of one LFW
identity do), identity sizes from 1 to 60 (many one-off faces), 5 % flagged low quality.
Prints a table and, last, one JSON line with the timings and the quality against the truth.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks._common import machine, print_json, print_table


def synthetic(faces: int, dim: int = 512, noise: float = 0.032, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < faces:
        sizes.append(int(min(60, rng.zipf(1.6))))
    sizes[-1] -= sum(sizes) - faces
    identity = np.repeat(np.arange(len(sizes)), sizes)
    centres = rng.standard_normal((len(sizes), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[identity] + rng.standard_normal((faces, dim)).astype(np.float32) * noise
    return vectors, identity


def main() -> None:
    from benchmarks.clustering import scores
    from commands.clustering import DEFAULT_ALGORITHM
    from commands.people import FaceSet, plan_clustering

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--algorithm", default=DEFAULT_ALGORITHM)
    parser.add_argument("--threshold", type=float, default=0.397, help="Cosine (FaceNet512's calibrated 85 %%)")
    args = parser.parse_args()

    t = time.perf_counter()
    vectors, identity = synthetic(args.faces)
    low = np.random.default_rng(1).random(args.faces) < 0.05
    faces = FaceSet([f"p{i}:0" for i in range(args.faces)], vectors, low)
    made = time.perf_counter() - t
    started = time.perf_counter()
    plan = plan_clustering(None, faces, args.threshold, args.algorithm)
    total = time.perf_counter() - started
    labels = [label or f"alone:{f}" for label, f in zip(plan.labels_for(faces.ids), faces.ids)]
    quality = scores(labels, [str(i) for i in identity])
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"{args.faces} synthetic faces, {len(set(identity.tolist()))} identities, {args.algorithm}, "
          f"{machine()}, BLAS threads {threads}; vectors made in {made:.1f} s")
    print_table(
        ["stage", "seconds"],
        [[stage.removesuffix("_s"), round(seconds, 2)] for stage, seconds in plan.stages_s.items()] + [["total", round(total, 2)]],
    )
    print_table(["pair F1", "BCubed F1", "NMI", "people", "unassigned"],
                [[quality["pairwise_f1"], quality["bcubed_f1"], quality["nmi"], len(plan.people), len(plan.unassigned)]])
    print_json({"benchmark": "clustering_scale", "faces": args.faces, "algorithm": args.algorithm, "seconds": round(total, 2),
                "stages_s": {k: round(v, 2) for k, v in plan.stages_s.items()}, "machine": machine(),
                **{k: quality[k] for k in ("pairwise_f1", "bcubed_f1", "nmi", "clusters", "identities")}})


if __name__ == "__main__":
    main()
