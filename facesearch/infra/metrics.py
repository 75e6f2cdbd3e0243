"""Every Prometheus metric the system exports, and small helpers to record them.

One module so that a dashboard, an alert rule and the built-in monitoring page can be
checked against one list. Instrument code with the helpers, not by creating metrics:

    from facesearch.infra import metrics

    with metrics.observe_stage("detect", batch=len(images)):
        boxes = detector.detect(images)
    metrics.photo_processed("faces" if boxes else "no_faces", faces=len(boxes), photo_id=photo.id)
    metrics.error("decode")

Processes that share a port (several uvicorn workers) export through the multiprocess
mode of prometheus-client: set PROMETHEUS_MULTIPROC_DIR to an empty directory, per
container, before the process starts (the library reads it at import time). Every gauge
here names its multiprocess mode, so the numbers add up either way.

GPU gauges exist only on a machine where NVML finds a GPU: absent, never zero-filled.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401  (re-exported for /metrics)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "facesearch"

# The pipeline's stages, in order; `facesearch_stage_seconds{stage}` takes exactly these.
STAGES = ("download", "decode", "detect", "align", "embed", "index", "project")
# Error kinds are free-form but short and stable: "download", "decode", "detect", "embed",
# "index", "project", "relay", "broker", "http", "import". Dashboards group by them.

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# --- throughput --------------------------------------------------------------------------

PHOTOS_PROCESSED = Counter(
    f"{PREFIX}_photos_processed",
    "Photos that finished analysis, by outcome: faces | no_faces | rejected.",
    ["outcome"],
)
FACES_PROCESSED = Counter(
    f"{PREFIX}_faces_processed",
    "Faces detected and embedded.",
)
PHOTOS_IMPORTED = Counter(
    f"{PREFIX}_photos_imported",
    "Photos stored by importers (before analysis), by source: vk | yadisk | local | upload.",
    ["source"],
)

# --- latency -----------------------------------------------------------------------------

STAGE_SECONDS = Histogram(
    f"{PREFIX}_stage_seconds",
    "Wall time of one pipeline stage for one batch (or one photo where there is no batch).",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    f"{PREFIX}_batch_size",
    "Items per batch handed to a stage (images to the detector, faces to the embedder, ...).",
    ["stage"],
    buckets=BATCH_BUCKETS,
)
# Each stage's series exist at 0 from the start: a stage first used in one burst between two
# scrapes would otherwise appear already at N, and rate() would never see that burst.
for _stage in STAGES:
    STAGE_SECONDS.labels(_stage)
    BATCH_SIZE.labels(_stage)
SEARCH_SECONDS = Histogram(
    f"{PREFIX}_search_seconds",
    "Time to answer one face search, from request to ranked results.",
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUEST_SECONDS = Histogram(
    f"{PREFIX}_http_request_seconds",
    "API request latency by method, route template and status code.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)

# --- lag ---------------------------------------------------------------------------------

CONSUMER_LAG = Gauge(
    f"{PREFIX}_consumer_lag",
    "Messages published to a topic partition and not yet handled by a consumer group.",
    ["group", "topic", "partition"],
    multiprocess_mode="livemax",
)
RELAY_LAG = Gauge(
    f"{PREFIX}_relay_lag_events",
    "Events in the event store that the outbox relay has not published yet.",
    multiprocess_mode="livemax",
)
PROJECTION_LAG = Gauge(
    f"{PREFIX}_projection_lag_events",
    "Published events a projection has not applied yet (all its topic partitions).",
    ["projection"],
    multiprocess_mode="livemax",
)
RELAY_PUBLISHED = Counter(f"{PREFIX}_relay_published_events", "Events the outbox relay published.")
RELAY_REWINDS = Counter(f"{PREFIX}_relay_rewinds", "Times the relay republished from a stalled consumer's position.")
PROJECTION_EVENTS = Counter(
    f"{PREFIX}_projection_events",
    "Messages handed to a projection, by outcome: applied | duplicate | gap.",
    ["projection", "outcome"],
)

# --- errors and resources ----------------------------------------------------------------

ERRORS = Counter(f"{PREFIX}_errors", "Errors by kind (see the module docstring).", ["kind"])

PROCESS_CPU = Counter(
    f"{PREFIX}_process_cpu_seconds",
    "CPU time (user + system) spent by the processes of a role: api | relay | projections | worker | embedded.",
    ["role"],
)
PROCESS_MEMORY = Gauge(
    f"{PREFIX}_process_resident_memory_bytes",
    "Resident memory of the live processes of a role.",
    ["role"],
    multiprocess_mode="livesum",
)

# Created by start_resource_sampler() only when NVML finds a GPU.
GPU_METRIC_NAMES = (
    f"{PREFIX}_gpu_utilization_ratio",
    f"{PREFIX}_gpu_memory_used_bytes",
    f"{PREFIX}_gpu_memory_total_bytes",
)
_gpu_gauges: dict[str, Gauge] = {}


# --- helpers -----------------------------------------------------------------------------


@contextlib.contextmanager
def observe_stage(stage: str, *, batch: int | None = None) -> Iterator[None]:
    """Times the block as one `stage` (one of STAGES); records the batch size when given.
    An exception inside counts as an error of kind `stage` and propagates."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    if batch is not None:
        BATCH_SIZE.labels(stage).observe(batch)
    started = time.perf_counter()
    try:
        yield
    except Exception:
        ERRORS.labels(stage).inc()
        raise
    finally:
        STAGE_SECONDS.labels(stage).observe(time.perf_counter() - started)


