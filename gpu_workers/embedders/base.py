"""The embedder interface, alignment helpers and shared batching."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from domain.faces import DetectedFace
from gpu_workers.calibration import ScoreCalibration, load_score_calibration
from gpu_workers.orientation import upright_turns
from gpu_workers.runtime import create_session
from gpu_workers.specs import ModelSpec
from gpu_workers.weights import calibration_path, weight_path

# The standard InsightFace/ArcFace 5-point template for 112x112 crops.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, translation) mapping src to dst
    points (Umeyama, without reflection)."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - scale * rot @ src_mean
    return m


def align_five_points(image: np.ndarray, face: DetectedFace, size: int = 112) -> np.ndarray:
    """The face warped so its 5 landmarks sit on the ArcFace template (size x size, RGB)."""
    template = ARCFACE_TEMPLATE * (size / 112.0)
    m = similarity_transform(np.array(face.landmarks.points, dtype=np.float64), template)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def crop_with_margin(image: np.ndarray, face: DetectedFace, size: int, margin: float) -> np.ndarray:
    """The detector box grown by `margin` pixels in total (half each side), clipped to the
    image, turned upright by quarter turns (a face found in a sideways or upside-down photo),
    resized to size x size (FaceNet's own alignment)."""
    h, w = image.shape[:2]
    b = face.box
    x1, y1 = int(max(0, np.floor(b.x1 - margin / 2))), int(max(0, np.floor(b.y1 - margin / 2)))
    x2, y2 = int(min(w, np.ceil(b.x2 + margin / 2))), int(min(h, np.ceil(b.y2 + margin / 2)))
    crop = np.ascontiguousarray(np.rot90(image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)], upright_turns(face.landmarks.points)))
    interp = cv2.INTER_AREA if min(crop.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Embedder(ABC):
    """Turns aligned face crops (n, size, size, 3) RGB uint8 into (n, dim) unit vectors.

    `flip`: also embed each face mirrored and use the normalised sum (test-time augmentation).
    `allow_noncommercial`: False refuses weights licensed for non-commercial use only
    (`NonCommercialWeightsError`), as settings.allow_noncommercial_weights asks.
    """

    spec: ClassVar[ModelSpec]  # each model's own declaration; the three below are read from it
    name: str = ""
    input_size: int = 112
    default_metric: str = "cosine"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__:
            cls.name, cls.input_size, cls.default_metric = cls.spec.name, cls.spec.input_size, cls.spec.metric

    def __init__(
        self, models_dir: Path, threads: int = 2, use_gpu: bool = True, flip: bool = False, batch_size: int = 16,
        allow_noncommercial: bool = True,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.allow_noncommercial = allow_noncommercial
        self.flip = flip
        self.batch_size = batch_size
        self.session = create_session(self._weight_file(), threads, use_gpu)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        # Some exports fix batch 1: feed those one face at a time.
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.dim = int(self.session.get_outputs()[0].shape[1])

    def _weight_file(self) -> Path:
        return weight_path(self.models_dir, self.spec, allow_noncommercial=self.allow_noncommercial)

    @abstractmethod
    def align(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The crop this model expects for one detected face (RGB uint8)."""

    def preprocess(self, faces: np.ndarray) -> np.ndarray:
        """uint8 NHWC RGB -> float32 NCHW, (x - 127.5) / 128."""
        return ((faces.astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)

    def _run(self, x: np.ndarray) -> np.ndarray:
        step = self.fixed_batch or self.batch_size
        outs = [self.session.run(None, {self.input_name: x[i : i + step]})[0] for i in range(0, len(x), step)]
        return np.concatenate(outs).astype(np.float32)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """(n, dim) float32 L2-normalised embeddings of aligned crops."""
        if len(faces) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        x = self.preprocess(np.asarray(faces))
        vectors = l2_normalise(self._run(x))
        if self.flip:
            vectors = l2_normalise(vectors + l2_normalise(self._run(np.ascontiguousarray(x[..., ::-1]))))
        return vectors

    def calibration(self) -> ScoreCalibration | None:
        """The stored calibration of this model, if `models calibrate` ran (an old format raises ValueError)."""
        return load_score_calibration(calibration_path(self.models_dir, self.name).parent)
