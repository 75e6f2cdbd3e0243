"""The composition root: builds every part from the settings and runs them together.

`facesearch up` runs one System in one process on the embedded profile; in production
each part (relay, projections, workers, API) can run as its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any

import sqlalchemy as sa
import tenacity
from loguru import logger

from commands.app import FaceSearchApp
from commands.blobs import BlobStore, DirectoryBlobStore, S3BlobStore
from commands.envelopes import read_envelopes
from commands.policies import AnalysePhoto, EmbedPhoto
from commands.reconciler import Progress, Reconciler, Unfinished
from commands.reembedding import Reembedder
from commands.relay import ConsumerPosition, OutboxRelay, relay_published
from domain.envelope import EventEnvelope, partition_for
from facesearch.infra import metrics, milvus_lite, milvus_server
from facesearch.infra.tansu import TansuBroker
from facesearch.infra.transport import BrokerTransport
from facesearch.services.search import FaceSearcher
from facesearch.settings import Settings, Transport
from projections import queries
from projections.base import Projection
from projections.db import make_engine
from projections.faces import faces_projection
from projections.people import people_projection
from projections.photos import imports_projection, photos_projection
from projections.replay import replay
from projections.runner import Outcome, ProjectionRunner
from projections.tables import checkpoints
from projections.vectors import FaceVectorIndex, IndexConfig, VectorIndexUnavailable, VectorProjection

# The projections that need nothing but the read-model database; each System adds
# "vectors" (the Milvus projection), bound to its own Milvus connection.
PROJECTIONS: dict[str, Projection] = {
    p.name: p for p in (photos_projection, imports_projection, faces_projection, people_projection)
}

# A projection applies what the broker hands it in one transaction of up to this many events,
# waiting this long for a batch to fill: one transaction per event held SQLite's one write lock
# so often that under search load the read models fell behind the workers (docs/benchmarks.md, "Soak").
PROJECTION_BATCH = 100
PROJECTION_BATCH_WAIT_MS = 200


class UnknownProjection(Exception):
    """A projection was asked for by a name no projection has (a user's mistake, unlike a
    `KeyError` raised inside a handler)."""


def make_blob_store(settings: Settings) -> BlobStore:
    if settings.s3_endpoint:
        return S3BlobStore(
            settings.s3_endpoint, settings.s3_bucket,
            settings.s3_access_key.get_secret_value(), settings.s3_secret_key.get_secret_value(),
        )
    return DirectoryBlobStore(settings.resolved_blob_dir())


def index_config(settings: Settings) -> IndexConfig:
    """The Milvus settings, each model's metric its spec's unless settings.model_metrics names another."""
    from gpu_workers.registry import EMBEDDERS

    metrics = {name: cls.spec.metric.upper() for name, cls in EMBEDDERS.items()} | settings.model_metrics
    return IndexConfig.from_settings(settings, metrics)


def make_vector_index(settings: Settings) -> FaceVectorIndex:
    """The configured Milvus. Embedded: the Milvus server under var_dir, started by the first
    process that connects (facesearch/infra/milvus_server.py), or the Milvus Lite file, served
    by a running `facesearch up` when there is one (it cannot be opened twice; see
    facesearch/infra/milvus_lite.py)."""
    config = index_config(settings)
    if not settings.milvus_uri and settings.milvus_embedded == "server":
        if milvus_server.server_binary() is not None:
            embedded = milvus_server.SharedMilvusServer(settings.var_dir)
            return FaceVectorIndex(str(embedded.data_dir), config, lite=False, server=embedded)
        logger.warning(
            "the Milvus server is not installed (pip install 'facesearch[milvus-server]'): using Milvus Lite, "
            "which searches 100,000 faces about 8 times slower (docs/benchmarks.md)"
        )
    if not settings.milvus_uri:
        shared = milvus_lite.running_server(settings.var_dir, settings.resolved_milvus_uri())
        if shared is not None:
            return FaceVectorIndex(shared, config, lite=True)
    return FaceVectorIndex(settings.resolved_milvus_uri(), config, settings.milvus_token.get_secret_value())


def make_app(settings: Settings) -> FaceSearchApp:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return FaceSearchApp(settings.resolved_event_store_dsn(), make_blob_store(settings), settings.max_image_pixels)


class System:
    """Event store, read models, broker, relay, projections and reconciler, wired."""

    def __init__(self, settings: Settings, *, start_broker: bool | None = None) -> None:
        self.settings = settings
        self.app = make_app(settings)
        if settings.allowed_import_roots is None:  # the default drop folder is there to be found
            settings.import_drop_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.resolved_read_model_url())
        self.vectors = make_vector_index(settings)
        self.projections: dict[str, Projection] = {**PROJECTIONS, "vectors": VectorProjection(self.vectors)}
        self.runner = ProjectionRunner(self.engine, self.projections.values(), settings.partitions)
        self.workers: list[Any] = []
        wants_local_broker = settings.transport is Transport.kafka and not settings.kafka_bootstrap
        self.own_broker = TansuBroker(log_path=settings.var_dir / "tansu.log") if (
            wants_local_broker if start_broker is None else start_broker
        ) else None
        self.transport: BrokerTransport | None = None
        self.relay: OutboxRelay | None = None
        self.reconciler: Reconciler | None = None
        self.reembedder: Reembedder | None = None
        self.stats = {name: {"applied": 0, "duplicate": 0, "gap": 0} for name in self.projections}
        self._reported = {"published": 0, "rewinds": 0}
        self._stop = asyncio.Event()
        self._last_progress: tuple[int, float] = (-1, 0.0)
        self._tasks: list[asyncio.Task[Any]] = []

    @cached_property
    def searcher(self) -> FaceSearcher:
        """Search by example over this system's read models (made once: it caches the models)."""
        return FaceSearcher(self.settings, self.engine, self.vectors)

    def topic_for_family(self, family: str) -> str:
        return f"{self.settings.topic_prefix}.events.{family}"

    def read_page(self, after: int, limit: int) -> list[EventEnvelope]:
        return read_envelopes(self.app, after, limit)

    async def prepare_read_models(self) -> None:
        # Processes starting together (relay, projections, API) race to create the same
        # tables and rows; the loser of a race finds them made and tries again.
        async for attempt in tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(5), wait=tenacity.wait_incrementing(start=0.2, increment=0.2),
            retry=tenacity.retry_if_exception_type(sa.exc.DBAPIError), reraise=True,
        ):
            with attempt:
                await self.runner.create_tables()
                await self.runner.register(self.topic_for_family)

    async def start(
        self, *, relay: bool = True, projections: bool = True, reconcile: bool = False, workers: bool | None = None,
        reembed: bool | None = None,
    ) -> None:
        """`workers`: run analysis workers in this process; by default a full system (one
        that reconciles, as `facesearch up` starts it) does when `settings.run_workers`.
        `reembed`: fill in configured models that analysed photos lack (default: `reconcile`)."""
        metrics.start_resource_sampler(self.settings.process_role)
        await self.prepare_read_models()
        if projections:
            await self._open_vector_store()
        self.transport = await self._connect_broker()
        if workers if workers is not None else (reconcile and self.settings.run_workers):
            await self.add_worker()
        if projections:
            self._subscribe_projections()
        await self.transport.start()
        self._repeat(1.0, self._recover_if_broker_lost)
        if projections:
            self._repeat(1.0, self.transport.rewind_truncated_partitions)
        if projections and relay:
            self._repeat(2.0, self._reconnect_if_stalled)
        if relay:
            await self._start_relay(self.transport)
        if reconcile:
            self.reconciler = Reconciler(
                self._unfinished_photos, self._analysis_progress, self.transport, self.transport.command_topic,
                self.settings.partitions, self.settings.reconcile_after_seconds,
            )
            self._repeat(self.settings.reconcile_after_seconds / 4, self.reconciler.reconcile)
        if reconcile if reembed is None else reembed:
            self.reembedder = Reembedder(
                self._photos_missing_model, self.transport, self.transport.command_topic, self.settings.partitions,
                self.settings.embedders, batch=self.settings.reembed_batch, grace_seconds=self.settings.reembed_grace_seconds,
                resend_after_seconds=self.settings.reconcile_after_seconds, idle_seconds=self.settings.reconcile_after_seconds,
            )
            self._repeat(self.settings.reembed_every_seconds, self.reembedder.run_round)

    def _repeat(self, seconds: float, job: Any) -> None:
        """Runs `job` every `seconds` until the system stops."""
        self._tasks.append(asyncio.create_task(self._every(seconds, job)))

    async def _open_vector_store(self) -> None:
        """The process that projects holds the embedded store: it starts (or joins) the embedded
        server as its own now, not at the first search; it serves the Milvus Lite file to let
        the CLI search beside it. A store that lost every face is rebuilt from the events."""
        try:
            if isinstance(self.vectors.server, milvus_server.SharedMilvusServer):
                self.vectors.server.service = True
                await asyncio.to_thread(lambda: self.vectors.client)
            await self._advertise_milvus_lite()
            await self._rebuild_lost_vectors()
        except VectorIndexUnavailable as error:  # logged where it failed; the vectors projection retries
            logger.error("starting without the face index: {}", error)

    async def _rebuild_lost_vectors(self) -> None:
        """The read models say faces were embedded, the vector store holds none of a model's:
        a new store (Milvus Lite to the embedded server, a new milvus_uri) or a deleted
        folder. Rebuilt from the event log, or search would find nothing and say nothing."""
        progress = await queries.embedding_progress(self.engine, self.settings.embedders)
        for model, counts in progress.items():
            if counts["embedded"] and not await asyncio.to_thread(self.vectors.count, model, strong=True):
                logger.warning(
                    "the vector store ({}) holds none of the {} faces {} embedded: rebuilding it from the event log",
                    self.vectors.uri, counts["embedded"], model,
                )
                applied = await self.replay(["vectors"])
                logger.info("vector store rebuilt from {} events", applied["vectors"])
                return

    async def _advertise_milvus_lite(self) -> None:
        if not (self.vectors.lite and self.vectors.uri == self.settings.resolved_milvus_uri()):
            return
        try:
            await asyncio.to_thread(milvus_lite.advertise, self.settings.var_dir, self.vectors.uri)
        except RuntimeError as error:  # another process holds the file: the CLI opens it when free
            logger.warning("{}", error)

    async def _connect_broker(self) -> BrokerTransport:
        """The broker client (the embedded broker started first when this system owns one),
        with every event and command topic made."""
        if self.own_broker is not None:
            self.own_broker.start()  # in this thread: the broker dies with the thread that started it
        transport = BrokerTransport(self.settings, bootstrap=self.own_broker.bootstrap if self.own_broker else None)
        from gpu_workers.worker import WORKER_COMMANDS

        topics = {self.topic_for_family(f) for p in self.projections.values() for f in p.families}
        await transport.ensure_topics(sorted(topics) + [transport.command_topic(k) for k in WORKER_COMMANDS])
        return transport

    def _subscribe_projections(self) -> None:
        """Each projection consumes its event families in batches; heartbeats and the Milvus
        Lite flush run beside them."""
        assert self.transport is not None
        for projection in self.projections.values():
            for outcome in Outcome:
                # Each series exists at 0 from the start: a projection that applies its first
                # events in one batch would otherwise appear already at N, and rate() sees no rise.
                metrics.PROJECTION_EVENTS.labels(projection.name, outcome.value)
            for family in projection.families:
                topic = self.topic_for_family(family)
                self.transport.subscribe_batches(
                    topic, f"{self.settings.consumer_group}.{projection.name}",
                    partial(self._consume, projection.name, topic),
                    max_records=PROJECTION_BATCH, max_wait_ms=PROJECTION_BATCH_WAIT_MS,
                )
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        if self.vectors.lite:  # the vectors projection writes here: flush what it wrote once it pauses
            self._repeat(1.0, self._flush_idle_vectors)

    async def _start_relay(self, transport: BrokerTransport) -> None:
        self.relay = OutboxRelay(
            read_store=self.read_page,
            engine=self.engine,
            publisher=transport,
            topic_for_family=self.topic_for_family,
            command_topic=transport.command_topic,
            partitions=self.settings.partitions,
            consumer_positions=self._consumer_positions,
            batch=self.settings.relay_batch,
            poll_seconds=self.settings.relay_poll_seconds,
            redelivery_after_seconds=self.settings.redelivery_after_seconds,
            broker_lost=transport.recover_if_broker_lost,
        )
        await self.relay.start()  # its tables exist before the metrics sampler reads them
        self._tasks.append(asyncio.create_task(self.relay.run(self._stop)))
        self._repeat(self.settings.metrics_sample_seconds, self._sample_metrics)

    async def add_worker(self, name: str = "worker") -> Any:
        """An analysis worker in this process, with every configured embedder (models load
        here); call before the transport starts."""
        from gpu_workers.worker import attach_worker, make_worker

        worker = await asyncio.to_thread(make_worker, self.app, self.settings, name=name, observer=metrics.WorkerMetrics())
        attach_worker(self.transport, self.settings, worker)
        self.workers.append(worker)
        return worker

    async def _consume(self, projection: str, topic: str, bodies: list[dict[str, Any]]) -> None:
        try:
            # Writing vectors into Milvus is the pipeline's `index` stage; the read models are `project`.
            with metrics.observe_stage("index" if projection == "vectors" else "project", batch=len(bodies)):
                outcomes = await self.runner.handle_batch(projection, topic, [EventEnvelope.from_dict(b) for b in bodies])
        except Exception:
            # Not applied, checkpoints unmoved: the broker (or the relay) delivers them again.
            logger.exception(
                "projection {} failed on #{}..#{}", projection, bodies[0].get("notification_id"), bodies[-1].get("notification_id")
            )
            raise
        for outcome in outcomes:
            self.stats[projection][outcome.value] += 1
            metrics.PROJECTION_EVENTS.labels(projection, outcome.value).inc()

    async def _consumer_positions(self) -> list[ConsumerPosition]:
        return [ConsumerPosition(*row) for row in await queries.checkpoint_rows(self.engine)]

    async def _unfinished_photos(self, imported_before: float) -> list[Unfinished]:
        cutoff = datetime.fromtimestamp(imported_before, UTC).isoformat()
        return [Unfinished(AnalysePhoto(photo_id, content_hash, owner), datetime.fromisoformat(at).timestamp())
                for photo_id, content_hash, owner, at in await queries.unanalysed_photos(self.engine, cutoff)]

    async def _analysis_progress(self, imported_after: float) -> Progress:
        bound = datetime.fromtimestamp(imported_after, UTC).isoformat()
        last, finished = await queries.analysis_progress(self.engine, bound)
        frontier: dict[int, float] = {}
        for photo_id, at in finished:
            partition = partition_for(photo_id, self.settings.partitions)
            frontier[partition] = max(frontier.get(partition, 0.0), datetime.fromisoformat(at).timestamp())
        return Progress(datetime.fromisoformat(last).timestamp() if last else None, frontier, await self._photos_current())

    async def _photos_current(self) -> bool:
        """Whether the photos read model has applied everything the relay published to it."""
        if self.relay is None:
            return True  # nothing here knows what was published: judge by the read model alone
        topic = self.topic_for_family("photos")
        applied = {(t, partition): last for name, t, partition, last, _ in await queries.checkpoint_rows(self.engine)
                   if name == photos_projection.name and t == topic}
        return all(applied.get(key, 0) >= head for key, head in self.relay.heads.items() if key[0] == topic)

    async def _photos_missing_model(self, model: str, analysed_before: float, limit: int) -> list[EmbedPhoto]:
        cutoff = datetime.fromtimestamp(analysed_before, UTC).isoformat()
        rows = await queries.photos_missing_model(self.engine, model, cutoff, limit)
        return [EmbedPhoto(photo_id, content_hash, owner, model) for photo_id, content_hash, owner in rows]

    async def embedding_progress(self) -> dict[str, dict[str, int]]:
        """Per configured model: faces embedded of faces detected (a model added later fills in)."""
        return await queries.embedding_progress(self.engine, self.settings.embedders)

    async def _sample_metrics(self) -> None:
        if self.relay is not None:  # the relay counts in plain attributes; mirror the growth
            metrics.RELAY_PUBLISHED.inc(self.relay.published_total - self._reported["published"])
            metrics.RELAY_REWINDS.inc(self.relay.rewinds - self._reported["rewinds"])
            self._reported = {"published": self.relay.published_total, "rewinds": self.relay.rewinds}
        await self._sample_lags()

    async def _sample_lags(self) -> None:
        """Sets relay, projection and per-partition consumer lag from the database (so any one
        process, the relay's by default, can report them for everyone)."""
        head = await asyncio.to_thread(lambda: self.app.recorder.max_notification_id() or 0)
        if self.relay is not None:
            metrics.RELAY_LAG.set(max(head - self.relay.position, 0))
        behind = (
            sa.select(checkpoints.c.projection, checkpoints.c.topic, checkpoints.c.partition,
                      sa.func.count(relay_published.c.notification_id))
            .select_from(checkpoints.outerjoin(
                relay_published,
                (relay_published.c.topic == checkpoints.c.topic)
                & (relay_published.c.partition == checkpoints.c.partition)
                & (relay_published.c.notification_id > checkpoints.c.last_id),
            ))
            .group_by(checkpoints.c.projection, checkpoints.c.topic, checkpoints.c.partition)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(behind)).all()
        per_projection: dict[str, int] = {}
        for projection, topic, partition, lag in rows:
            metrics.set_consumer_lag(f"{self.settings.consumer_group}.{projection}", topic, partition, lag)
            per_projection[projection] = per_projection.get(projection, 0) + lag
        for projection, lag in per_projection.items():
            metrics.PROJECTION_LAG.labels(projection).set(lag)

    async def _recover_if_broker_lost(self) -> None:
        if self.transport is None:  # scheduled only once the transport started
            return
        if await self.transport.recover_if_broker_lost() and self.relay is not None:
            await self.relay.republish_unapplied()

    async def _reconnect_if_stalled(self) -> None:
        """Read models behind what was published, and not moving even after the relay
        republished: the broker clients lost their state with the broker. Start them anew."""
        if self.relay is None or self.transport is None:
            return
        rows = await queries.checkpoint_rows(self.engine)
        behind = any(last_id < self.relay.heads.get((topic, part), 0) for _, topic, part, last_id, _ in rows)
        progress = sum(row[3] for row in rows)
        now = asyncio.get_running_loop().time()
        if not behind or progress != self._last_progress[0]:
            self._last_progress = (progress, now)
            return
        if now - self._last_progress[1] >= self.settings.reconnect_after_seconds:
            logger.warning("read models stalled for {:.0f} s; reconnecting to the broker", now - self._last_progress[1])
            await self.transport.reconnect()
            self._last_progress = (progress, now)

    async def _heartbeat(self) -> None:
        await self._every(1.0, self.runner.heartbeat)

    async def _flush_idle_vectors(self) -> None:
        await asyncio.to_thread(self.vectors.flush_idle)

    async def _every(self, seconds: float, job: Any) -> None:
        while not self._stop.is_set():
            try:
                await job()
            except Exception as error:  # keep going: the next round may work
                logger.warning("{} failed: {}", getattr(job, "__qualname__", job), error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)

    async def wait_until_caught_up(self, timeout: float = 60.0) -> None:
        """Waits until every stored event is published and applied by every projection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        behind: list[tuple[str, str, int, int]] = []
        while loop.time() < deadline:
            last = await asyncio.to_thread(lambda: self.app.recorder.max_notification_id() or 0)
            if self.relay and self.relay.position >= last:
                heads = self.relay.heads
                behind = [
                    (name, topic, part, last_id)
                    for name, topic, part, last_id, _ in await queries.checkpoint_rows(self.engine)
                    if last_id < heads.get((topic, part), 0)
                ]
                if not behind:
                    return
            await asyncio.sleep(0.1)
        position = self.relay.position if self.relay else None
        consumers = await self.transport.describe_consumers() if self.transport else []
        raise TimeoutError(
            f"read models did not catch up within {timeout} s: relay at {position} of {last}; "
            f"behind: {behind}; consumers: {consumers}"
        )

    async def replay(self, names: list[str] | None = None) -> dict[str, int]:
        await self.prepare_read_models()
        counts = {}
        for name in names or list(self.projections):
            if name not in self.projections:
                raise UnknownProjection(f"no projection named {name!r}; known: {', '.join(self.projections)}")
            projection = self.projections[name]
            if hasattr(projection, "reset"):  # state outside the database (Milvus) goes too
                await projection.reset()
            counts[name] = await replay(self.runner, projection, self.read_page, self.topic_for_family)
        return counts

    async def close(self) -> None:
        """Releases what a System holds that was never started (a one-off command's)."""
        await asyncio.to_thread(self.vectors.shutdown)
        await self.engine.dispose()
        self.app.close()

    async def stop(self) -> None:
        self._stop.set()
        milvus_lite.withdraw(self.settings.var_dir)
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        self._tasks.clear()
        if self.transport is not None:
            try:  # a consumer of a lost broker can wait long on its last commit
                await asyncio.wait_for(self.transport.stop(), 15)
            except TimeoutError:
                logger.warning("broker connections did not close within 15 s; leaving them")
        for worker in self.workers:
            worker.close()
        if self.own_broker is not None:
            await asyncio.to_thread(self.own_broker.stop)
        await self.close()


@contextlib.asynccontextmanager
async def offline_system(settings: Settings) -> AsyncIterator[System]:
    """A System for a one-off command: no broker, relay, projections or workers run, and
    everything it opened is released at the end."""
    system = System(settings, start_broker=False)
    try:
        yield system
    finally:
        await system.close()
