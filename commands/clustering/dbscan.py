"""DBSCAN with cosine distance. Its radius comes from the calibrated threshold, scaled:
at the threshold itself (cosine 0.40 for FaceNet512) one chain of look-alikes joins
nearly everyone (pairwise F1 0.03 on LFW), so the default radius is half that distance."""

from __future__ import annotations

import numpy as np

from commands.clustering.base import Clustering, ClusteringError, relabel


def cluster(
    vectors: np.ndarray, threshold: float, *, eps: float | None = None, eps_scale: float = 0.5, min_samples: int = 2,
) -> Clustering:
    from sklearn.cluster import DBSCAN

    radius = eps if eps is not None else eps_scale * (1.0 - threshold)
    if not 0 < radius < 2:
        raise ClusteringError("dbscan needs 0 < eps < 2 (cosine distance)")
    params = {"eps": round(float(radius), 6), "min_samples": min_samples, "metric": "cosine"}
    if len(vectors) == 0:
        return Clustering(np.zeros(0, dtype=np.int64), params)
    labels = DBSCAN(eps=radius, min_samples=min_samples, metric="cosine", algorithm="brute").fit_predict(vectors)
    return Clustering(relabel(np.asarray(labels)), params)
