"""ArcFace-format embedders: InsightFace-style recognition ONNX (112x112 aligned by the
5-point template, RGB, (x - 127.5) / 128, 512-d): by default InsightFace's w600k_mbf
(MobileFaceNet, WebFace600K) from PyPI; buffalo_l's w600k_r50 or Glint360K R100 when the user
installs them (`facesearch models pull --arcface NAME`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domain.faces import DetectedFace
from gpu_workers.embedders.base import Embedder, align_five_points
from gpu_workers.specs import SPECS
from gpu_workers.weights import weight_path

SPEC = SPECS["arcface"]


class ArcFaceEmbedder(Embedder):
    name = SPEC.name
    input_size = SPEC.input_size
    default_metric = SPEC.metric or Embedder.default_metric  # the spec names it (its field is optional)

    def _weight_file(self) -> Path:
        return weight_path(self.models_dir, self.name, allow_noncommercial=self.allow_noncommercial)

    def align(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        return align_five_points(image, face, self.input_size)
