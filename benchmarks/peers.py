"""This project's analyzer side by side with face_recognition (dlib), the library most people
reach for, on the same photos in one run.

    python -m benchmarks.peers [--photos 60] [--lfw-pairs 1000] [--quick]

The analyzer is the workers' (RetinaFace + FaceNet512 as Settings configure them, CPU);
face_recognition 1.3.0 (HOG detector, upsampled once as its default, + dlib's ResNet 128-d)
runs in a venv of its own (var_dir/peers-venv, built on first use from PyPI: dlib never enters
the project's venv) as a subprocess that answers in JSON (benchmarks/peer_face_recognition.py).

Photos: the first --photos WIDER FACE photos (boxes.json order; crowds), each side timed from
the file to the embeddings after one warm-up photo. Faces found are also matched to the
WIDER boxes (IoU >= 0.5, as benchmarks.detection). LFW View 1: --lfw-pairs pairs of
pairs_dev_train (half same, half different, evenly spread) choose each side's threshold
(cosine for ours, L2 for dlib), and as many of pairs_dev_test give the accuracy; an image
without a face makes its pairs errors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._common import machine, print_json, print_table
from facesearch.settings import get_settings

# Installed only into the peer venv. face_recognition 1.3.0 requires `dlib`, which builds from
# source: it goes in without its dependencies and `dlib-bin` (a wheel of the same module) stands in.
PEER_REQUIREMENTS = ("dlib-bin==20.0.1.post1", "face-recognition-models==0.3.0", "numpy", "pillow", "click",
                     "setuptools<81")  # face_recognition_models imports pkg_resources
PEER_NO_DEPS = ("face-recognition==1.3.0",)
PEER_SCRIPT = Path(__file__).with_name("peer_face_recognition.py")


class PeerUnavailable(RuntimeError):
    """The peer venv could not be built or its run failed; the message says why."""


def peer_python(venv: Path) -> Path:
    """The peer venv's Python, building the venv first when it is missing or was built with
    other requirements (a stamp file records them)."""
    python = venv / "bin" / "python"
    stamp = venv / "peer-requirements.txt"
    wanted = "\n".join(PEER_REQUIREMENTS + PEER_NO_DEPS)
    if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS],
        [str(python), "-m", "pip", "install", "-q", "--no-deps", *PEER_NO_DEPS],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as e:
            raise PeerUnavailable(f"building the face_recognition venv timed out: {' '.join(step)}") from e
        except OSError as e:
            raise PeerUnavailable(f"building the face_recognition venv failed at `{' '.join(step)}`: {e}") from e
        if done.returncode != 0:
            raise PeerUnavailable(f"building the face_recognition venv failed at `{' '.join(step)}`:\n"
                                  f"{(done.stderr or done.stdout)[-2000:]}")
    stamp.write_text(wanted)
    return python


def run_peer(python: Path, photos: list[Path], lfw: list[Path], timeout: float = 3600) -> dict:
    """face_recognition's answer for these files (see benchmarks/peer_face_recognition.py)."""
    job = json.dumps({"photos": [str(p) for p in photos], "lfw": [str(p) for p in lfw], "upsample": 1})
    # One thread for BLAS too: the analyzer's ONNX Runtime threads are the only parallel work timed here.
    env = os.environ | {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    try:
        done = subprocess.run([str(python), str(PEER_SCRIPT)], input=job, capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise PeerUnavailable(f"face_recognition took longer than {timeout:.0f} s") from e
    if done.returncode != 0:
        raise PeerUnavailable(f"face_recognition failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return parse_peer_answer(done.stdout)


def parse_peer_answer(text: str) -> dict:
    """The peer's JSON answer, checked for the fields this benchmark reads."""
    answer = json.loads(text)
    for key, kind in (("library", str), ("photo_seconds", float), ("boxes", list), ("lfw_seconds", float), ("lfw", dict)):
        if not isinstance(answer.get(key), kind):
            raise PeerUnavailable(f"face_recognition's answer lacks {key!r} ({kind.__name__})")
    for boxes in answer["boxes"]:
        if any(len(box) != 4 for box in boxes):
            raise PeerUnavailable("face_recognition's answer has a box that is not [x1, y1, x2, y2]")
    return answer


@dataclass(frozen=True)
class Side:
    """One library's figures."""

    name: str
    ms_per_photo: float
    faces: int
    on_wider_boxes: int  # faces that match a WIDER box (IoU >= 0.5)
    lfw_accuracy: float
    lfw_threshold: float
    lfw_metric: str
    lfw_no_face: int
    lfw_ms_per_image: float


def pick_pairs(csv_path: Path, n: int) -> list:
    """n pairs, half same and half different, evenly spread over the file (its order is by name)."""
    from gpu_workers.evaluation import read_pairs

    pairs = read_pairs(csv_path)
    out = []
    for same in (True, False):
        group = [p for p in pairs if p.same == same]
        take = min(len(group), n // 2)
        out += [group[i * len(group) // take] for i in range(take)] if take else []
    return out


def lfw_figures(vectors: dict[str, np.ndarray | None], train: list, test: list, metric: str) -> tuple[float, float, int]:
    """(test accuracy, threshold chosen on train, images without a face)."""
    from domain.similarity import best_threshold
    from gpu_workers.evaluation import verify_at

    def scores(pairs: list) -> tuple[np.ndarray, np.ndarray]:
        raw = []
        for p in pairs:
            a, b = vectors.get(p.path_a), vectors.get(p.path_b)
            if a is None or b is None:
                raw.append(np.nan)
            else:
                raw.append(float(np.dot(a, b)) if metric == "cosine" else float(np.linalg.norm(a - b)))
        return np.array(raw), np.array([p.same for p in pairs])

    train_raw, train_labels = scores(train)
    ok = ~np.isnan(train_raw)
    threshold, _ = best_threshold(train_raw[ok].tolist(), train_labels[ok].tolist(), metric)
    test_raw, test_labels = scores(test)
    return verify_at(test_raw, test_labels, threshold, metric).accuracy, threshold, sum(v is None for v in vectors.values())


def wider_hits(boxes_per_photo: list[list], truth: list[list[dict]]) -> int:
    from benchmarks.detection import match_image
    from domain.faces import Box

    hits = 0
    for boxes, faces in zip(boxes_per_photo, truth):
        counts = match_image([(Box(*map(float, b)), 1.0) for b in boxes], faces, min_size=24)
        hits += counts["tp_large"] + counts["tp_small"]
    return hits


def run_ours(photos: list[Path], lfw_root: Path, lfw_paths: list[str]) -> tuple[str, float, list[list], dict, float]:
    """The workers' analyzer on the photos (batched as the workers batch) and on the LFW images."""
    from gpu_workers.evaluation import embed_images, read_rgb
    from gpu_workers.worker import make_analyzer

    settings = get_settings()
    analyzer = make_analyzer(settings.model_copy(update={"worker_use_gpu": False}))
    analyzer.analyze([read_rgb(photos[0])])  # warm-up, as the peer's
    batch = settings.worker_batch_size
    boxes: list[list] = []
    started = time.perf_counter()
    for i in range(0, len(photos), batch):
        chunk = photos[i : i + batch]
        for faces in analyzer.analyze([read_rgb(p) for p in chunk]):
            boxes.append([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f, _ in faces])
    photo_seconds = time.perf_counter() - started
    started = time.perf_counter()
    vectors = embed_images(analyzer, lfw_root, lfw_paths, batch=batch)
    lfw_seconds = time.perf_counter() - started
    name = (f"this project: {analyzer.detector_name} + {analyzer.embedder_name}, flip {'on' if analyzer.embedder.flip else 'off'}, "
            f"{settings.worker_threads} threads")
    return name, photo_seconds, boxes, vectors, lfw_seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=60, help="WIDER FACE photos (of 100)")
    parser.add_argument("--lfw-pairs", type=int, default=1000, help="pairs from each of pairs_dev_train and pairs_dev_test")
    parser.add_argument("--quick", action="store_true", help="3 photos and 20 LFW pairs a file (a smoke run)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--peer-venv", type=Path, default=None, help="default: var_dir/peers-venv")
    args = parser.parse_args(argv)
    if args.quick:
        args.photos, args.lfw_pairs = 3, 20
    settings = get_settings()
    data_dir = args.data_dir or settings.data_dir
    wider = json.loads((data_dir / "wider" / "boxes.json").read_text())[: args.photos]
    photos = [data_dir / "wider" / entry["path"] for entry in wider]
    truth = [entry["faces"] for entry in wider]
    lfw_root = data_dir / "lfw"
    train = pick_pairs(lfw_root / "pairs_dev_train.csv", args.lfw_pairs)
    test = pick_pairs(lfw_root / "pairs_dev_test.csv", args.lfw_pairs)
    lfw_paths = sorted({p.path_a for p in train + test} | {p.path_b for p in train + test})

    python = peer_python(args.peer_venv or settings.var_dir / "peers-venv")
    load = os.getloadavg()
    ours_name, ours_s, ours_boxes, ours_vectors, ours_lfw_s = run_ours(photos, lfw_root, lfw_paths)
    peer = run_peer(python, photos, [lfw_root / p for p in lfw_paths])
    answered = peer["lfw"]
    peer_vectors = {p: None if answered.get(str(lfw_root / p)) is None else np.array(answered[str(lfw_root / p)]) for p in lfw_paths}

    sides = []
    for name, seconds, boxes, vectors, lfw_s, metric in (
        (ours_name, ours_s, ours_boxes, ours_vectors, ours_lfw_s, "cosine"),
        (peer["library"], peer["photo_seconds"], peer["boxes"], peer_vectors, peer["lfw_seconds"], "l2"),
    ):
        accuracy, threshold, no_face = lfw_figures(vectors, train, test, metric)
        sides.append(Side(name, 1000 * seconds / len(photos), sum(len(b) for b in boxes), wider_hits(boxes, truth),
                          accuracy, threshold, metric, no_face, 1000 * lfw_s / len(lfw_paths)))
    ours, theirs = sides
    load_after = os.getloadavg()

    labelled = sum(1 for faces in truth for f in faces if not f.get("invalid"))
    print(f"{len(photos)} WIDER FACE photos ({labelled} labelled faces), LFW View 1: {len(train)} train pairs choose the "
          f"threshold, {len(test)} test pairs ({len(lfw_paths)} images); {machine()}; "
          f"load average {load[0]:.2f} before, {load_after[0]:.2f} after")
    print_table(
        ["", "ms per photo", "faces found", "on a WIDER box", "LFW test accuracy", "threshold", "LFW no-face images", "LFW ms per image"],
        [[s.name, f"{s.ms_per_photo:.0f}", s.faces, s.on_wider_boxes, f"{100 * s.lfw_accuracy:.1f} %",
          f"{s.lfw_threshold:.3f} ({s.lfw_metric})", s.lfw_no_face, f"{s.lfw_ms_per_image:.0f}"] for s in sides]
        + [["ratio (face_recognition / this project)", f"{theirs.ms_per_photo / ours.ms_per_photo:.2f}",
            f"{theirs.faces / ours.faces:.2f}" if ours.faces else "-",
            f"{theirs.on_wider_boxes / ours.on_wider_boxes:.2f}" if ours.on_wider_boxes else "-",
            f"{100 * (theirs.lfw_accuracy - ours.lfw_accuracy):+.1f} points", "", "",
            f"{theirs.lfw_ms_per_image / ours.lfw_ms_per_image:.2f}"]],
    )
    out = {
        "benchmark": "peers", "photos": len(photos), "labelled_faces": labelled, "lfw_train_pairs": len(train),
        "lfw_test_pairs": len(test), "lfw_images": len(lfw_paths), "machine": machine(),
        "load_average": [round(load[0], 2), round(load_after[0], 2)],
        "sides": {key: s.__dict__ for key, s in zip(("ours", "face_recognition"), sides)},
        "speedup": round(theirs.ms_per_photo / ours.ms_per_photo, 2),
    }
    print_json(out)
    return out


if __name__ == "__main__":
    main()
