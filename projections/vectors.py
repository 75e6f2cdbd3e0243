"""The Milvus projection: one collection of face vectors per embedding model.

Each `FaceEmbedded` becomes one row (primary key "<photo id>:<face index>") with the photo
id, owner, source, import and import date for filtering. Writes are upserts, so a
redelivered event rewrites the same row: Milvus holds no checkpoint of its own, the SQL
checkpoint committed with `vector_photos` does. `facesearch replay vectors` drops the
collections and rebuilds them from the log.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.envelope import EventEnvelope
from projections.base import Projection
from projections.tables import vector_photos

INDEX_TYPES = ("HNSW", "IVF_PQ", "IVF_SQ8", "IVF_FLAT", "FLAT")
# Milvus Lite builds these (measured: IVF_PQ is refused when the collection loads).
LITE_INDEX_TYPES = ("HNSW", "IVF_FLAT", "IVF_SQ8", "FLAT")
# Milvus Lite's in-process gRPC server keeps grpcio's default ping policy (one ping per 5
# minutes without data), and answers pymilvus's 10 s keepalive with GOAWAY "too many
# pings": idle clients of a Lite server ping rarely, and never without a call.
LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 330_000, "grpc.keepalive_permit_without_calls": 0}
# A Lite server shares its process's CPU with detection and embedding: a busy process can
# take seconds to accept a connection, so opening one is tried for this long.
CONNECT_PATIENCE_S = 30.0
# Milvus Lite searches the rows it has not flushed yet one by one in Python: 416 ms a search
# with 10,000 such rows against 19 ms once flushed into indexed segments (measured here, see
# docs/benchmarks.md). A Lite collection is flushed every LITE_FLUSH_ROWS written rows, and
# by `flush_idle` once writes pause; a Milvus server seals its segments by itself.
LITE_FLUSH_ROWS = 256
LITE_FLUSH_IDLE_S = 2.0


@dataclass(frozen=True)
class IndexConfig:
    """How each face collection is indexed and searched (see Settings.milvus_*)."""

    index_type: str = "HNSW"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef: int = 128
    ivf_nlist: int = 1024
    ivf_nprobe: int = 32
    pq_m: int = 32
    metrics: tuple[tuple[str, str], ...] = ()  # (model, Milvus metric); a model not named is COSINE
    # "Strong" makes a Milvus server wait for its next time tick (~200 ms) on every search;
    # "Bounded" sees writes within about a second, which a search of photos can afford.
    consistency: str = "Bounded"

    @classmethod
    def from_settings(cls, settings: Any, model_metrics: Mapping[str, str]) -> IndexConfig:
        """`model_metrics`: each model's metric (its spec's, settings.model_metrics overriding)."""
        return cls(
            index_type=settings.milvus_index_type.upper(),
            hnsw_m=settings.milvus_hnsw_m,
            hnsw_ef_construction=settings.milvus_hnsw_ef_construction,
            hnsw_ef=settings.milvus_hnsw_ef,
            ivf_nlist=settings.milvus_ivf_nlist,
            ivf_nprobe=settings.milvus_ivf_nprobe,
            pq_m=settings.milvus_pq_m,
            metrics=tuple(sorted(model_metrics.items())),
            consistency=settings.milvus_consistency,
        )

    def metric_for(self, model: str) -> str:
        """Milvus metric of a model: its own (L2 for ArcFace), COSINE for a model not named."""
        return dict(self.metrics).get(model, "COSINE").upper()


@dataclass(frozen=True)
class VectorHit:
    face_id: str
    photo_id: str
    face_index: int
    source: str
    distance: float  # as Milvus reports it: cosine similarity, or squared L2 distance

    def raw(self, metric: str) -> float:
        """The score calibrations use: cosine similarity, or plain L2 distance."""
        return self.distance if metric == "COSINE" else float(np.sqrt(max(self.distance, 0.0)))


def collection_name(model: str) -> str:
    return "faces_" + re.sub(r"[^0-9A-Za-z_]", "_", model)


def face_id(photo_id: str, face_index: int) -> str:
    return f"{photo_id}:{face_index}"


def decode_vector(vector_b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(vector_b64), dtype="<f4").astype(np.float32)


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def epoch_seconds(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


class VectorIndexUnavailable(RuntimeError):
    """Milvus could not serve a collection (not loadable, or down). `code` is stable, for
    clients; the message is for people and never carries Milvus's own text."""

    code = "VECTOR_INDEX_UNAVAILABLE"

    def __init__(self, name: str) -> None:
        super().__init__(f"the face index ({name}) is not available right now: try again in a minute")


