"""The analysis worker: consumes `AnalysePhoto` commands in batches, detects, aligns and
embeds every face, and answers through the command handlers (`FaceSearchApp.record_faces`).

Workers are members of one consumer group on the command topic, so the broker shares the
partitions between them. A batch's offsets are committed only after every photo in it is
recorded: a worker killed mid-batch leaves its photos to the next owner of the partition,
and the event store refuses a second analysis of the same photo (`record_faces` returns
False), so each photo is processed once in effect.

Within a batch, decoding runs in a thread pool while the model works on the images decoded
so far (one inference thread), so the model never waits for more than one image's decode.

A worker process of its own is `facesearch run worker` (facesearch/worker_process.py).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import cv2
import numpy as np
from loguru import logger

from commands.app import FaceSearchApp
from commands.policies import AnalysePhoto
from gpu_workers.analyzer import FaceAnalyzer
from gpu_workers.weights import read_manifest


class UndecodableImage(Exception):
    """Stored bytes that the decoder cannot turn into pixels."""


def decode_rgb(data: bytes) -> np.ndarray:
    """JPEG/PNG/WEBP bytes -> RGB uint8, EXIF orientation applied (boxes refer to this image)."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UndecodableImage("the decoder could not read the stored image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def model_version(models_dir: Any, model: str) -> str:
    """The first 12 hex digits of the model's weight file SHA-256 (from its manifest)."""
    try:
        files = read_manifest(models_dir, model).get("files", {})
    except (OSError, ValueError):
        return "unknown"
    onnx = sorted(sha for name, sha in files.items() if name.endswith(".onnx")) or sorted(files.values())
    return onnx[0][:12] if onnx else "unknown"


@dataclass
class WorkerStats:
    batches: int = 0
    photos: int = 0
    faces: int = 0
    recorded: int = 0  # analyses this worker wrote to the event store
    redelivered: int = 0  # photos already analysed (by us before a crash, or by another worker)
    failed: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "detect": 0.0, "align": 0.0, "embed": 0.0, "record": 0.0})
    idle_model_s: float = 0.0  # time the model waited for a decode inside batches

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class _Decoded:
    command: AnalysePhoto
    image: np.ndarray | None
    decode_s: float
    error: str = ""
    skip: bool = False


class WorkerObserver(Protocol):
    """Where a worker reports what it did (the composition root plugs metrics in here)."""

    def batch(self, size: int) -> None: ...

    def stages(self, seconds: dict[str, float], images: int) -> None: ...

    def photo(self, photo_id: str, outcome: str, faces: int) -> None: ...


class _NoObserver:
    def batch(self, size: int) -> None:
        pass

    def stages(self, seconds: dict[str, float], images: int) -> None:
        pass

    def photo(self, photo_id: str, outcome: str, faces: int) -> None:
        pass


