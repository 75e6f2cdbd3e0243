"""Real face embeddings of LFW identities (clusters.csv) for the search benchmarks, computed
once per model with the workers' analyzer and cached under var_dir/bench."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from facesearch.settings import get_settings


def read_clusters(csv_path: Path) -> list[tuple[str, str]]:
    with open(csv_path, newline="") as f:
        return [(row["path"], row["identity"]) for row in csv.DictReader(f)]


def cluster_embeddings(csv_path: Path, root: Path, model: str, limit: int | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """(vectors, paths, identities) of the largest face of each image that has one."""
    from facesearch.search import ordered_faces
    from gpu_workers.evaluation import read_rgb
    from gpu_workers.worker import make_analyzer

    settings = get_settings()
    rows = read_clusters(csv_path)[:limit]
    cache = settings.var_dir / "bench" / f"{csv_path.stem}-{model}-{len(rows)}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return data["vectors"], list(data["paths"]), list(data["identities"])
    analyzer = make_analyzer(settings.model_copy(update={"worker_use_gpu": False}), model)
    vectors, paths, identities = [], [], []
    for start in range(0, len(rows), 16):
        chunk = rows[start : start + 16]
        images = [read_rgb(root / path) for path, _ in chunk]
        for (path, identity), faces in zip(chunk, analyzer.analyze(images)):
            if faces:
                vectors.append(ordered_faces(faces)[0][1])
                paths.append(path)
                identities.append(identity)
    out = np.stack(vectors).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=out, paths=np.array(paths), identities=np.array(identities))
    return out, paths, identities
