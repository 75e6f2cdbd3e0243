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
        # Each component on its own: no edge joins it to any other, so no person spans two;
        # and a component that is one person is allowed to be one cluster.
        found = HDBSCAN(
            min_cluster_size=min_cluster_size, min_samples=samples,
            metric="precomputed", copy=True, allow_single_cluster=True,
        ).fit_predict(core[members][:, members])
        found = np.where(found >= 0, found + next_label, -1)
        labels[dense[members]] = found
        next_label = max(next_label, int(found.max()) + 1)
    return Clustering(relabel(labels), params)


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


def _bridged(graph: sp.csr_matrix) -> sp.csr_matrix:
    count, component = connected_components(graph, directed=False)
    if count == 1:
        return graph
    heads = np.unique(component, return_index=True)[1]  # the first face of each component
    a, b = heads[:-1], heads[1:]
    bridge = sp.csr_matrix(
        (np.full(2 * len(a), _BRIDGE), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=graph.shape
    )
    return (graph + bridge).tocsr()
