"""Model names -> classes. A new detector or embedder is one file plus one line here, and
its spec (files, SHA-256, licence, fetching) in gpu_workers/specs.py."""

from __future__ import annotations

from gpu_workers.detectors.base import Detector
from gpu_workers.detectors.mtcnn import MTCNNDetector
from gpu_workers.detectors.retinaface import RetinaFaceDetector, RetinaFaceResNet50Detector
from gpu_workers.embedders.arcface import ArcFaceEmbedder
from gpu_workers.embedders.base import Embedder
from gpu_workers.embedders.facenet512 import FaceNet512Embedder
from gpu_workers.specs import SPECS, ModelSpec

DETECTORS: dict[str, type[Detector]] = {
    "retinaface": RetinaFaceDetector,
    "retinaface-r50": RetinaFaceResNet50Detector,
    "mtcnn": MTCNNDetector,
}
EMBEDDERS: dict[str, type[Embedder]] = {
    "facenet512": FaceNet512Embedder,
    "arcface": ArcFaceEmbedder,
}
DEFAULT_DETECTOR = "retinaface"
DEFAULT_EMBEDDER = "facenet512"


class UnknownModel(ValueError):
    pass


def detector_class(name: str) -> type[Detector]:
    try:
        return DETECTORS[name]
    except KeyError:
        raise UnknownModel(f"Unknown detector {name!r}; choose one of {sorted(DETECTORS)}") from None


def embedder_class(name: str) -> type[Embedder]:
    try:
        return EMBEDDERS[name]
    except KeyError:
        raise UnknownModel(f"Unknown embedder {name!r}; choose one of {sorted(EMBEDDERS)}") from None


def model_spec(name: str) -> ModelSpec:
    """What the model is: files, pinned SHA-256, licence, input size, metric, how it is fetched."""
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownModel(f"Unknown model {name!r}; choose one of {sorted(SPECS)}") from None
