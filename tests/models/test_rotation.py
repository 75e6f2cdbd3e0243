"""Photos filed sideways or upside down: the analyzer finds their faces turned, reports
them in the photo's own pixels (boxes land on the faces as the photo is shown), embeds them
upright, and still finds no face in photos without one."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from domain.faces import Box
from gpu_workers.analyzer import FaceAnalyzer
from gpu_workers.evaluation import read_rgb
from gpu_workers.orientation import turned, unturn_point, upright_turns

T1 = "photos/insightface/t1.jpg"  # six people, all facing the camera


def box_in_turned(box: Box, turns: int, shape: tuple[int, ...]) -> Box:
    """Where `box` of an upright image lies in np.rot90(image, turns), found by turning a
    mask with numpy (independent of the analyzer's arithmetic)."""
    mask = np.zeros(shape[:2], dtype=bool)
    mask[int(round(box.y1)):int(round(box.y2)), int(round(box.x1)):int(round(box.x2))] = True
    ys, xs = np.nonzero(np.rot90(mask, turns))
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


@pytest.fixture(scope="module")
def upright(analyzers, photo):
    image = photo(T1)
    return image, analyzers["facenet512"].analyze([image])[0]


@pytest.mark.parametrize("turns", [2, 1, 3])
def test_turned_group_photo_finds_every_face_on_the_faces(analyzers, detectors, upright, turns):
    image, faces = upright
    assert len(faces) == 6
    photo = turned(image, turns)  # the photo as it was filed: upside down (2) or sideways
    assert len(detectors["retinaface"].detect(photo)) < 6, "the detector alone already finds every face turned"
    for model in ("facenet512", "arcface"):
        found = analyzers[model].analyze([photo])[0]
        assert len(found) == 6, (model, turns, len(found))
        upright_vectors = {i: v for i, (_, v) in enumerate(analyzers[model].analyze([image])[0])}
        for face, vector in found:
            # Each box is one of the faces, where that face is in the photo as filed.
            ious = [face.box.iou(box_in_turned(f.box, turns, image.shape)) for f, _ in faces]
            best = int(np.argmax(ious))
            assert ious[best] > 0.7, (model, turns, ious)
            for x, y in face.landmarks.points:
                assert face.box.x1 - 2 <= x <= face.box.x2 + 2 and face.box.y1 - 2 <= y <= face.box.y2 + 2
            # Embedded upright: the same vector (nearly) as the face in the upright photo.
            assert float(vector @ upright_vectors[best]) > 0.8, (model, turns, float(vector @ upright_vectors[best]))


@pytest.mark.parametrize("name", ["photos/messi5.jpg", "photos/insightface/Tom_Hanks_54745.png"])
def test_a_photo_with_no_face_as_filed_is_tried_turned(analyzers, detectors, photo, name):
    """One person, turned: the detector alone finds nobody in the photo as filed; the analyzer
    finds the face by trying the turns, and reports it where it is."""
    image = photo(name)
    [upright_face] = detectors["retinaface"].detect(image)
    for turns in (1, 2, 3):
        filed = turned(image, turns)
        assert detectors["retinaface"].detect(filed) == [], (name, turns)
        found = analyzers["arcface"].analyze([filed])[0]
        assert len(found) == 1, (name, turns, len(found))
        face = found[0][0]
        assert face.box.iou(box_in_turned(upright_face.box, turns, image.shape)) > 0.7, (name, turns)
        assert upright_turns(face.landmarks.points) == (4 - turns) % 4


def test_a_photo_whose_face_lies_turned_is_detected_upright(analyzers, detectors, photo):
    """The astronaut turned: the detector finds her turned too (eyes beside or below the mouth);
    the analyzer detects the photo turned upright and reports the face where it is."""
    image = photo("photos/astronaut.png")
    [upright_face] = detectors["retinaface"].detect(image)
    for turns in (1, 2, 3):
        found = analyzers["arcface"].analyze([turned(image, turns)])[0]
        assert len(found) == 1, (turns, len(found))
        face = found[0][0]
        assert face.box.iou(box_in_turned(upright_face.box, turns, image.shape)) > 0.7
        assert upright_turns(face.landmarks.points) == (4 - turns) % 4


def test_unturn_point_inverts_numpy_rot90():
    image = np.arange(4 * 7).reshape(4, 7)  # height 4, width 7: not square, so mistakes show
    for turns in range(4):
        r = np.rot90(image, turns)
        for row in range(r.shape[0]):
            for col in range(r.shape[1]):
                x, y = unturn_point(col + 0.5, row + 0.5, turns, 7, 4)  # the pixel's centre
                assert image[int(y), int(x)] == r[row, col]


def test_no_faces_on_clean_photos_even_turned(models_dir, data_dir: Path):
    """The retry must not find faces where there are none: no-face photos cost up to four
    detections (the time per photo is printed) and still give no face."""
    paths = sorted((data_dir / "no_faces" / "clean").iterdir())
    images = [read_rgb(p) for p in paths]
    timings = {}
    found = {}
    for rotations in (False, True):
        analyzer = FaceAnalyzer("retinaface", "facenet512", models_dir, use_gpu=False, try_rotations=rotations)
        analyzer.detect(images[:1])  # warm up
        started = time.perf_counter()
        found[rotations] = {p.name: len(analyzer.detect([image])[0]) for p, image in zip(paths, images)}
        timings[rotations] = (time.perf_counter() - started) / len(paths) * 1000
    print(f"\nno-face photos: {timings[False]:.0f} ms a photo upright only, {timings[True]:.0f} ms with the turned retries")
    assert sum(found[True].values()) == 0, {k: v for k, v in found[True].items() if v}


def test_face_thumbnails_of_a_turned_photo_are_upright(analyzers, upright):
    """The people page's face crops (api/photos.make_face_crop) of an upside-down photo show
    the faces upright: close to the crops of the upright photo, far from them untouched."""
    import io

    from PIL import Image

    from api.photos import make_face_crop

    def png(array: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(array).save(out, "PNG")
        return out.getvalue()

    def pixels(jpeg: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=np.float32)

    image, faces = upright
    photo = turned(image, 2)
    found = analyzers["arcface"].analyze([photo])[0]
    for face, _ in found:
        twin = max(faces, key=lambda f: face.box.iou(box_in_turned(f[0].box, 2, image.shape)))[0]
        reference = pixels(make_face_crop(png(image), (twin.box.x1, twin.box.y1, twin.box.x2, twin.box.y2), 96,
                                          max_pixels=60_000_000))
        box = (face.box.x1, face.box.y1, face.box.x2, face.box.y2)
        shown = pixels(make_face_crop(png(photo), box, 96, upright_turns(face.landmarks.points), max_pixels=60_000_000))
        untouched = pixels(make_face_crop(png(photo), box, 96, max_pixels=60_000_000))
        assert np.abs(shown - reference).mean() < 0.5 * np.abs(untouched - reference).mean()
