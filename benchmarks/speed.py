"""Inference speed on this machine's CPU.

    python -m benchmarks.speed [--threads 2] [--repeat 5]

Detectors: ms per image on photos resized to 640 px on the long side, batch 1 and 16
(letterboxed). Embedders: ms per face on aligned crops, batch 1 and 16, with and without
the flip augmentation (which doubles the work).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks._common import default_models_dir, machine, print_json, print_table
from facesearch.settings import get_settings
from gpu_workers.evaluation import read_rgb
from gpu_workers.registry import DETECTORS, EMBEDDERS

PHOTOS = ("photos/insightface/t1.jpg", "photos/astronaut.png", "photos/messi5.jpg", "photos/grace_hopper_512x512.jpg")


def _timed(fn, repeat: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=640)
    args = parser.parse_args(argv)
    data_dir = args.data_dir or get_settings().data_dir
    models_dir = args.models_dir or default_models_dir()

    photos = []
    for p in PHOTOS:
        image = read_rgb(data_dir / p)
        f = args.size / max(image.shape[:2])
        photos.append(cv2.resize(image, (round(image.shape[1] * f), round(image.shape[0] * f)), interpolation=cv2.INTER_AREA))

    rows, result = [], {"benchmark": "speed", "machine": machine(), "threads": args.threads, "detectors": {}, "embedders": {}}
    for name, cls in DETECTORS.items():
        try:
            detector = cls(models_dir, threads=args.threads, use_gpu=False, input_size=args.size) if "retinaface" in name \
                else cls(models_dir, threads=args.threads, use_gpu=False)
        except Exception as e:  # noqa: BLE001 - a model not installed is reported, not fatal
            print(f"{name}: skipped ({e})")
            continue
        single = np.mean([_timed(lambda im=im: detector.detect(im), args.repeat) for im in photos]) * 1000
        batch = [photos[i % len(photos)] for i in range(16)]
        batched = _timed(lambda: detector.detect_batch(batch), max(1, args.repeat // 2)) * 1000 / 16
        rows.append(["detector", name, f"{args.size} px photo", single, batched])
        result["detectors"][name] = {"ms_per_image_batch1": round(single, 2), "ms_per_image_batch16": round(batched, 2)}

    faces_source = read_rgb(data_dir / "photos/insightface/t1.jpg")
    from gpu_workers.detectors.retinaface import RetinaFaceDetector

    faces = RetinaFaceDetector(models_dir, threads=args.threads, use_gpu=False).detect(faces_source)
    for name, cls in EMBEDDERS.items():
        for flip in (False, True):
            try:
                embedder = cls(models_dir, threads=args.threads, use_gpu=False, flip=flip, batch_size=16)
            except Exception as e:  # noqa: BLE001
                print(f"{name}: skipped ({e})")
                break
            crops = np.stack([embedder.align(faces_source, faces[i % len(faces)]) for i in range(16)])
            single = _timed(lambda: [embedder.embed(c[None]) for c in crops[:4]], args.repeat) * 1000 / 4
            batched = _timed(lambda: embedder.embed(crops), args.repeat) * 1000 / 16
            label = f"{name}{' +flip' if flip else ''}"
            note = f"{embedder.input_size}x{embedder.input_size} crop, dim {embedder.dim}"
            if embedder.fixed_batch:
                note += f", model fixed at batch {embedder.fixed_batch}"
            rows.append(["embedder", label, note, single, batched])
            result["embedders"][label] = {"ms_per_face_batch1": round(single, 2), "ms_per_face_batch16": round(batched, 2)}

    print(f"Speed on {machine()}, ONNX Runtime CPU, {args.threads} intra-op threads (best of {args.repeat})")
    print_table(["kind", "model", "input", "ms each, batch 1", "ms each, batch 16"], rows)
    print_json(result)
    return result


if __name__ == "__main__":
    main()
