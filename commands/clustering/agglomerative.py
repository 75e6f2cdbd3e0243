"""Agglomerative clustering, complete linkage, cut at the calibrated threshold: every two
faces of a person are at least as similar as the threshold says "same person". It needs
all pairwise distances (n² memory), so it refuses more than `max_faces` faces."""

from __future__ import annotations

import numpy as np

from commands.clustering.base import Clustering, ClusteringError, relabel


def cluster(
    vectors: np.ndarray, threshold: float, *, distance: float | None = None, linkage: str = "complete",
    max_faces: int = 20_000,
) -> Clustering:
    from sklearn.cluster import AgglomerativeClustering

    cut = distance if distance is not None else 1.0 - threshold
    params = {"distance": round(float(cut), 6), "linkage": linkage, "metric": "cosine"}
    n = len(vectors)
    if n > max_faces:
        raise ClusteringError(f"agglomerative clustering holds all {n}² distances; use hdbscan above {max_faces} faces")
    if n < 2:
        return Clustering(np.arange(n, dtype=np.int64), params)
    labels = AgglomerativeClustering(
        n_clusters=None, distance_threshold=cut, metric="cosine", linkage=linkage,
    ).fit_predict(vectors)
    return Clustering(relabel(np.asarray(labels)), params)
