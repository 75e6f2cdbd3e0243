"""Photos filed sideways or upside down: quarter turns of an image, faces found in a turned
image mapped back to its own pixels, and which way up a face is from its landmarks.

A turn is np.rot90's: `turns` quarter turns anticlockwise; `turns` and `4 - turns` undo
each other."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from domain.faces import Box, DetectedFace, Landmarks

# Tried in order on a photo where no face is found upright.
QUARTER_TURNS = (1, 2, 3)


def turned(image: np.ndarray, turns: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, turns))


def unturn_point(x: float, y: float, turns: int, width: int, height: int) -> tuple[float, float]:
    """A point of turned(image, turns) in the pixels of `image` (width x height)."""
    turns %= 4
    if turns == 1:
        return width - y, x
    if turns == 2:
        return width - x, height - y
    if turns == 3:
        return y, height - x
    return x, y


def unturn_face(face: DetectedFace, turns: int, width: int, height: int) -> DetectedFace:
    """A face found in turned(image, turns), in the pixels of `image` (same score and quality:
    a quarter turn changes neither the face's size nor its sharpness)."""
    (ax, ay), (bx, by) = (unturn_point(x, y, turns, width, height)
                          for x, y in ((face.box.x1, face.box.y1), (face.box.x2, face.box.y2)))
    box = Box(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
    landmarks = Landmarks(tuple(unturn_point(x, y, turns, width, height) for x, y in face.landmarks.points))
    return DetectedFace(box, landmarks, face.score, face.quality)


def upright_turns(points: Sequence[Sequence[float]]) -> int:
    """The quarter turns that put a face upright, from its five landmarks (eyes, nose, mouth
    corners): those that make the way from its eyes to its mouth point down the image."""
    (lx, ly), (rx, ry), _, (mlx, mly), (mrx, mry) = points
    dx, dy = (mlx + mrx - lx - rx) / 2, (mly + mry - ly - ry) / 2
    if abs(dy) >= abs(dx):
        return 0 if dy >= 0 else 2
    return 1 if dx < 0 else 3


def photo_turns(faces: Sequence[DetectedFace]) -> int:
    """The quarter turns that put the photo upright, when most of its faces agree that it is
    turned (a detector trained on upright faces finds only some of them in a turned photo);
    0 when it is upright or the faces disagree (one person lying down among others)."""
    votes = Counter(upright_turns(face.landmarks.points) for face in faces)
    turns, count = votes.most_common(1)[0] if votes else (0, 0)
    return turns if turns and count * 2 > len(faces) else 0
