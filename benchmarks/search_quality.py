"""Search quality on LFW identities: index every image of clusters.csv (one face each, the
largest), search with each one, and measure

- recall@10: of the query's other images of the same person (at most 10), the share found in
  the top 10 (the query's own image excluded);
- precision at the threshold: of the matches at or above the calibrated threshold (85 % by
  default), the share that are the same person; and the share of same-person images above
  the threshold (recall at the threshold).

    python -m benchmarks.search_quality --clusters ../shared/data/lfw/clusters.csv --root ../shared/data/lfw
        [--model facenet512] [--threshold 85] [--index HNSW]

Runs on Milvus Lite with the same index code and calibration the product uses. Prints a
table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks._common import machine, print_json, print_table
from benchmarks._faces import cluster_embeddings
from facesearch.settings import get_settings
from projections.vectors import FaceVectorIndex, IndexConfig


def main(argv: list[str] | None = None) -> dict:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=Path, default=settings.data_dir / "lfw" / "clusters.csv")
    parser.add_argument("--root", type=Path, default=settings.data_dir / "lfw")
    parser.add_argument("--model", default=settings.embedder)
    parser.add_argument("--threshold", type=float, default=settings.search_threshold_percent)
    parser.add_argument("--index", default="HNSW")
    args = parser.parse_args(argv)

    from gpu_workers.worker import make_analyzer

    vectors, paths, identities = cluster_embeddings(args.clusters, args.root, args.model)
    config = IndexConfig.from_settings(settings.model_copy(update={"milvus_index_type": args.index}))
    metric = "l2" if config.metric_for(args.model) == "L2" else "cosine"
    calibration = make_analyzer(settings.model_copy(update={"worker_use_gpu": False}), args.model).embedder.calibration(metric)
    work = Path(tempfile.mkdtemp(prefix="fs-quality-"))
    index = FaceVectorIndex(str(work / "milvus.db"), config)
    try:
        rows = [
            {"id": f"{i}:0", "photo_id": str(i), "owner": "bench", "source": "local", "import_id": "", "imported_at": 0,
             "vector": v.tolist()}
            for i, v in enumerate(vectors)
        ]
        for s in range(0, len(rows), 2000):
            index.upsert(args.model, rows[s : s + 2000])
        per_identity = Counter(identities)
        recalls, kept_same, kept_total, same_total, same_above = [], 0, 0, 0, 0
        for i, v in enumerate(vectors):
            hits = [h for h in index.search(args.model, v, 50, 'owner == "bench"') if int(h.photo_id) != i]
            others = per_identity[identities[i]] - 1
            top = hits[:10]
            same_top = sum(identities[int(h.photo_id)] == identities[i] for h in top)
            recalls.append(same_top / min(10, others) if others else 1.0)
            above = [h for h in hits if calibration.percent(h.raw(config.metric_for(args.model))) >= args.threshold]
            kept_total += len(above)
            kept_same += sum(identities[int(h.photo_id)] == identities[i] for h in above)
            same_total += min(others, 49)
            same_above += sum(identities[int(h.photo_id)] == identities[i] for h in above)
    finally:
        index.close()
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "benchmark": "search_quality", "model": args.model, "metric": metric, "index": index.index_type,
        "images": len(vectors), "identities": len(per_identity), "threshold": args.threshold,
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "precision_at_threshold": round(kept_same / kept_total, 4) if kept_total else None,
        "recall_at_threshold": round(same_above / same_total, 4) if same_total else None,
        "matches_at_threshold": kept_total, "machine": machine(),
    }
    print(f"{machine()}; {len(vectors)} LFW images of {len(per_identity)} people indexed in Milvus Lite ({index.index_type})")
    print_table(
        ["model", "metric", "recall@10", f"precision ≥ {args.threshold:g} %", f"recall ≥ {args.threshold:g} %", "matches"],
        [[args.model, metric, result["recall_at_10"], result["precision_at_threshold"], result["recall_at_threshold"], kept_total]],
    )
    print_json(result)
    return result


if __name__ == "__main__":
    main()
