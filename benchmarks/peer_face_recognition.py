"""The face_recognition half of `benchmarks.peers`, run by the peer venv's Python (dlib and
face_recognition are never installed into the project's venv), so it imports nothing of ours.

    <peer venv>/bin/python benchmarks/peer_face_recognition.py < job.json

The job (stdin): {"photos": [paths], "lfw": [paths], "upsample": 1}. The answer (stdout, one
JSON object): the boxes found in each photo and the seconds the photos took (load, HOG
detection, 128-d encodings, as a user of the library calls it), and for each LFW image the
encoding of its central face, or null where no face was found.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version


def central(locations: list[tuple[int, int, int, int]], height: int, width: int) -> int:
    """The face nearest the image centre relative to its size (as gpu_workers.evaluation.central_face)."""

    def cost(loc: tuple[int, int, int, int]) -> float:
        top, right, bottom, left = loc
        size = max(min(right - left, bottom - top), 1)
        return float(((left + right) / 2 - width / 2) ** 2 + ((top + bottom) / 2 - height / 2) ** 2) ** 0.5 / size

    return min(range(len(locations)), key=lambda i: cost(locations[i]))


def main() -> None:
    import face_recognition

    job = json.load(sys.stdin)
    upsample = int(job.get("upsample", 1))

    def analyse(path: str) -> tuple[list, list]:
        image = face_recognition.load_image_file(path)
        locations = face_recognition.face_locations(image, number_of_times_to_upsample=upsample, model="hog")
        return locations, face_recognition.face_encodings(image, locations)

    photos = job["photos"]
    if photos:
        analyse(photos[0])  # warm-up: the first call pays for loading the models
    boxes = []
    started = time.perf_counter()
    for path in photos:
        locations, _ = analyse(path)
        boxes.append([[left, top, right, bottom] for top, right, bottom, left in locations])
    photo_seconds = time.perf_counter() - started

    lfw: dict[str, list[float] | None] = {}
    started = time.perf_counter()
    for path in job["lfw"]:
        image = face_recognition.load_image_file(path)
        locations = face_recognition.face_locations(image, number_of_times_to_upsample=upsample, model="hog")
        if not locations:
            lfw[path] = None
            continue
        k = central(locations, image.shape[0], image.shape[1])
        (encoding,) = face_recognition.face_encodings(image, [locations[k]])
        lfw[path] = [round(float(v), 6) for v in encoding]
    lfw_seconds = time.perf_counter() - started

    json.dump({
        "library": f"face_recognition {version('face-recognition')} (dlib {version('dlib-bin')}, HOG + ResNet 128-d)",
        "upsample": upsample, "photo_seconds": photo_seconds, "boxes": boxes,
        "lfw_seconds": lfw_seconds, "lfw": lfw,
    }, sys.stdout)


if __name__ == "__main__":
    main()
