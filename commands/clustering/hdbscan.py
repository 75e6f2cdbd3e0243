"""HDBSCAN over the sparse nearest-neighbour graph (the default).

Density-based like DBSCAN but with no single radius: it keeps the clusters that persist
over a range of densities, so tight and loose identities both come out, and a chain of
look-alikes does not glue two people together. Faces of no cluster stay unassigned.
Running it on the k-NN graph instead of all pairs makes it near-linear after the graph:
100,000 faces in about two minutes on two cores (benchmarks/clustering_scale.py).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from commands.clustering.base import Clustering, ClusteringError, relabel
from commands.clustering.graph import DEFAULT_FLOOR, knn_graph

# Components up to this size where HDBSCAN finds nothing get the strict fallback.
_FALLBACK_MAX = 5000


def cluster(
    vectors: np.ndarray, threshold: float, *, k: int = 20, min_cluster_size: int = 3, min_samples: int | None = None,
    floor: float = DEFAULT_FLOOR,
) -> Clustering:
    from sklearn.cluster import HDBSCAN

    if min_cluster_size < 2 or k < 2:
        raise ClusteringError("hdbscan needs min_cluster_size ≥ 2 and k ≥ 2")
    samples = min_samples or min_cluster_size
    params = {"k": k, "min_cluster_size": min_cluster_size, "min_samples": samples, "floor": floor}
    n = len(vectors)
    if n < min_cluster_size:
        return Clustering(np.full(n, -1, dtype=np.int64), params)
    graph = knn_graph(vectors, k, floor)
    dense = _dense_core(graph, samples)
    labels = np.full(n, -1, dtype=np.int64)
    core = graph[dense][:, dense].tocsr()
    count, component = connected_components(core, directed=False)
    next_label = 0
    for c in range(count):
        members = np.flatnonzero(component == c)
        if len(members) < min_cluster_size:
            continue
        # Each component on its own: no edge joins it to any other, so no person spans two.
        found = HDBSCAN(
            min_cluster_size=min_cluster_size, min_samples=samples, metric="precomputed", copy=True,
        ).fit_predict(core[members][:, members])
        if (found < 0).all() and len(members) <= _FALLBACK_MAX:
            found = _strict(vectors[dense[members]], threshold)
        else:
            found = _split_loose(vectors[dense[members]], found, threshold)
        found = np.where(found >= 0, found + next_label, -1)
        labels[dense[members]] = found
        next_label = max(next_label, int(found.max()) + 1)
    return Clustering(relabel(labels), params)


def _strict(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Where HDBSCAN finds no structure (a lone person, or a few loose ones: it never returns
    a single cluster), complete linkage at the threshold: every two faces of a person pass it."""
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(
        n_clusters=None, distance_threshold=1.0 - threshold, metric="cosine", linkage="complete",
    ).fit_predict(vectors)
    sizes = np.bincount(labels)
    return np.where(sizes[labels] >= 2, labels, -1)


def _one_person(vectors: np.ndarray, threshold: float) -> bool:
    """Whether most pairs of these faces pass the calibrated "same person" threshold."""
    x = vectors[:: max(1, len(vectors) // 2000)]  # a sample is enough for a median
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = (x @ x.T)[np.triu_indices(len(x), 1)]
    return float(np.median(sims)) >= threshold


def _split_loose(vectors: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """Splits a cluster whose parts are, on average, less similar than the threshold (on
    few faces HDBSCAN can take two people for one): average linkage cut at the threshold."""
    from sklearn.cluster import AgglomerativeClustering

    out = labels.copy()
    next_label = int(labels.max()) + 1
    for label in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == label)
        if len(idx) < 2 or len(idx) > _FALLBACK_MAX:
            continue
        parts = AgglomerativeClustering(
            n_clusters=None, distance_threshold=1.0 - threshold, metric="cosine", linkage="average",
        ).fit_predict(vectors[idx])
        sizes = np.bincount(parts)
        for part in range(1, int(parts.max()) + 1):
            out[idx[parts == part]] = next_label if sizes[part] > 1 else -1  # a lone face is a leftover
            next_label += 1
    return out


def _dense_core(graph: sp.csr_matrix, neighbours: int) -> np.ndarray:
    """The faces with at least `neighbours` neighbours among each other (above the floor);
    the others have no dense neighbourhood, so no cluster, and HDBSCAN needs them gone."""
    keep = np.ones(graph.shape[0], dtype=bool)
    while True:
        degree = np.asarray((graph[:, keep] != 0).sum(axis=1)).ravel()
        drop = keep & (degree < neighbours)
        if not drop.any():
            return np.flatnonzero(keep)
        keep &= ~drop