class FaceWorker:
    """Analyses batches of `AnalysePhoto` commands and records the results as events."""

    def __init__(
        self, app: FaceSearchApp, analyzer: FaceAnalyzer, *, decode_threads: int = 2, name: str = "worker",
        observer: WorkerObserver | None = None,
    ) -> None:
        self.app = app
        self.observer = observer or _NoObserver()
        self.analyzer = analyzer
        self.name = name
        self.stats = WorkerStats()
        self.detector_version = model_version(analyzer.models_dir, analyzer.detector_name)
        self.embedder_version = model_version(analyzer.models_dir, analyzer.embedder_name)
        self._decode_pool = ThreadPoolExecutor(decode_threads, thread_name_prefix=f"{name}-decode")
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-model")  # one model user at a time
        self._record_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-record")

    def close(self) -> None:
        for pool in (self._decode_pool, self._model_pool, self._record_pool):
            pool.shutdown(wait=False, cancel_futures=True)

    # One batch --------------------------------------------------------------------------------

    async def handle_batch(self, bodies: list[dict[str, Any]]) -> None:
        """Analyses and records every photo of the batch; raises only when recording failed
        (then the batch is not acknowledged and comes again)."""
        commands = list({c.photo_id: c for c in map(AnalysePhoto.from_dict, bodies)}.values())  # same photo twice: once
        if not commands:
            return
        loop = asyncio.get_running_loop()
        self.stats.batches += 1
        self.observer.batch(len(commands))
        decoding = [loop.run_in_executor(self._decode_pool, self._decode, c) for c in commands]
        recording: list[asyncio.Future[None]] = []
        pending = list(decoding)
        while pending:
            wait_start = time.perf_counter()
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if recording or self.stats.photos:
                self.stats.idle_model_s += time.perf_counter() - wait_start
            ready = [f for f in pending if f.done()]  # everything decoded so far, in order
            pending = [f for f in pending if not f.done()]
            decoded = [f.result() for f in ready]
            results = await loop.run_in_executor(self._model_pool, self._analyse, [d for d in decoded if d.image is not None])
            for item in decoded:
                recording.append(loop.run_in_executor(self._record_pool, self._record, item, results.get(item.command.photo_id)))
        await asyncio.gather(*recording)

    def _decode(self, command: AnalysePhoto) -> _Decoded:
        start = time.perf_counter()
        if self._already_analysed(command.photo_id):  # a redelivered command: no need to run the models
            return _Decoded(command, None, 0.0, "", skip=True)
        try:
            image = decode_rgb(self.app.blobs.get(command.content_hash))
        except Exception as error:  # a missing or corrupt blob fails this photo, not the batch
            return _Decoded(command, None, time.perf_counter() - start, f"{type(error).__name__}: {error}")
        return _Decoded(command, image, time.perf_counter() - start)

    def _already_analysed(self, photo_id: str) -> bool:
        try:
            return not self.app.get_photo(UUID(photo_id)).needs_analysis
        except Exception:  # unknown here yet: let record_faces decide
            return False

    def _analyse(self, decoded: list[_Decoded]) -> dict[str, tuple[list, dict[str, float]]]:
        """photo id -> (faces with vectors, per-photo stage milliseconds)."""
        if not decoded:
            return {}
        analysed = self.analyzer.analyze([d.image for d in decoded])
        t = self.analyzer.timings
        n_images, n_faces = max(len(decoded), 1), max(t.faces, 1)
        for stage in ("detect", "align", "embed"):
            self.stats.seconds[stage] += getattr(t, stage)
        self.observer.stages(
            {"decode": sum(d.decode_s for d in decoded), "detect": t.detect, "align": t.align, "embed": t.embed},
            len(decoded),
        )
        out = {}
        for item, faces in zip(decoded, analysed):
            self.stats.seconds["decode"] += item.decode_s
            timing = {
                "decode": item.decode_s * 1000,
                "detect": t.detect / n_images * 1000,
                "align": t.align / n_faces * len(faces) * 1000,
                "embed": t.embed / n_faces * len(faces) * 1000,
            }
            out[item.command.photo_id] = (faces, timing)
        return out

    def _record(self, item: _Decoded, result: tuple[list, dict[str, float]] | None) -> None:
        start = time.perf_counter()
        photo_id = UUID(item.command.photo_id)
        self.stats.photos += 1
        if item.skip:
            self.stats.redelivered += 1
            logger.info("photo {} was already analysed (a redelivery): skipped", photo_id)
            return
        if result is None:
            logger.warning("photo {} could not be analysed: {}", photo_id, item.error)
            self.stats.failed += 1
            self.app.record_analysis_failure(photo_id, item.error or "analysis failed")
            self.observer.photo(str(photo_id), "failed", 0)
            return
        faces, timing = result
        embed_ms_per_face = timing["embed"] / max(len(faces), 1)
        embeddings = [
            dict(
                face_index=index, model=self.analyzer.model_name, model_version=self.embedder_version,
                dimension=int(vector.shape[0]),
                vector_b64=_b64(vector), timing_ms=round(embed_ms_per_face, 3),
            )
            for index, (_, vector) in enumerate(faces)
        ]
        recorded = self.app.record_faces(
            photo_id, self.analyzer.detector_name, self.detector_version, [face.to_dict() for face, _ in faces],
            embeddings, {k: round(v, 3) for k, v in timing.items()},
        )
        self.stats.seconds["record"] += time.perf_counter() - start
        if not recorded:
            self.stats.redelivered += 1
            logger.info("photo {} was already analysed (a redelivery): skipped", photo_id)
            return
        self.stats.recorded += 1
        self.stats.faces += len(faces)
        self.observer.photo(str(photo_id), "faces" if faces else "no_faces", len(faces))
        if faces:
            logger.debug("{}: photo {} has {} faces", self.name, photo_id, len(faces))
        else:
            logger.info("photo {} has no faces: it goes to the 'no faces' category", photo_id)


def _b64(vector: np.ndarray) -> str:
    import base64

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def make_analyzer(settings: Any, embedder: str | None = None) -> FaceAnalyzer:
    return FaceAnalyzer(
        settings.detector, embedder or settings.embedder, settings.models_dir,
        threads=settings.worker_threads, use_gpu=settings.worker_use_gpu,
    )


def attach_worker(transport: Any, settings: Any, worker: FaceWorker) -> Any:
    """Subscribes `worker` to the analysis commands as a member of the workers' group."""
    return transport.subscribe_batches(
        transport.command_topic("analyse"), f"{settings.consumer_group}.workers", worker.handle_batch,
        max_records=settings.worker_batch_size, max_wait_ms=settings.worker_max_wait_ms,
        session_timeout_ms=settings.worker_session_timeout_ms,
    )
