"""Detectors on real photos: they must fail when a model or its decoding is broken."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from domain.faces import FLAG_BLURRY, FLAG_SMALL, Box
from gpu_workers.quality import QualityThresholds

DETECTORS = ["retinaface", "mtcnn"]
# The astronaut's face (Eileen Collins) in photos/astronaut.png, drawn by hand.
ASTRONAUT_FACE = Box(180, 62, 268, 175)


@pytest.mark.parametrize("name", DETECTORS)
def test_astronaut_face_found_with_right_box(detectors, photo, name):
    faces = detectors[name].detect(photo("photos/astronaut.png"))
    assert len(faces) == 1
    face = faces[0]
    assert face.box.iou(ASTRONAUT_FACE) > 0.7
    assert face.score > 0.95
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks.points
    assert lx < nx < rx and mlx < mrx
    assert max(ly, ry) < ny < min(mly, mry)
    for x, y in face.landmarks.points:
        assert face.box.x1 <= x <= face.box.x2 and face.box.y1 <= y <= face.box.y2


@pytest.mark.parametrize("name", DETECTORS)
def test_six_faces_of_t1(detectors, photo, name):
    faces = detectors[name].detect(photo("photos/insightface/t1.jpg"))
    assert len(faces) == 6
    assert all(f.box.size > 80 for f in faces)


def test_batch_equals_single_images(detectors, photo):
    """Letterboxed batches of different sizes give the faces single images give."""
    detector = detectors["retinaface"]
    images = [photo("photos/astronaut.png"), photo("photos/insightface/t1.jpg"), photo("photos/messi5.jpg")]
    batched = detector.detect_batch(images)
    for image, faces in zip(images, batched):
        single = detector.detect(image)
        assert len(single) == len(faces)
        for a, b in zip(single, faces):
            assert a.box.iou(b.box) > 0.9


def test_no_faces_on_clean_photos(detectors, data_dir: Path):
    from gpu_workers.evaluation import read_rgb

    paths = sorted((data_dir / "no_faces" / "clean").iterdir())
    assert paths
    found = {p.name: len(detectors["retinaface"].detect(read_rgb(p))) for p in paths}
    assert sum(found.values()) == 0, {k: v for k, v in found.items() if v}


def test_quality_flags_small_and_blurred_face(models_dir, photo):
    from gpu_workers.detectors.retinaface import RetinaFaceDetector

    detector = RetinaFaceDetector(models_dir, use_gpu=False, quality=QualityThresholds(min_size_px=40, min_blur=25))
    image = photo("photos/astronaut.png")
    sharp = detector.detect(image)[0]
    assert sharp.quality.flags == ()
    assert sharp.quality.blur > 100

    blurred = detector.detect(cv2.GaussianBlur(image, (0, 0), 4))
    assert blurred, "a blurred face is kept, not dropped"
    assert FLAG_BLURRY in blurred[0].quality.flags

    tiny_image = cv2.resize(image, (160, 160), interpolation=cv2.INTER_AREA)  # face about 30 px
    tiny = detector.detect(tiny_image)
    assert tiny, "a small face is kept, not dropped"
    assert FLAG_SMALL in tiny[0].quality.flags
    assert tiny[0].quality.size_px < 40


def test_faces_round_trip_through_dicts(detectors, photo):
    import json

    from domain.faces import DetectedFace

    face = detectors["retinaface"].detect(photo("photos/astronaut.png"))[0]
    assert DetectedFace.from_dict(json.loads(json.dumps(face.to_dict()))) == face
    assert isinstance(face.score, float) and np.isfinite(face.quality.blur)
