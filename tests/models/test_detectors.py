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


# WIDER FACE crowd photos (../shared/data/wider) where many faces are 10 to 50 px.
CROWDS = [
    "0--Parade/0_Parade_marchingband_1_768.jpg", "20--Family_Group/20_Family_Group_Family_Group_20_540.jpg",
    "19--Couple/19_Couple_Couple_19_743.jpg", "4--Dancing/4_Dancing_Dancing_4_57.jpg", "0--Parade/0_Parade_Parade_0_639.jpg",
]


def _count_runs(detector) -> list[int]:
    runs = [0]
    run = detector._run

    def counted(*args, **kwargs):
        runs[0] += 1
        return run(*args, **kwargs)

    detector._run = counted
    return runs


def test_zoom_finds_the_small_faces_of_crowds_and_keeps_the_first_pass(detectors, models_dir, data_dir):
    """RetinaFace's default takes a second, zoomed look where it saw small faces: on crowd
    photos it finds labelled faces the single pass misses, adds no face that matches no label,
    and every face of the single pass stays with the same box (embeddings depend on it)."""
    import json

    from benchmarks.detection import match_image
    from gpu_workers.detectors.retinaface import RetinaFaceDetector
    from gpu_workers.evaluation import read_rgb

    labels = {e["path"]: e["faces"] for e in json.loads((data_dir / "wider" / "boxes.json").read_text())}
    default, single = detectors["retinaface"], RetinaFaceDetector(models_dir, use_gpu=False, zoom_small_faces=False)
    hits = {"default": 0, "single": 0}
    for name in CROWDS:
        image, truth = read_rgb(data_dir / "wider" / "images" / name), labels[f"images/{name}"]
        found = {"default": default.detect(image), "single": single.detect(image)}
        for kind, faces in found.items():
            counts = match_image([(f.box, f.score) for f in faces], truth, 24)
            assert counts["fp"] == 0, (kind, name)
            hits[kind] += counts["tp_large"] + counts["tp_small"]
        for face in found["single"]:
            assert any(f.box == face.box for f in found["default"]), name
    assert hits["single"] <= 45 and hits["default"] >= hits["single"] + 12, hits


def test_portraits_take_one_pass(detectors, photo):
    """Faces large enough for the first pass cost no second one."""
    detector = detectors["retinaface"]
    runs = _count_runs(detector)
    try:
        assert len(detector.detect(photo("photos/astronaut.png"))) == 1
        assert len(detector.detect(photo("photos/insightface/t1.jpg"))) == 6
        assert runs[0] == 2
    finally:
        del detector._run
