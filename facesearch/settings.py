"""The one settings object. Every value comes from an environment variable with the
FACESEARCH_ prefix (nested values use a double underscore), or from its default.

The embedded profile (default) keeps everything on this machine under `var_dir`;
the production profile points at PostgreSQL, Kafka, Milvus and S3 by address.

Each photo source declares its own settings (`SourceSpec.settings`, e.g. `VkSettings`:
FACESEARCH_VK_API_BASE, …); `Settings` is these core settings with every source's merged in.
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from commands.importers import SOURCES

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Profile(str, Enum):
    embedded = "embedded"
    production = "production"


class Transport(str, Enum):
    kafka = "kafka"
    rabbitmq = "rabbitmq"
    redis = "redis"


class CoreSettings(BaseSettings):
    """The settings of everything but the sources (see the module's docstring)."""

    model_config = SettingsConfigDict(env_prefix="FACESEARCH_", env_nested_delimiter="__", extra="ignore")

    profile: Profile = Profile.embedded
    # Where the embedded profile keeps its files (event store, read models, blobs, Milvus).
    var_dir: Path = PROJECT_ROOT / "var"
    # Evaluation photos and test-only model files, never committed (see ../shared).
    data_dir: Path = PROJECT_ROOT.parent / "shared" / "data"
    shared_models_dir: Path = PROJECT_ROOT.parent / "shared" / "models"
    # Cache of pulled and converted model weights.
    models_dir: Path = PROJECT_ROOT / "var" / "models"
    # Weights licensed for non-commercial research only (InsightFace's, the default `arcface`):
    # off, `models pull` skips them and loading them fails with the licence named.
    allow_noncommercial_weights: bool = True

    # Event store: empty means the embedded SQLite file under var_dir.
    event_store_dsn: str = ""
    # Read models (SQLAlchemy URL): empty means the embedded SQLite file under var_dir.
    read_model_url: str = ""

    # Broker: empty kafka_bootstrap in the embedded profile means "start tansu here".
    transport: Transport = Transport.kafka
    kafka_bootstrap: str = ""
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    redis_url: str = "redis://127.0.0.1:6379/0"
    topic_prefix: str = "facesearch"
    partitions: int = 4
    consumer_group: str = "facesearch"

    # Milvus: empty means the embedded store under var_dir, which `milvus_embedded` chooses:
    # "server", the Milvus server of the PyPI package `milvus` (var_dir/milvus-server, started
    # by the first process that needs it), or "lite", the Milvus Lite file var_dir/milvus.db,
    # which answers a search at 100,000 faces in ~80 ms p95 against ~10 ms (docs/benchmarks.md).
    # Without the server installed, "server" falls back to Lite with a warning.
    milvus_uri: str = ""
    milvus_embedded: Literal["server", "lite"] = "server"
    milvus_token: SecretStr = SecretStr("")
    # Index of every face collection: HNSW, or IVF_PQ (on a Milvus server; Milvus Lite has no
    # IVF_PQ and falls back to IVF_SQ8 with a warning).
    milvus_index_type: str = "HNSW"
    milvus_hnsw_m: int = 16
    milvus_hnsw_ef_construction: int = 200
    milvus_hnsw_ef: int = 128
    milvus_ivf_nlist: int = 1024
    milvus_ivf_nprobe: int = 32
    milvus_pq_m: int = 32  # sub-quantisers: must divide the embedding dimension
    milvus_consistency: str = "Bounded"  # "Strong" costs a Milvus server ~200 ms a search
    # Milvus metric per embedding model where it should differ from the model's own (its spec's
    # `metric`: L2 for ArcFace, cosine for FaceNet512), e.g. {"arcface": "COSINE"}.
    model_metrics: dict[str, str] = Field(default_factory=dict)

    # Workers: a full System (the one `facesearch up` starts, with the reconciler) runs them
    # in-process unless this is off (then run `facesearch run worker` elsewhere).
    run_workers: bool = True
    worker_session_timeout_ms: int = 10_000  # a dead worker's photos move on after this
    detector: str = "retinaface"
    # Every face is embedded with each of these models, one Milvus collection per model; the
    # first is the primary (its detections are shared, searches default to it). A model added
    # to an existing archive is filled in from the stored photos (see commands/reembedding.py).
    embedders: list[str] = Field(default_factory=lambda: ["facenet512"], min_length=1)
    worker_batch_size: int = 8  # photos per accelerator batch
    worker_max_wait_ms: int = 200  # how long a batch waits to fill up
    worker_decode_threads: int = 2
    worker_threads: int = 2  # ONNX Runtime intra-op threads
    worker_use_gpu: bool = True
    # A photo with no face upright is tried turned 90, 180 and 270 degrees before it is filed
    # under "No faces" (up to 4 detections for a photo that has none).
    detect_rotated_photos: bool = True
    # Also embed each face mirrored and average (test-time augmentation): twice the embedding
    # cost for no gain measured (docs/models.md), so off. A calibration is fitted for one
    # choice: `facesearch models pull` refits it after a change.
    embed_flip: bool = False

    # Search by example.
    search_threshold_percent: float = 85.0  # calibrated similarity, 70 to 95
    search_top_k: int = 50
    search_verify_top: int = 10  # candidates re-checked by exact distance
    # Query expansion: searched again from up to this many near-certain matches (0: off);
    # see domain/similarity.py.
    search_expand_seeds: int = Field(default=5, ge=0, le=20)

    # People: an automatic person needs this many good faces (of different photos) to appear.
    people_min_faces: int = Field(default=3, ge=1)

    # Blobs: a directory in the embedded profile, an S3-compatible bucket in production.
    blob_dir: Path | None = None
    s3_endpoint: str = ""
    s3_bucket: str = "facesearch"
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")

    # Relay and reconciler timing.
    relay_batch: int = 500
    relay_poll_seconds: float = 0.2
    # A consumer that has not caught up with what was published for this long gets a republish.
    redelivery_after_seconds: float = 10.0
    reconcile_after_seconds: float = 60.0
    # Filling in a model added later: every `reembed_every_seconds`, at most `reembed_batch`
    # photos per model are asked of the workers at once (a photo asked and still missing is
    # asked again after reconcile_after_seconds); photos analysed less than
    # `reembed_grace_seconds` ago are left alone (their vectors may still be on the way).
    reembed_every_seconds: float = 2.0
    reembed_batch: int = 32
    reembed_grace_seconds: float = 10.0
    # A publish that takes longer fails (and is retried): the broker is away.
    publish_timeout_seconds: float = 10.0
    # Read models behind and not moving for this long, despite republishing: new broker clients.
    reconnect_after_seconds: float = 60.0

    # Input limits: bigger images are rejected before decoding.
    max_image_pixels: int = 60_000_000
    # Decodes, detections and embeddings the API runs at once (the rest wait their turn).
    max_concurrent_image_jobs: int = 2
    max_upload_bytes: int = 50 * 1024 * 1024

    # Folders the web client may import from (the CLI imports any folder its operator names).
    # Unset: the user's ~/Pictures where it exists, and the drop folder var_dir/import (made
    # at start), so folder import works after the quick start; [] turns it off.
    allowed_import_roots: list[Path] | None = None
    # Fernet key(s), comma-separated, newest first, encrypting VK / Yandex.Disk tokens at rest.
    token_key: SecretStr = SecretStr("")

    # Monitoring. process_role labels this process's CPU and memory (api, relay,
    # projections, worker; embedded runs them all in one). prometheus_url, when set, makes
    # /api/monitoring/series answer from Prometheus (the numbers Grafana shows); empty
    # means from this process's own samples.
    process_role: str = "embedded"
    metrics_sample_seconds: float = 2.0
    monitoring_history_seconds: float = 6 * 3600
    prometheus_url: str = ""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Origins (scheme://host[:port]) whose pages may change state with the session cookie.
    # Empty: the API's own address (api_host:api_port, also as 127.0.0.1 and localhost) and
    # the address a request was sent to; set it to the public https:// address behind a proxy.
    allowed_origins: list[str] = Field(default_factory=list)
    # A bearer token that reads /metrics only (for Prometheus); empty: administrators only.
    metrics_token: SecretStr = SecretStr("")
    # Sign-in attempts allowed in a sliding window, per account and per client address.
    login_attempts_per_account: int = 5
    login_attempts_per_address: int = 30
    login_window_seconds: float = 15 * 60

    # Remote imports (each source's own settings are in its module). Plain http is accepted
    # only for loopback base addresses (tests' fakes), and only when this is on.
    import_allow_loopback_http: bool = False
    import_backoff_seconds: float = 1.0  # first wait after a "too many requests" answer
    import_concurrency: int = 4  # photos downloaded at once by one import job
    oauth_state_seconds: float = 600.0  # how long a started sign-in may take

    @field_validator("embedders")
    @classmethod
    def _distinct_embedders(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))  # one entry per model, the primary first

    @property
    def embedder(self) -> str:
        """The primary embedding model: search's default, the one that also detects."""
        return self.embedders[0]

    @property
    def embedded(self) -> bool:
        return self.profile is Profile.embedded

    def resolved_event_store_dsn(self) -> str:
        return self.event_store_dsn or f"sqlite:///{self.var_dir / 'events.sqlite'}"

    def resolved_read_model_url(self) -> str:
        return self.read_model_url or f"sqlite:///{self.var_dir / 'read_models.sqlite'}"

    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or str(self.var_dir / "milvus.db")

    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.var_dir / "blobs"

    @property
    def import_drop_dir(self) -> Path:
        """Where photos can be put to import them from the web client (by default allowed)."""
        return self.var_dir / "import"

    def resolved_import_roots(self) -> list[Path]:
        if self.allowed_import_roots is not None:
            return list(self.allowed_import_roots)
        try:
            pictures = Path.home() / "Pictures"
        except RuntimeError:  # no home directory (a service account without one)
            pictures = None
        return [*([pictures] if pictures is not None and pictures.is_dir() else []), self.import_drop_dir]


def _with_sources(core: type[CoreSettings]) -> type[CoreSettings]:
    """The core settings with the settings every source declares (sources registered later
    are not seen: register them before this module is imported)."""
    parts = tuple(spec.settings for spec in SOURCES.values() if spec.settings is not None)
    return type("Settings", (core, *parts), {"__module__": __name__, "__doc__": "The one settings object."})


if TYPE_CHECKING:  # a source's code reads its own part typed: `VkSettings.model_validate(settings)`
    Settings = CoreSettings
else:
    Settings = _with_sources(CoreSettings)


@lru_cache
def get_settings() -> Settings:
    return Settings()