def stage_seconds(stage: str, seconds: float, *, batch: int | None = None) -> None:
    """Records a stage timing measured elsewhere (e.g. the analyzer's StageTimings)."""
    if batch is not None:
        BATCH_SIZE.labels(stage).observe(batch)
    STAGE_SECONDS.labels(stage).observe(seconds)


def photo_processed(outcome: str, *, faces: int = 0, photo_id: str | None = None, model: str | None = None) -> None:
    """One photo done: outcome is faces | no_faces | rejected. A no_faces photo with its
    id also gets its "no faces" log line here, so no caller forgets it."""
    PHOTOS_PROCESSED.labels(outcome).inc()
    if outcome == "no_faces" and photo_id is not None:
        from facesearch.infra.logging import log_no_faces

        log_no_faces(photo_id, model=model)
    if faces:
        FACES_PROCESSED.inc(faces)


class WorkerMetrics:
    """The analysis workers' observer (gpu_workers.worker.WorkerObserver): batch sizes,
    per-stage seconds per image, and photos by outcome with their faces."""

    def __init__(self) -> None:
        # A worker's series exist at zero from its start, so its first photos are an
        # increase that rate() sees (a series born with its final count shows no rate).
        for stage in ("decode", "detect", "align", "embed"):
            STAGE_SECONDS.labels(stage)
        for outcome in ("faces", "no_faces"):
            PHOTOS_PROCESSED.labels(outcome)
        BATCH_SIZE.labels("detect")

    def batch(self, size: int) -> None:
        BATCH_SIZE.labels("detect").observe(size)

    def stages(self, seconds: dict[str, float], images: int) -> None:
        for stage, total in seconds.items():
            if total <= 0:  # nothing done in this stage (no faces to align or embed)
                continue
            for _ in range(max(images, 1)):  # one observation per image: quantiles per photo
                STAGE_SECONDS.labels(stage).observe(total / max(images, 1))

    def photo(self, photo_id: str, outcome: str, faces: int) -> None:
        if outcome == "failed":
            error("analysis")
            return
        photo_processed(outcome, faces=faces, photo_id=photo_id)


def photo_imported(source: str) -> None:
    PHOTOS_IMPORTED.labels(source).inc()


def error(kind: str) -> None:
    ERRORS.labels(kind).inc()


