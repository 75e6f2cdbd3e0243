"""The one place an ONNX Runtime session is made: models never choose where they run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

# Preference order; only those the installed onnxruntime build offers are used.
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_gpu_preference: tuple[str, ...] = GPU_PROVIDERS
# cuDNN's exhaustive algorithm search runs again for every new input shape; the embedder's batch
# is the number of faces found, which changes from call to call, so the heuristic choice is used.
PROVIDER_OPTIONS: dict[str, dict[str, Any]] = {"CUDAExecutionProvider": {"cudnn_conv_algo_search": "HEURISTIC"}}


def prefer_gpu_providers(names: Sequence[str]) -> None:
    """Sessions made from now on use only these GPU providers, in this order (a benchmark of
    the CUDA provider alone passes ("CUDAExecutionProvider",)); unknown names are refused."""
    global _gpu_preference
    unknown = set(names) - set(GPU_PROVIDERS)
    if unknown:
        raise ValueError(f"not a GPU provider of this runtime: {', '.join(sorted(unknown))}")
    _gpu_preference = tuple(names)


def available_providers(use_gpu: bool = True) -> list[str]:
    offered = ort.get_available_providers()
    chosen = [p for p in _gpu_preference if use_gpu and p in offered]
    return chosen + ["CPUExecutionProvider"]


def create_session(model: Path | str | bytes, threads: int = 2, use_gpu: bool = True) -> ort.InferenceSession:
    """An inference session on the best provider present (TensorRT, CUDA, else CPU), with
    `threads` intra-op threads for the CPU parts."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle intra-op threads sleep instead of spinning: every model of the process (the workers',
    # the searches') has its own pool on the same few cores, and spinning ones starve the rest.
    # benchmarks.ingest --photos 300: 36.2 s instead of 40.8 s; a soak with 20 search clients:
    # search p50 649 ms instead of 1,463 ms and 3x the uploads in the same 3 minutes.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    providers = available_providers(use_gpu)
    return ort.InferenceSession(
        source, sess_options=options, providers=providers, provider_options=[PROVIDER_OPTIONS.get(p, {}) for p in providers],
    )
