"""The analysis worker: consumes `AnalysePhoto` commands in batches, detects, aligns and
embeds every face, and answers through the command handlers (`FaceSearchApp.record_faces`).

Every face is embedded with each configured model: the primary analyzer detects, the others
align and embed the same faces (`FaceAnalyzer.embed_faces`), and all the vectors are recorded
in the one save that records the faces. `EmbedPhoto` commands (a model added to an archive
that already exists, see commands/reembedding.py) embed a photo's stored faces, without
detection, with one model; a redelivered one records nothing (`Photo.record_embedding`
skips a known model and face).

Workers are members of one consumer group on the command topic, so the broker shares the
partitions between them. A batch's offsets are committed only after every photo in it is
recorded: a worker killed mid-batch leaves its photos to the next owner of the partition,
and the event store refuses a second analysis of the same photo (`record_faces` returns
False), so each photo is processed once in effect.

Within a batch, decoding runs in a thread pool while the model works on the images decoded
so far (one inference thread), so the model never waits for more than one image's decode.
Decoded pixels are held within a budget (`commands.images.PixelBudget`, two images at the
pixel limit): a batch of small files that decode huge (bombs by content) waits for the model
instead of holding batch size × the pixel limit.

A worker process of its own is `facesearch run worker` (facesearch/worker_process.py).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from uuid import UUID

import numpy as np
from loguru import logger

from commands.app import FaceSearchApp
from commands.images import PixelBudget, decode_rgb, read_header
from commands.policies import AnalysePhoto, EmbedPhoto
from domain.faces import DetectedFace
from gpu_workers.analyzer import FaceAnalyzer
from gpu_workers.weights import read_manifest


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
    reembedded: int = 0  # vectors recorded for EmbedPhoto commands (a model added later)
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
    pixels: int = 0  # of the budget, held while `image` is


@dataclass
class _Analysed:
    faces: list[DetectedFace]
    vectors: dict[str, list[np.ndarray]]  # model -> one vector per face, in face order
    timing_ms: dict[str, float]  # per stage, for this photo
    embed_ms_per_face: dict[str, float]  # model -> embedding milliseconds per face


@dataclass
class _ToEmbed:
    command: EmbedPhoto
    faces: list[tuple[int, DetectedFace]]  # (face index, stored detection) still missing for the model
    image: np.ndarray | None = None
    error: str = ""
    pixels: int = 0  # of the budget, held while `image` is


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
    """Analyses batches of `AnalysePhoto` commands and records the results as events.

    `analyzer` detects and embeds (the primary model); each of `also_embed` embeds the same
    faces with its own model."""

    def __init__(
        self, app: FaceSearchApp, analyzer: FaceAnalyzer, *, decode_threads: int = 2, name: str = "worker",
        observer: WorkerObserver | None = None, also_embed: list[FaceAnalyzer] | tuple[FaceAnalyzer, ...] = (),
    ) -> None:
        self.app = app
        self.observer = observer or _NoObserver()
        self.analyzer = analyzer
        self.analyzers = {a.model_name: a for a in (analyzer, *also_embed)}  # the primary first
        self.name = name
        self.stats = WorkerStats()
        self.detector_version = model_version(analyzer.models_dir, analyzer.detector_name)
        self.embedder_versions = {m: model_version(a.models_dir, a.embedder_name) for m, a in self.analyzers.items()}
        self.embedder_version = self.embedder_versions[analyzer.model_name]
        self._decode_pool = ThreadPoolExecutor(decode_threads, thread_name_prefix=f"{name}-decode")
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-model")  # one model user at a time
        self._record_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-record")
        self._pixels = PixelBudget.for_limit(app.max_image_pixels)  # the worker's own: it holds images longer

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
        try:
            while pending:
                wait_start = time.perf_counter()
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if recording or self.stats.photos:
                    self.stats.idle_model_s += time.perf_counter() - wait_start
                ready = [f for f in pending if f.done()]  # everything decoded so far, in order
                pending = [f for f in pending if not f.done()]
                decoded = [f.result() for f in ready]
                try:
                    results = await loop.run_in_executor(self._model_pool, self._analyse,
                                                         [d for d in decoded if d.image is not None])
                finally:
                    for item in decoded:
                        self._give_back(item)  # analysed: the next decodes may have its pixels
                for item in decoded:
                    recording.append(loop.run_in_executor(self._record_pool, self._record, item,
                                                          results.get(item.command.photo_id)))
            await asyncio.gather(*recording)
        finally:  # a failed or cancelled batch gives back what it decoded, and will decode
            for future in decoding:
                future.add_done_callback(self._give_back_decoded)

    def _give_back(self, item: _Decoded | _ToEmbed) -> None:
        """Drops the item's pixels and returns them to the budget (once)."""
        pixels, item.pixels, item.image = item.pixels, 0, None
        if pixels:
            self._pixels.release(pixels)

    def _give_back_decoded(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None and future.result() is not None:
            self._give_back(future.result())

    def _decoded_within_budget(self, data: bytes) -> tuple[np.ndarray, int]:
        """The header check every entry shares, then the pixels, once the budget has room."""
        pixels = read_header(data, self.app.max_image_pixels).pixels
        self._pixels.acquire(pixels)
        try:
            return decode_rgb(data, self.app.max_image_pixels), pixels
        except BaseException:
            self._pixels.release(pixels)
            raise

    def _decode(self, command: AnalysePhoto) -> _Decoded:
        start = time.perf_counter()
        if self._already_analysed(command.photo_id):  # a redelivered command: no need to run the models
            return _Decoded(command, None, 0.0, "", skip=True)
        try:
            image, pixels = self._decoded_within_budget(self.app.blobs.get(command.content_hash))
        except Exception as error:  # a missing or corrupt blob fails this photo, not the batch
            return _Decoded(command, None, time.perf_counter() - start, f"{type(error).__name__}: {error}")
        return _Decoded(command, image, time.perf_counter() - start, pixels=pixels)

    def _already_analysed(self, photo_id: str) -> bool:
        try:
            return not self.app.get_photo(UUID(photo_id)).needs_analysis
        except Exception:  # unknown here yet: let record_faces decide
            return False

    def _analyse(self, decoded: list[_Decoded]) -> dict[str, _Analysed]:
        """photo id -> its faces, their vectors by model, and stage milliseconds.
        The primary model detects; every other model embeds the faces it found."""
        if not decoded:
            return {}
        images = [cast(np.ndarray, d.image) for d in decoded]  # the caller passes only decoded images
        analysed = self.analyzer.analyze(images)
        detections = [[face for face, _ in faces] for faces in analysed]
        vectors = {self.analyzer.model_name: [[v for _, v in faces] for faces in analysed]}
        t = self.analyzer.timings
        align, embed, embed_s = t.align, t.embed, {self.analyzer.model_name: t.embed}
        for model, other in self.analyzers.items():
            if other is not self.analyzer:
                vectors[model] = [list(v) for v in other.embed_faces(images, detections)]
                align += other.timings.align
                embed += other.timings.embed
                embed_s[model] = other.timings.embed
        n_images, n_faces = max(len(decoded), 1), max(t.faces, 1)
        per_face_ms = {model: seconds / n_faces * 1000 for model, seconds in embed_s.items()}
        self.stats.seconds["detect"] += t.detect
        self.stats.seconds["align"] += align
        self.stats.seconds["embed"] += embed
        self.observer.stages(
            {"decode": sum(d.decode_s for d in decoded), "detect": t.detect, "align": align, "embed": embed},
            len(decoded),
        )
        out = {}
        for k, (item, faces) in enumerate(zip(decoded, detections)):
            self.stats.seconds["decode"] += item.decode_s
            timing = {
                "decode": item.decode_s * 1000,
                "detect": t.detect / n_images * 1000,
                "align": align / n_faces * len(faces) * 1000,
                "embed": embed / n_faces * len(faces) * 1000,
            }
            out[item.command.photo_id] = _Analysed(faces, {m: v[k] for m, v in vectors.items()}, timing, per_face_ms)
        return out

    def _record(self, item: _Decoded, result: _Analysed | None) -> None:
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
        faces, timing = result.faces, result.timing_ms
        embeddings = [
            self._embedding(model, index, vector, result.embed_ms_per_face[model])
            for model, model_vectors in result.vectors.items()
            for index, vector in enumerate(model_vectors)
        ]
        recorded = self.app.record_faces(
            photo_id, self.analyzer.detector_name, self.detector_version, [face.to_dict() for face in faces],
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

    def _embedding(self, model: str, index: int, vector: np.ndarray, timing_ms: float) -> dict[str, Any]:
        return dict(
            face_index=index, model=model, model_version=self.embedder_versions[model], dimension=int(vector.shape[0]),
            vector_b64=_b64(vector), timing_ms=round(timing_ms, 3),
        )

    # Embedding stored faces with a model added later -----------------------------------------

    async def handle_embed_batch(self, bodies: list[dict[str, Any]]) -> None:
        """Embeds the stored faces of each photo with the command's model and records the
        vectors; raises only when recording failed (then the batch comes again)."""
        commands = list({(c.photo_id, c.model): c for c in map(EmbedPhoto.from_dict, bodies)}.values())
        if not commands:
            return
        loop = asyncio.get_running_loop()
        loading = [loop.run_in_executor(self._decode_pool, self._load_for_embedding, c) for c in commands]
        pending = list(loading)
        try:
            while pending:  # what is loaded so far, while the rest waits for the pixel budget
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                items = [f.result() for f in pending if f.done()]
                pending = [f for f in pending if not f.done()]
                todo = [item for item in items if item is not None and item.image is not None]
                try:
                    vectors = await loop.run_in_executor(self._model_pool, self._embed_stored, todo)
                finally:
                    for item in todo:
                        self._give_back(item)
                for loaded in items:
                    if loaded is not None:
                        await loop.run_in_executor(self._record_pool, self._record_embeddings, loaded, vectors.get(id(loaded)))
        finally:  # a failed or cancelled batch gives back what it loaded, and will load
            for future in loading:
                future.add_done_callback(self._give_back_decoded)

    def _load_for_embedding(self, command: EmbedPhoto) -> _ToEmbed | None:
        """The photo's faces still missing for the model, with its pixels; None when there is
        nothing to do (a redelivery, a deleted photo, a model this worker does not have)."""
        if command.model not in self.analyzers:
            logger.warning(
                "{}: no {} model here: EmbedPhoto for photo {} left to another worker", self.name, command.model, command.photo_id
            )
            return None
        try:
            photo = self.app.get_photo(UUID(command.photo_id))
        except Exception as error:  # unknown here: nothing to embed, and no reason to stop the batch
            logger.warning("EmbedPhoto for photo {}: {}", command.photo_id, error)
            return None
        missing = photo.faces_missing(command.model)
        if not missing:
            self.stats.redelivered += 1
            logger.info("photo {} already has its {} vectors (a redelivery): skipped", command.photo_id, command.model)
            return None
        item = _ToEmbed(command, [(i, DetectedFace.from_dict(photo.faces[i])) for i in missing])
        try:
            item.image, item.pixels = self._decoded_within_budget(self.app.blobs.get(command.content_hash))
        except Exception as error:  # a missing or corrupt blob fails this photo, not the batch
            item.error = f"{type(error).__name__}: {error}"
        return item

    def _embed_stored(self, items: list[_ToEmbed]) -> dict[int, tuple[list[np.ndarray], float]]:
        """id(item) -> (its vectors, milliseconds per face), one model call per model."""
        out: dict[int, tuple[list[np.ndarray], float]] = {}
        for model in {item.command.model for item in items}:
            group = [item for item in items if item.command.model == model]
            analyzer = self.analyzers[model]
            vectors = analyzer.embed_faces([i.image for i in group], [[face for _, face in i.faces] for i in group])
            t = analyzer.timings
            self.stats.seconds["align"] += t.align
            self.stats.seconds["embed"] += t.embed
            per_face_ms = (t.align + t.embed) / max(t.faces, 1) * 1000
            for item, item_vectors in zip(group, vectors):
                out[id(item)] = (list(item_vectors), per_face_ms)
        return out

    def _record_embeddings(self, item: _ToEmbed, result: tuple[list[np.ndarray], float] | None) -> None:
        photo_id, model = UUID(item.command.photo_id), item.command.model
        if result is None:
            # Not an analysis failure: the photo's faces stand; the re-embedding pass asks again later.
            logger.warning("photo {} could not be embedded with {}: {}", photo_id, model, item.error or "no vectors")
            self.stats.failed += 1
            return
        vectors, per_face_ms = result
        embeddings = [self._embedding(model, index, v, per_face_ms) for (index, _), v in zip(item.faces, vectors)]
        recorded = self.app.record_embeddings(photo_id, embeddings)
        self.stats.reembedded += recorded
        if not recorded:
            self.stats.redelivered += 1
            logger.info("photo {} already has its {} vectors (a redelivery): skipped", photo_id, model)
        else:
            logger.debug("{}: photo {}: {} faces embedded with {}", self.name, photo_id, recorded, model)


def _b64(vector: np.ndarray) -> str:
    import base64

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def make_analyzer(settings: Any, embedder: str | None = None) -> FaceAnalyzer:
    return FaceAnalyzer(
        settings.detector, embedder or settings.embedder, settings.models_dir,
        threads=settings.worker_threads, use_gpu=settings.worker_use_gpu,
        try_rotations=settings.detect_rotated_photos,
        embedder_options={"allow_noncommercial": settings.allow_noncommercial_weights, "flip": settings.embed_flip},
    )


def make_worker(app: FaceSearchApp, settings: Any, *, name: str = "worker", observer: WorkerObserver | None = None) -> FaceWorker:
    """A worker with an analyzer per configured embedder (`settings.embedders`, primary first);
    only the primary's detector is ever loaded."""
    primary, *others = [make_analyzer(settings, model) for model in settings.embedders]
    return FaceWorker(
        app, primary, decode_threads=settings.worker_decode_threads, name=name, observer=observer, also_embed=others,
    )


# The command topics a worker consumes (the System creates them before workers start).
WORKER_COMMANDS = ("analyse", "embed")


def attach_worker(transport: Any, settings: Any, worker: FaceWorker) -> Any:
    """Subscribes `worker` to the analysis and embedding commands as a member of the workers'
    groups (one group per topic, so each topic's partitions are shared among the workers)."""
    options = dict(
        max_records=settings.worker_batch_size, max_wait_ms=settings.worker_max_wait_ms,
        session_timeout_ms=settings.worker_session_timeout_ms,
    )
    transport.subscribe_batches(
        transport.command_topic("embed"), f"{settings.consumer_group}.workers.embed", worker.handle_embed_batch, **options
    )
    return transport.subscribe_batches(
        transport.command_topic("analyse"), f"{settings.consumer_group}.workers", worker.handle_batch, **options
    )
