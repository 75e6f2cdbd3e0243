"""Model names -> classes. A new detector or embedder is one file (the class, with its `spec`:
files, SHA-256, licence, input size, metric, how it is fetched) plus one line here."""

from __future__ import annotations

from gpu_workers.detectors.base import Detector
from gpu_workers.detectors.mtcnn import MTCNNDetector
from gpu_workers.detectors.retinaface import RetinaFaceDetector, RetinaFaceResNet50Detector
from gpu_workers.embedders.arcface import ArcFaceEmbedder
from gpu_workers.embedders.base import Embedder
from gpu_workers.embedders.facenet512 import FaceNet512Embedder
from gpu_workers.specs import ModelSpec

DETECTORS: dict[str, type[Detector]] = {
    cls.spec.name: cls
    for cls in (
        RetinaFaceDetector,
        RetinaFaceResNet50Detector,
        MTCNNDetector,
    )
}
EMBEDDERS: dict[str, type[Embedder]] = {
    cls.spec.name: cls
    for cls in (
        FaceNet512Embedder,
        ArcFaceEmbedder,
    )
}
# Every model's declaration, by name: what `facesearch models` lists, pulls and verifies.
SPECS: dict[str, ModelSpec] = {n: c.spec for n, c in DETECTORS.items()} | {n: c.spec for n, c in EMBEDDERS.items()}
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
