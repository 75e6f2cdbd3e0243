"""What every clustering algorithm returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Clustering:
    labels: np.ndarray  # one cluster number per face, -1 for none
    parameters: dict[str, Any] = field(default_factory=dict)  # every option, defaults filled in


class ClusteringError(ValueError):
    """Bad options or an input an algorithm cannot take (its message says what to do)."""


def relabel(labels: np.ndarray) -> np.ndarray:
    """Cluster numbers 0..n-1 in order of first appearance; -1 stays -1."""
    out = np.full(len(labels), -1, dtype=np.int64)
    seen: dict[int, int] = {}
    for i, label in enumerate(labels.tolist()):
        if label >= 0:
            out[i] = seen.setdefault(label, len(seen))
    return out
