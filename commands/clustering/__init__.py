"""Clustering algorithms for grouping faces into people: one module each, one registry entry.

Every algorithm is a function `cluster(vectors, threshold, **params) -> Clustering`:
`vectors` are L2-normalised embeddings (one row per face), `threshold` is the model's
calibrated cosine similarity for "same person" (see domain.similarity), `params` are the
algorithm's own options (each has a default). Labels are cluster numbers, -1 for a face
that joins no cluster.
"""

from __future__ import annotations

from collections.abc import Callable

from commands.clustering import agglomerative, dbscan, hdbscan, kmeans
from commands.clustering.base import Clustering, ClusteringError

Algorithm = Callable[..., Clustering]

ALGORITHMS: dict[str, Algorithm] = {
    "hdbscan": hdbscan.cluster,
    "dbscan": dbscan.cluster,
    "kmeans": kmeans.cluster,
    "agglomerative": agglomerative.cluster,
}
DEFAULT_ALGORITHM = "hdbscan"


def algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ClusteringError(f"unknown clustering algorithm {name!r}; known: {', '.join(ALGORITHMS)}") from None


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "Clustering", "ClusteringError", "algorithm"]
