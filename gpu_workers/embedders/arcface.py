"""ArcFace-format embedders: any InsightFace-style recognition ONNX (112x112 aligned by the
5-point template, RGB, (x - 127.5) / 128, 128- or 512-d): buffalo_l's w600k_r50, Glint360K
R100, or, offline, the MobileFaceNet-style test asset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domain.faces import DetectedFace
from gpu_workers.embedders.base import Embedder, align_five_points
from gpu_workers.weights import weight_path


class ArcFaceEmbedder(Embedder):
    name = "arcface"
    input_size = 112
    default_metric = "l2"

    def _weight_file(self) -> Path:
        return weight_path(self.models_dir, "arcface")

    def align(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        return align_five_points(image, face, self.input_size)