def search_answered(seconds: float) -> None:
    """One search answered with ranked results (REST, GraphQL and the CLI all search
    through facesearch.services.search.FaceSearcher.search, which calls this)."""
    SEARCH_SECONDS.observe(seconds)


def set_consumer_lag(group: str, topic: str, partition: int, lag: int) -> None:
    CONSUMER_LAG.labels(group, topic, str(partition)).set(max(lag, 0))


# --- exposition --------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    # The library's own switch, read once at its import; we only look at it.
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def collecting_registry() -> Any:
    """The registry to read: this process's, or one that collects every process sharing
    PROMETHEUS_MULTIPROC_DIR."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return DEFAULT_REGISTRY


def exposition() -> bytes:
    """The text format for /metrics: this process, or every process sharing the directory."""
    return generate_latest(collecting_registry())


def mark_process_dead(pid: int) -> None:
    """Gunicorn's child_exit hook: drop a dead worker's live gauges."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """A bare /metrics server for processes without the API (relay, projections, workers)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr, registry=collecting_registry())


# --- resources ---------------------------------------------------------------------------


@dataclass
class _CpuClock:
    last: float = 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: peak RSS is the best the standard library offers
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Nvml:
    """NVML through nvidia-ml-py; None when the library or a GPU is missing."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        if not self.handles:
            raise RuntimeError("NVML sees no GPU")

    @classmethod
    def open(cls) -> _Nvml | None:
        try:
            return cls()
        except Exception as error:  # ImportError, NVMLError_LibraryNotFound, no GPU
            logger.debug("no GPU metrics: {}", error)
            return None

    def sample(self) -> None:
        for index, handle in enumerate(self.handles):
            gpu = str(index)
            util = self.nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            _gpu_gauges["utilization"].labels(gpu).set(util.gpu / 100.0)
            _gpu_gauges["used"].labels(gpu).set(memory.used)
            _gpu_gauges["total"].labels(gpu).set(memory.total)


def _gpu_metrics() -> None:
    if _gpu_gauges:
        return
    _gpu_gauges["utilization"] = Gauge(GPU_METRIC_NAMES[0], "GPU utilisation (0..1) from NVML.", ["gpu"], multiprocess_mode="livemax")
    _gpu_gauges["used"] = Gauge(GPU_METRIC_NAMES[1], "GPU memory in use from NVML.", ["gpu"], multiprocess_mode="livemax")
    _gpu_gauges["total"] = Gauge(GPU_METRIC_NAMES[2], "GPU memory size from NVML.", ["gpu"], multiprocess_mode="livemax")


_sampler: threading.Thread | None = None


def sample_resources(role: str, clock: _CpuClock, nvml: _Nvml | None) -> None:
    now = _cpu_seconds()
    PROCESS_CPU.labels(role).inc(max(now - clock.last, 0.0))
    clock.last = now
    PROCESS_MEMORY.labels(role).set(_resident_bytes())
    if nvml is not None:
        try:
            nvml.sample()
        except Exception as error:
            logger.warning("NVML sampling failed: {}", error)


def start_resource_sampler(role: str, interval: float = 5.0) -> None:
    """Samples CPU, memory and (where NVML finds one) GPU every `interval` seconds in a
    daemon thread. Idempotent within a process."""
    global _sampler
    if _sampler is not None and _sampler.is_alive():
        return
    nvml = _Nvml.open()
    if nvml is not None:
        _gpu_metrics()
    clock = _CpuClock()
    sample_resources(role, clock, nvml)

    def loop() -> None:
        while True:
            time.sleep(interval)
            sample_resources(role, clock, nvml)

    _sampler = threading.Thread(target=loop, name="metrics-resources", daemon=True)
    _sampler.start()


def families() -> dict[str, Any]:
    """Name -> metric object for every family defined here (GPU ones only once created)."""
    found = {m._name: m for m in globals().values() if isinstance(m, Counter | Gauge | Histogram)}
    found.update({g._name: g for g in _gpu_gauges.values()})
    return found
