"""K-Means on the unit sphere: `k` given, or chosen by the best cosine silhouette over a
range of candidates. Every face joins a cluster (there is no "none"), which is why it
trails the density-based algorithms on photos with many one-off faces."""

from __future__ import annotations

import numpy as np

from commands.clustering.base import Clustering, ClusteringError, relabel


def cluster(
    vectors: np.ndarray, threshold: float, *, k: int | None = None, k_min: int | None = None, k_max: int | None = None,
    candidates: int = 12, silhouette_sample: int = 5000, seed: int = 0,
) -> Clustering:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(vectors)
    if k is not None and not 1 <= k <= max(n, 1):
        raise ClusteringError(f"kmeans needs 1 ≤ k ≤ {n} (the number of faces)")
    if n < 3:
        return Clustering(np.arange(n, dtype=np.int64), {"k": n, "chosen_by": "faces"})

    def fit(clusters: int) -> np.ndarray:
        return KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit_predict(vectors)

    if k is not None:
        return Clustering(relabel(fit(k)), {"k": k, "chosen_by": "given", "seed": seed})
    low = max(2, k_min or n // 100)
    high = min(n - 1, k_max or max(low + 1, n // 4))
    grid = sorted({int(round(v)) for v in np.geomspace(low, high, candidates)})
    scores = {}
    best_labels, best_k = None, grid[0]
    for clusters in grid:
        labels = fit(clusters)
        scores[clusters] = float(silhouette_score(
            vectors, labels, metric="cosine", sample_size=min(n, silhouette_sample), random_state=seed,
        ))
        if best_labels is None or scores[clusters] > scores[best_k]:
            best_labels, best_k = labels, clusters
    assert best_labels is not None  # the grid holds at least one k (2 <= low <= high)
    params = {"k": best_k, "chosen_by": "silhouette", "k_min": low, "k_max": high, "seed": seed,
              "silhouette": round(scores[best_k], 4)}
    return Clustering(relabel(best_labels), params)