def _is_released(error: Exception) -> bool:
    """A collection Milvus holds on disk but not in memory (every collection after a restart)."""
    text = str(error).lower()
    return "released" in text or "not loaded" in text or "load()" in text or getattr(error, "code", None) == 101


def _is_disconnected(error: Exception) -> bool:
    """The client lost its connection (a gRPC GOAWAY such as "too many pings", a restarted server)."""
    text = str(error).lower()
    return "fail connecting" in text or "unavailable" in text or "too many pings" in text


class ServerHandle(Protocol):
    """A Milvus server that is located (or started) when a client connects."""

    def uri(self) -> str: ...

    def release(self) -> None: ...


class FaceVectorIndex:
    """Face collections in Milvus (Lite file or server). Synchronous: call it off the event loop."""

    def __init__(
        self, uri: str, config: IndexConfig, token: str = "", lite: bool | None = None,
        server: ServerHandle | None = None,
    ) -> None:
        """`server`: a server found (or started) when connecting, whose `uri()` is asked
        then (`uri` only names it) and whose `release()` `shutdown` calls."""
        self.uri = uri
        self.config = config
        self.token = token
        self.server = server
        self._client: Any = None
        # A file path is Milvus Lite; so is another process's Lite server (`lite=True`).
        self.lite = not uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:")) if lite is None else lite
        self._known: dict[str, int] = {}  # collection -> dimension
        self._loaded: set[str] = set()  # collections this process loaded (or created loaded)
        self._opening = threading.Lock()
        self._unflushed: dict[str, tuple[int, float]] = {}  # Lite collection -> (rows written, last write)
        self._flushing = threading.Lock()

    @property
    def client(self) -> Any:
        """Connects on first use: building a System must not start Milvus Lite."""
        if self._client is None:
            # Threads race here after a start (projection and first search): Milvus Lite
            # locks its file per open, so a second open in the same process fails.
            with self._opening:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        from pymilvus import MilvusClient

        # pymilvus logs every failed call with a traceback before raising it (its import sets
        # that up); each one is answered here (a reload after a restart, a reconnect) and
        # logged in our words, so its own lines would only repeat ours as alarms.
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

        options: dict[str, Any] = {"grpc_options": LITE_GRPC_OPTIONS} if self.lite else {}
        if self.token:
            options["token"] = self.token
        try:
            address = self.server.uri() if self.server is not None else self.uri
        except RuntimeError as error:  # the embedded server could not be started or reached
            logger.error("cannot reach Milvus ({}): {}", self.uri, error)
            raise VectorIndexUnavailable("Milvus") from error
        deadline = time.monotonic() + CONNECT_PATIENCE_S
        while True:
            try:
                return MilvusClient(address, **options)
            except Exception as error:
                if time.monotonic() >= deadline:
                    logger.error("cannot open Milvus at {}: {}", self.uri if self.lite else "the configured server", error)
                    raise VectorIndexUnavailable("Milvus") from error
                logger.warning("Milvus is not answering yet: trying again ({})", type(error).__name__)
                time.sleep(1.0)

    def _call(self, action: Any) -> Any:
        """`action()`, connecting again once when the connection was lost on the way (a
        restarted server, a GOAWAY); `VectorIndexUnavailable` for any other Milvus error, or
        when it fails again (Milvus's own text goes to the log, never to a client)."""
        from pymilvus.exceptions import MilvusException

        try:
            return action()
        except MilvusException as error:
            if not _is_disconnected(error):
                logger.error("Milvus failed: {}", error)
                raise VectorIndexUnavailable("Milvus") from error
            logger.warning("Milvus connection lost: connecting again")
            self.close()  # the next use of `client` connects anew
        try:
            return action()
        except MilvusException as error:
            logger.error("Milvus failed again after connecting anew: {}", error)
            raise VectorIndexUnavailable("Milvus") from error

    @property
    def index_type(self) -> str:
        wanted = self.config.index_type
        if self.lite and wanted not in LITE_INDEX_TYPES:
            return "IVF_SQ8"
        return wanted

    def _index_params(self, metric: str, dim: int) -> Any:
        kind = self.index_type
        if kind != self.config.index_type:
            logger.warning(
                "Milvus Lite has no {} index: using {} instead (run a Milvus server for {})",
                self.config.index_type, kind, self.config.index_type,
            )
        params: dict[str, Any] = {}
        if kind == "HNSW":
            params = {"M": self.config.hnsw_m, "efConstruction": self.config.hnsw_ef_construction}
        elif kind.startswith("IVF"):
            params = {"nlist": self.config.ivf_nlist}
            if kind == "IVF_PQ":
                m = self.config.pq_m if dim % self.config.pq_m == 0 else next(d for d in (32, 16, 8, 4, 2, 1) if dim % d == 0)
                params |= {"m": m, "nbits": 8}
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type=kind, metric_type=metric, params=params)
        return index

    def search_params(self) -> dict[str, Any]:
        kind = self.index_type
        if kind == "HNSW":
            return {"params": {"ef": self.config.hnsw_ef}}
        if kind.startswith("IVF"):
            return {"params": {"nprobe": self.config.ivf_nprobe}}
        return {"params": {}}

    def ensure_collection(self, model: str, dim: int) -> str:
        from pymilvus import DataType, MilvusClient

        name = collection_name(model)
        if self._known.get(name) == dim:
            return name
        if not self._call(lambda: self.client.has_collection(name)):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=48)
            schema.add_field("photo_id", DataType.VARCHAR, max_length=36)
            schema.add_field("owner", DataType.VARCHAR, max_length=128)
            schema.add_field("source", DataType.VARCHAR, max_length=16)
            schema.add_field("import_id", DataType.VARCHAR, max_length=36)
            schema.add_field("imported_at", DataType.INT64)  # epoch seconds
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            index_params = self._call(lambda: self._index_params(self.config.metric_for(model), dim))
            self._call(lambda: self.client.create_collection(
                name, schema=schema, index_params=index_params, consistency_level=self.config.consistency,
            ))
            logger.info("created Milvus collection {} ({}-d, {}, {})", name, dim, self.config.metric_for(model), self.index_type)
        self._load(name)
        self._known[name] = dim
        return name

    def _load(self, name: str) -> None:
        """Milvus keeps a collection released after its server (or Lite file) restarts: load
        it once per process before using it; loading a loaded collection costs nothing."""
        if name not in self._loaded:
            self.client.load_collection(name)
            self._wait_until_loaded(name)
            self._loaded.add(name)

    def _wait_until_loaded(self, name: str, within_s: float = 10.0) -> None:
        """Milvus may still be loading when `load_collection` returns (seen after a restart:
        the first search found the collection "released"): wait for its state to say so."""
        deadline = time.monotonic() + within_s
        while (state := str(self.client.get_load_state(name).get("state"))) and ("NotLoad" in state or "Loading" in state):
            if time.monotonic() >= deadline:
                logger.warning("Milvus collection {} is not loaded after {} s", name, within_s)
                return
            time.sleep(0.1)

    def _on_loaded(self, name: str, action: Any) -> Any:
        """`action()` on a loaded collection; one reload and retry when Milvus says it was
        released behind our back; `VectorIndexUnavailable` when it still fails, or for any
        other Milvus error (its own text goes to the log, never to a client)."""
        from pymilvus.exceptions import MilvusException

        try:
            self._load(name)
            return action()
        except MilvusException as error:
            if _is_disconnected(error):
                logger.warning("Milvus connection lost on {}: connecting again", name)
                self.close()  # the next use of `client` connects anew
            elif not _is_released(error):
                logger.error("Milvus failed on {}: {}", name, error)
                raise VectorIndexUnavailable(name) from error
            else:
                logger.warning("Milvus collection {} was released: loading it again", name)
        self._loaded.discard(name)
        try:
            self._load(name)
            return action()
        except Exception as error:
            logger.error("Milvus collection {} still unusable after a reload: {}", name, error)
            raise VectorIndexUnavailable(name) from error

    def upsert(self, model: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            name = self.ensure_collection(model, len(rows[0]["vector"]))
            self._on_loaded(name, lambda: self.client.upsert(name, list(rows)))
            self._written(name, len(rows))

    def delete_photo(self, photo_id: str) -> None:
        for name in self.collections():
            self._on_loaded(name, lambda: self.client.delete(name, filter=f'photo_id == "{photo_id}"'))
            self._written(name, 1)

    def _written(self, name: str, rows: int) -> None:
        """Counts rows written to a Lite collection; flushes it every LITE_FLUSH_ROWS."""
        if not self.lite:
            return
        with self._flushing:
            count = self._unflushed.get(name, (0, 0.0))[0] + rows
            self._unflushed[name] = (count, time.monotonic())
        if count >= LITE_FLUSH_ROWS:
            self._flush(name)

    def flush_idle(self, idle_s: float = LITE_FLUSH_IDLE_S) -> list[str]:
        """Flushes the Lite collections written to but left alone for `idle_s`; returns them."""
        now = time.monotonic()
        with self._flushing:
            idle = [name for name, (count, at) in self._unflushed.items() if count and now - at >= idle_s]
        for name in idle:
            self._flush(name)
        return idle

    def _flush(self, name: str) -> None:
        with self._flushing:
            self._unflushed[name] = (0, time.monotonic())
        self._on_loaded(name, lambda: self.client.flush(name))

    def collections(self) -> list[str]:
        return [n for n in self._call(lambda: self.client.list_collections()) if n.startswith("faces_")]

    def models(self) -> list[str]:
        return [n.removeprefix("faces_") for n in self.collections()]

    def drop_all(self) -> None:
        for name in self.collections():
            self._call(lambda: self.client.drop_collection(name))
        self._known.clear()
        self._loaded.clear()
        with self._flushing:
            self._unflushed.clear()

    def count(self, model: str, filter_expr: str = "", *, strong: bool = False) -> int:
        """Faces in the model's collection (matching `filter_expr`, when given); `strong`: with
        every write so far (a server's "Bounded" misses the last moment's)."""
        name = collection_name(model)
        if not self._call(lambda: self.client.has_collection(name)):
            return 0
        level = {"consistency_level": "Strong"} if strong else {}
        rows = self._on_loaded(name, lambda: self.client.query(name, filter=filter_expr, output_fields=["count(*)"], **level))
        return int(rows[0]["count(*)"])

    def search(self, model: str, vector: np.ndarray, limit: int, filter_expr: str = "") -> list[VectorHit]:
        """The `limit` nearest faces to `vector` that match `filter_expr`, nearest first."""
        return self.search_many(model, [vector], limit, filter_expr)[0]

    def search_many(self, model: str, vectors: Sequence[np.ndarray], limit: int, filter_expr: str = "") -> list[list[VectorHit]]:
        """`search` for each of `vectors`, in one request: Milvus Lite reads the whole
        collection's keys once a request, so several queries cost about what one does."""
        if not len(vectors):
            return []
        name = collection_name(model)
        if not self._call(lambda: self.client.has_collection(name)):
            return [[] for _ in vectors]
        query = [np.asarray(v, dtype=np.float32).tolist() for v in vectors]
        result = self._on_loaded(name, lambda: self.client.search(
            name, query, limit=limit, filter=filter_expr,
            output_fields=["photo_id", "source"], search_params=self.search_params(), anns_field="vector",
        ))
        return [[VectorHit(str(hit["id"]), hit["entity"]["photo_id"], int(str(hit["id"]).rsplit(":", 1)[1]),
                           hit["entity"]["source"], float(hit["distance"])) for hit in hits] for hits in result]

    def vectors(self, model: str, face_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these faces (for exact verification)."""
        if not face_ids:
            return {}
        name = collection_name(model)
        if not self._call(lambda: self.client.has_collection(name)):
            return {}
        rows = self._on_loaded(name, lambda: self.client.query(name, ids=list(face_ids), output_fields=["vector"]))
        return {str(r["id"]): np.asarray(r["vector"], dtype=np.float32) for r in rows}

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception as error:  # a client whose connection is already gone
                logger.debug("closing the Milvus client: {}", error)
            self._client = None
            self._loaded.clear()

    def shutdown(self) -> None:
        """`close`, then stop the server this process started for it (if it did)."""
        self.close()
        if self.server is not None:
            self.server.release()


def filter_expression(
    owner: str, source: str | None = None, import_id: str | None = None,
    imported_from: datetime | None = None, imported_to: datetime | None = None,
) -> str:
    """A Milvus boolean expression: always the owner, then any of the optional filters."""
    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    parts = [f"owner == {quoted(owner)}"]
    if source:
        parts.append(f"source == {quoted(source)}")
    if import_id:
        parts.append(f"import_id == {quoted(import_id)}")
    if imported_from:
        parts.append(f"imported_at >= {int(imported_from.timestamp())}")
    if imported_to:
        parts.append(f"imported_at <= {int(imported_to.timestamp())}")
    return " and ".join(parts)


class VectorProjection(Projection):
    """The Milvus projection, bound to one index (the SQL side keeps only photo provenance)."""

    def __init__(self, index: FaceVectorIndex) -> None:
        super().__init__("vectors", ("photos",), (vector_photos,))
        self.index = index
        # Its own thread for Milvus writes: each runs inside the read models' write transaction
        # (SQLite has one writer), so queueing behind searches in asyncio's shared pool held up
        # every projection (a soak with 20 search clients applied 3 events a second).
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="milvus-writes")
        self.on("PhotoImported")(self._photo_imported)
        self.on("FaceEmbedded")(self._face_embedded)
        self.on("PhotoDeleted")(self._photo_deleted)

    async def reset(self) -> None:
        """Before a replay: the collections go with the tables."""
        await asyncio.to_thread(self.index.drop_all)

    @staticmethod
    async def _photo_imported(conn: AsyncConnection, e: EventEnvelope) -> None:
        p = e.payload
        await conn.execute(
            vector_photos.insert().values(
                photo_id=e.aggregate_id, owner=p["owner"], source=p["source"], import_id=p["import_id"], imported_at=e.timestamp
            )
        )

    async def _face_embedded(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        p = e.payload
        photo = (await conn.execute(sa.select(vector_photos).where(vector_photos.c.photo_id == e.aggregate_id))).first()
        if photo is None:  # cannot happen in order; keep the vector searchable by id anyway
            logger.warning("vectors: face of unknown photo {}", e.aggregate_id)
            return
        row = {
            "id": face_id(e.aggregate_id, p["face_index"]),
            "photo_id": e.aggregate_id,
            "owner": photo.owner,
            "source": photo.source,
            "import_id": photo.import_id or "",
            "imported_at": epoch_seconds(photo.imported_at),
            "vector": decode_vector(p["vector_b64"]).tolist(),
        }
        await self._write(self.index.upsert, p["model"], [row])

    async def _photo_deleted(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        await self._write(self.index.delete_photo, e.aggregate_id)

    async def _write(self, action: Callable[..., None], *args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writes, functools.partial(action, *args))
