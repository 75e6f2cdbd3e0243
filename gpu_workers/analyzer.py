"""The face-analysis pipeline the workers call: detect, align, embed, with stage timings.

A photo filed sideways or upside down (a scanned print) is detected again turned: one where
no face is found upright is tried turned a quarter, a half and three quarters, and one whose
faces mostly lie turned (the detector finds only some faces of a turned photo) is tried turned
upright. Faces found turned are mapped back to the photo's own pixels, so boxes land on the
faces as the photo is shown, and the aligners (which follow the landmarks) crop them upright."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from domain.faces import DetectedFace
from gpu_workers.orientation import QUARTER_TURNS, photo_turns, turned, unturn_face
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
    """Detector + embedder by registry name, weights from `models_dir` (pulled beforehand).

    The detector loads on first use: an analyzer that only embeds faces found by another
    (`embed_faces`, a second model beside the workers' primary one) never loads it."""

    detector_name: str = DEFAULT_DETECTOR
    embedder_name: str = DEFAULT_EMBEDDER
    models_dir: Path = Path("var/models")
    threads: int = 2
    use_gpu: bool = True
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    detector_options: dict[str, Any] = field(default_factory=dict)
    embedder_options: dict[str, Any] = field(default_factory=dict)
    try_rotations: bool = True  # photos with no face upright are tried turned (QUARTER_TURNS)

    def __post_init__(self) -> None:
        self._detector_class = detector_class(self.detector_name)  # an unknown name fails here, not later
        self.embedder = embedder_class(self.embedder_name)(
            self.models_dir, threads=self.threads, use_gpu=self.use_gpu, **self.embedder_options
        )
        self.timings = StageTimings()

    @cached_property
    def detector(self) -> Any:
        return self._detector_class(
            self.models_dir, threads=self.threads, use_gpu=self.use_gpu, quality=self.quality, **self.detector_options
        )

    @property
    def model_name(self) -> str:
        return self.embedder.name

    def analyze(self, images: list[np.ndarray]) -> list[list[tuple[DetectedFace, np.ndarray]]]:
        """For each RGB uint8 image, its faces with their L2-normalised embeddings."""
        t0 = time.perf_counter()
        detections = self.detect(images)
        t1 = time.perf_counter()
        vectors = self.embed_faces(images, detections)
        self.timings.detect = t1 - t0
        return [list(zip(faces, image_vectors)) for faces, image_vectors in zip(detections, vectors)]

    def detect(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        """Faces per image, in its own pixels (see the module docstring for turned photos)."""
        detections = self.detector.detect_batch(images)
        if not self.try_rotations:
            return detections
        # Photos whose faces lie turned: detected once more, turned upright; kept if no fewer faces.
        lying = {i: photo_turns(faces) for i, faces in enumerate(detections) if faces}
        lying = {i: turns for i, turns in lying.items() if turns}
        if lying:
            again = self.detector.detect_batch([turned(images[i], turns) for i, turns in lying.items()])
            for (i, turns), faces in zip(lying.items(), again):
                if len(faces) >= len(detections[i]):
                    detections[i] = self._unturned(faces, turns, images[i])
        # Photos with no face: each quarter turn in order, until one finds faces.
        empty = [i for i, faces in enumerate(detections) if not faces]
        for turns in QUARTER_TURNS:
            if not empty:
                break
            found = self.detector.detect_batch([turned(images[i], turns) for i in empty])
            for i, faces in zip(empty, found):
                detections[i] = self._unturned(faces, turns, images[i])
            empty = [i for i in empty if not detections[i]]
        return detections

    @staticmethod
    def _unturned(faces: list[DetectedFace], turns: int, image: np.ndarray) -> list[DetectedFace]:
        height, width = image.shape[:2]
        return [unturn_face(face, turns, width, height) for face in faces]

    def embed_faces(self, images: list[np.ndarray], faces_per_image: list[list[DetectedFace]]) -> list[np.ndarray]:
        """For each RGB uint8 image, an (n, dim) array of the L2-normalised embeddings of its
        already detected faces, in their order (align and embed only; timings: no detect)."""
        t0 = time.perf_counter()
        crops = [self.embedder.align(image, face) for image, faces in zip(images, faces_per_image) for face in faces]
        t1 = time.perf_counter()
        vectors = self.embedder.embed(np.stack(crops)) if crops else np.zeros((0, self.embedder.dim), dtype=np.float32)
        t2 = time.perf_counter()
        self.timings = StageTimings(0.0, t1 - t0, t2 - t1, len(images), len(crops))
        out, k = [], 0
        for faces in faces_per_image:
            out.append(vectors[k : k + len(faces)])
            k += len(faces)
        return out
