"""Faces as the domain sees them: where a face is, its landmarks, how good it is, and its
embedding. Pure Python value objects; `to_dict`/`from_dict` give JSON-safe dicts for events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Quality flags: a face below a configured minimum is kept and flagged, never dropped.
FLAG_SMALL = "small"
FLAG_BLURRY = "blurry"
FLAG_LOW_SCORE = "low_score"


@dataclass(frozen=True)
class Box:
    """Axis-aligned face box in pixels of the original image."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def size(self) -> float:
        """The shorter side: what 'face size' means for minimums and benchmarks."""
        return min(self.width, self.height)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"x1": self.x1, "y1": self.y1, "x2": self.x2, "y2": self.y2}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Box:
        return cls(float(data["x1"]), float(data["y1"]), float(data["x2"]), float(data["y2"]))


@dataclass(frozen=True)
class Landmarks:
    """Five points in image pixels: left eye, right eye, nose, left mouth corner, right mouth corner
    (left/right as seen in the image)."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) != 5:
            raise ValueError(f"Landmarks need 5 points, got {len(self.points)}")
        object.__setattr__(self, "points", tuple((float(x), float(y)) for x, y in self.points))

    @property
    def left_eye(self) -> tuple[float, float]:
        return self.points[0]

    @property
    def right_eye(self) -> tuple[float, float]:
        return self.points[1]

    @property
    def nose(self) -> tuple[float, float]:
        return self.points[2]

    @property
    def left_mouth(self) -> tuple[float, float]:
        return self.points[3]

    @property
    def right_mouth(self) -> tuple[float, float]:
        return self.points[4]

    def to_dict(self) -> dict[str, list[list[float]]]:
        return {"points": [[x, y] for x, y in self.points]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Landmarks:
        return cls(tuple((float(x), float(y)) for x, y in data["points"]))


@dataclass(frozen=True)
class FaceQuality:
    """Detector score, face size (shorter box side, px), blur (variance of the Laplacian of the
    face at a fixed size: higher is sharper) and the flags of minimums it falls below."""

    score: float
    size_px: float
    blur: float
    flags: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.flags

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "size_px": self.size_px, "blur": self.blur, "flags": list(self.flags)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceQuality:
        return cls(float(data["score"]), float(data["size_px"]), float(data["blur"]), tuple(data.get("flags", ())))


@dataclass(frozen=True)
class DetectedFace:
    box: Box
    landmarks: Landmarks
    score: float
    quality: FaceQuality

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box.to_dict(),
            "landmarks": self.landmarks.to_dict(),
            "score": self.score,
            "quality": self.quality.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectedFace:
        return cls(
            Box.from_dict(data["box"]),
            Landmarks.from_dict(data["landmarks"]),
            float(data["score"]),
            FaceQuality.from_dict(data["quality"]),
        )


@dataclass(frozen=True)
class Embedding:
    """An L2-normalised face vector and the model that produced it."""

    vector: tuple[float, ...]
    model: str
    dim: int = field(default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector", tuple(float(v) for v in self.vector))
        if self.dim == 0:
            object.__setattr__(self, "dim", len(self.vector))
        elif self.dim != len(self.vector):
            raise ValueError(f"Embedding dim {self.dim} does not match vector length {len(self.vector)}")

    def to_dict(self) -> dict[str, Any]:
        return {"vector": list(self.vector), "model": self.model, "dim": self.dim}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Embedding:
        return cls(tuple(data["vector"]), str(data["model"]), int(data.get("dim", 0)))
