"""Numerical check of the FaceNet conversion: the ONNX model against the original frozen
graph run by OpenCV DNN (batch 1), on real face crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gpu_workers.embedders.base import crop_with_margin, l2_normalise
from gpu_workers.runtime import create_session


def face_crops(models_dir: Path, images: list[np.ndarray], size: int = 160, margin: float = 32.0) -> np.ndarray:
    """FaceNet crops of every face RetinaFace finds in these RGB images."""
    from gpu_workers.detectors.retinaface import RetinaFaceDetector

    detector = RetinaFaceDetector(models_dir, use_gpu=False)
    crops = [crop_with_margin(im, f, size, margin) for im in images for f in detector.detect(im)]
    return np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)


def facenet_parity(pb: Path, onnx_path: Path, crops: np.ndarray, threads: int = 2) -> float:
    """The lowest cosine between original-graph and ONNX embeddings over these crops
    (uint8 RGB, 160x160); the ONNX side runs them as one batch."""
    if len(crops) == 0:
        raise ValueError("parity needs at least one face crop")
    x = ((crops.astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)
    net = cv2.dnn.readNetFromTensorflow(str(pb))
    reference = []
    for face in x:
        net.setInput(face[None])
        reference.append(net.forward().reshape(-1))
    session = create_session(onnx_path, threads, use_gpu=False)
    converted = session.run(None, {session.get_inputs()[0].name: x})[0]
    cos = np.sum(l2_normalise(np.array(reference)) * l2_normalise(converted), axis=1)
    return float(cos.min())
