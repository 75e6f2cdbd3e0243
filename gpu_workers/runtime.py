"""The one place an ONNX Runtime session is made: models never choose where they run."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

# Preference order; only those the installed onnxruntime build offers are used.
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def available_providers(use_gpu: bool = True) -> list[str]:
    offered = ort.get_available_providers()
    chosen = [p for p in GPU_PROVIDERS if use_gpu and p in offered]
    return chosen + ["CPUExecutionProvider"]


def create_session(model: Path | str | bytes, threads: int = 2, use_gpu: bool = True) -> ort.InferenceSession:
    """An inference session on the best provider present (TensorRT, CUDA, else CPU), with
    `threads` intra-op threads for the CPU parts."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=available_providers(use_gpu))
