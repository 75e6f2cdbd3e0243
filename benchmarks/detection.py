"""Face detection precision and recall on annotated photos.

    python -m benchmarks.detection --boxes JSON --root DIR [--detector NAME] [--no-faces DIR]

JSON: a list of {"path", "faces": [{"x","y","w","h","invalid",...}]} (WIDER FACE style),
paths relative to --root. A detection is a hit when it overlaps a ground-truth box at
IoU >= 0.5 (greedy, best score first). Precision and recall are reported on valid faces
at least --min-size px (shorter side), and recall separately for smaller valid faces; a
detection that matches an invalid or small box counts neither as hit nor as false positive.
--no-faces DIR (repeatable) counts detections on photos without people. --thresholds
evaluates several score thresholds from one detection run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks._common import default_models_dir, machine, parse_options, print_json, print_table
from domain.faces import Box
from gpu_workers.evaluation import read_rgb
from gpu_workers.registry import detector_class

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def match_image(detections: list[tuple[Box, float]], truth: list[dict], min_size: float, iou_min: float = 0.5) -> dict:
    """Counts for one image: hits and misses per category, false positives."""
    gt = [Box(f["x"], f["y"], f["x"] + f["w"], f["y"] + f["h"]) for f in truth]
    kind = ["invalid" if f.get("invalid") else ("large" if min(f["w"], f["h"]) >= min_size else "small") for f in truth]
    used = [False] * len(gt)
    hits = {"large": 0, "small": 0}
    false_positives = 0
    for box, _ in sorted(detections, key=lambda d: -d[1]):
        best, best_iou = -1, iou_min
        for j, g in enumerate(gt):
            if not used[j]:
                iou = box.iou(g)
                if iou >= best_iou:
                    best, best_iou = j, iou
        if best < 0:
            false_positives += 1
            continue
        used[best] = True
        if kind[best] in hits:
            hits[kind[best]] += 1
    return {"tp_large": hits["large"], "tp_small": hits["small"], "fp": false_positives,
            "n_large": kind.count("large"), "n_small": kind.count("small")}


def evaluate(per_image: list[tuple[list[tuple[Box, float]], list[dict]]], threshold: float, min_size: float) -> dict:
    totals = {"tp_large": 0, "tp_small": 0, "fp": 0, "n_large": 0, "n_small": 0}
    for detections, truth in per_image:
        counts = match_image([d for d in detections if d[1] >= threshold], truth, min_size)
        for k in totals:
            totals[k] += counts[k]
    tp = totals["tp_large"]
    return {
        "threshold": threshold,
        "precision": tp / (tp + totals["fp"]) if tp + totals["fp"] else 0.0,
        "recall": tp / totals["n_large"] if totals["n_large"] else 0.0,
        "recall_small": totals["tp_small"] / totals["n_small"] if totals["n_small"] else 0.0,
        **totals,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--detector", default="retinaface")
    parser.add_argument("--no-faces", type=Path, action="append", default=[])
    parser.add_argument("--min-size", type=float, default=24.0)
    parser.add_argument("--thresholds", default="", help="comma-separated score thresholds (default: the detector's)")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--detector-option", action="append", default=[], metavar="KEY=VALUE",
                        help="e.g. input_size=1280, upscale=true, scales=1,2, min_face_size=12")
    args = parser.parse_args(argv)

    options = parse_options(args.detector_option)
    thresholds = [float(t) for t in args.thresholds.split(",") if t]
    if thresholds:
        options["score_threshold"] = min(thresholds)
    detector = detector_class(args.detector)(args.models_dir or default_models_dir(), threads=args.threads, use_gpu=False, **options)
    thresholds = thresholds or [detector.score_threshold]

    entries = json.loads(Path(args.boxes).read_text())
    per_image = []
    started = time.perf_counter()
    for i in range(0, len(entries), args.batch):
        chunk = entries[i : i + args.batch]
        results = detector.detect_batch([read_rgb(args.root / e["path"]) for e in chunk])
        for entry, faces in zip(chunk, results):
            per_image.append(([(f.box, f.score) for f in faces], entry["faces"]))
    seconds = time.perf_counter() - started
    rows = [evaluate(per_image, t, args.min_size) for t in thresholds]

    no_faces = []
    for folder in args.no_faces:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        scored = [[f.score for f in detector.detect(read_rgb(p))] for p in paths]
        for t in thresholds:
            counts = [sum(s >= t for s in scores) for scores in scored]
            no_faces.append({"folder": str(folder), "threshold": t, "images": len(paths),
                             "false_positives": int(sum(counts)), "images_with_faces": int(sum(c > 0 for c in counts)),
                             "files": [p.name for p, c in zip(paths, counts) if c]})

    print(f"Detection: {args.boxes} ({len(entries)} photos), {args.detector} {options or ''}, IoU 0.5, "
          f"valid faces >= {args.min_size:g} px; {machine()}; {1000 * seconds / len(entries):.0f} ms/photo")
    print_table(
        ["detector", "threshold", "precision", f"recall >={args.min_size:g}px", f"recall <{args.min_size:g}px",
         "hits", "false pos.", f"faces >={args.min_size:g}px", f"faces <{args.min_size:g}px"],
        [[args.detector, r["threshold"], r["precision"], r["recall"], r["recall_small"], r["tp_large"], r["fp"],
          r["n_large"], r["n_small"]] for r in rows],
    )
    if no_faces:
        print()
        print_table(["folder", "threshold", "photos", "false positives", "photos with a face", "files"],
                    [[n["folder"], n["threshold"], n["images"], n["false_positives"], n["images_with_faces"],
                      " ".join(n["files"][:6])] for n in no_faces])
    out = {"benchmark": "detection", "boxes": str(args.boxes), "detector": args.detector,
           "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
           "min_size": args.min_size, "results": rows, "no_faces": no_faces,
           "ms_per_photo": round(1000 * seconds / len(entries), 1), "machine": machine()}
    print_json(out)
    return out


if __name__ == "__main__":
    main()
