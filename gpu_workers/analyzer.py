"""The face-analysis pipeline the workers call: detect, align, embed, with stage timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from domain.faces import DetectedFace
from gpu_workers.quality import QualityThresholds
from gpu_workers.registry import DEFAULT_DETECTOR, DEFAULT_EMBEDDER, detector_class, embedder_class


@dataclass
class StageTimings:
    """Seconds spent in each stage by the last `analyze` call."""

    detect: float = 0.0
    align: float = 0.0
    embed: float = 0.0
    images: int = 0
    faces: int = 0

    def to_dict(self) -> dict[str, float]:
        return {"detect_s": self.detect, "align_s": self.align, "embed_s": self.embed, "images": self.images, "faces": self.faces}


@dataclass
class FaceAnalyzer:
    """Detector + embedder by registry name, weights from `models_dir` (pulled beforehand)."""

    detector_name: str = DEFAULT_DETECTOR
    embedder_name: str = DEFAULT_EMBEDDER
    models_dir: Path = Path("var/models")
    threads: int = 2
    use_gpu: bool = True
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    detector_options: dict[str, Any] = field(default_factory=dict)
    embedder_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.detector = detector_class(self.detector_name)(
            self.models_dir, threads=self.threads, use_gpu=self.use_gpu, quality=self.quality, **self.detector_options
        )
        self.embedder = embedder_class(self.embedder_name)(
            self.models_dir, threads=self.threads, use_gpu=self.use_gpu, **self.embedder_options
        )
        self.timings = StageTimings()

    @property
    def model_name(self) -> str:
        return self.embedder.name

    def analyze(self, images: list[np.ndarray]) -> list[list[tuple[DetectedFace, np.ndarray]]]:
        """For each RGB uint8 image, its faces with their L2-normalised embeddings."""
        t0 = time.perf_counter()
        detections = self.detector.detect_batch(images)
        t1 = time.perf_counter()
        crops = [self.embedder.align(image, face) for image, faces in zip(images, detections) for face in faces]
        t2 = time.perf_counter()
        vectors = self.embedder.embed(np.stack(crops)) if crops else np.zeros((0, 0), dtype=np.float32)
        t3 = time.perf_counter()
        self.timings = StageTimings(t1 - t0, t2 - t1, t3 - t2, len(images), len(crops))
        out, k = [], 0
        for faces in detections:
            out.append([(face, vectors[k + i]) for i, face in enumerate(faces)])
            k += len(faces)
        return out
