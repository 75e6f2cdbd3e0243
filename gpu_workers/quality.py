"""Per-face quality: detector score, size, sharpness; flags for faces below the minimums."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from domain.faces import FLAG_BLURRY, FLAG_LOW_SCORE, FLAG_SMALL, Box, FaceQuality

# Blur is measured on the face resized to this square, so it does not grow with face size.
BLUR_SIDE = 112


@dataclass(frozen=True)
class QualityThresholds:
    """Minimums below which a face is kept but flagged."""

    min_size_px: float = 40.0
    min_blur: float = 25.0
    min_score: float = 0.95


def blur_variance(image: np.ndarray, box: Box) -> float:
    """Variance of the Laplacian of the face crop (grey, BLUR_SIDE px square): low is blurry."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(box.x1)), max(0, int(box.y1))
    x2, y2 = min(w, int(np.ceil(box.x2))), min(h, int(np.ceil(box.y2)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    crop = image[y1:y2, x1:x2]
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    grey = cv2.resize(grey, (BLUR_SIDE, BLUR_SIDE), interpolation=cv2.INTER_AREA if min(grey.shape) > BLUR_SIDE else cv2.INTER_LINEAR)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess(image: np.ndarray, box: Box, score: float, thresholds: QualityThresholds) -> FaceQuality:
    size = box.size
    blur = blur_variance(image, box)
    flags = []
    if size < thresholds.min_size_px:
        flags.append(FLAG_SMALL)
    if blur < thresholds.min_blur:
        flags.append(FLAG_BLURRY)
    if score < thresholds.min_score:
        flags.append(FLAG_LOW_SCORE)
    return FaceQuality(score=float(score), size_px=float(size), blur=blur, flags=tuple(flags))
