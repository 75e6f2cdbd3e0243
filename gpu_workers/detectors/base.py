"""The detector interface and what every detector shares (NMS, turning arrays into faces)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from domain.faces import Box, DetectedFace, Landmarks
from gpu_workers.quality import QualityThresholds, assess
from gpu_workers.specs import ModelSpec


class Detector(ABC):
    """Finds faces: RGB uint8 images in, per image a list of `DetectedFace` out (original pixels).

    Faces scoring below `score_threshold` are not reported; faces below the quality minimums
    are reported with flags.
    """

    spec: ClassVar[ModelSpec]  # each model's own declaration; `name` is read from it
    name: str = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__:
            cls.name = cls.spec.name

    def __init__(
        self,
        models_dir: Path,
        threads: int = 2,
        use_gpu: bool = True,
        score_threshold: float = 0.9,
        quality: QualityThresholds | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.threads = threads
        self.use_gpu = use_gpu
        self.score_threshold = score_threshold
        self.quality = quality or QualityThresholds()

    @abstractmethod
    def detect_batch(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces in each image, best score first."""

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        return self.detect_batch([image])[0]

    def _faces(self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, points: np.ndarray) -> list[DetectedFace]:
        """boxes (n,4) x1,y1,x2,y2; scores (n,); points (n,5,2) -> faces, clipped to the image."""
        h, w = image.shape[:2]
        faces = []
        for (x1, y1, x2, y2), score, pts in zip(boxes.tolist(), scores.tolist(), points.tolist()):
            box = Box(max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2))
            if box.width <= 1 or box.height <= 1:
                continue
            faces.append(DetectedFace(box, Landmarks(tuple(map(tuple, pts))), float(score), assess(image, box, score, self.quality)))
        faces.sort(key=lambda f: -f.score)
        return faces


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Accept grey or RGBA too; detectors work on 3-channel RGB uint8."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    return image


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first.
    mode "min" divides the overlap by the smaller box (MTCNN's last stage)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        denom = np.minimum(areas[i], areas[rest]) if mode == "min" else areas[i] + areas[rest] - inter
        overlap = inter / np.maximum(denom, 1e-9)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)
