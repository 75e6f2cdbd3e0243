"""The one settings object. Every value comes from an environment variable with the
FACESEARCH_ prefix (nested values use a double underscore), or from its default.

The embedded profile (default) keeps everything on this machine under `var_dir`;
the production profile points at PostgreSQL, Kafka, Milvus and S3 by address.
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Profile(str, Enum):
    embedded = "embedded"
    production = "production"


class Transport(str, Enum):
    kafka = "kafka"
    rabbitmq = "rabbitmq"
    redis = "redis"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACESEARCH_", env_nested_delimiter="__", extra="ignore")

    profile: Profile = Profile.embedded
    # Where the embedded profile keeps its files (event store, read models, blobs, Milvus Lite).
    var_dir: Path = PROJECT_ROOT / "var"
    # Evaluation photos and test-only model files, never committed (see ../shared).
    data_dir: Path = PROJECT_ROOT.parent / "shared" / "data"
    shared_models_dir: Path = PROJECT_ROOT.parent / "shared" / "models"
    # Cache of pulled and converted model weights.
    models_dir: Path = PROJECT_ROOT / "var" / "models"

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

    # Milvus: empty means a Milvus Lite file under var_dir.
    milvus_uri: str = ""
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
    # Metric per embedding model (Milvus spelling); models not named here use COSINE.
    model_metrics: dict[str, str] = Field(default_factory=lambda: {"arcface": "L2"})

    # Workers: a full System (the one `facesearch up` starts, with the reconciler) runs them
    # in-process unless this is off (then run `python -m gpu_workers.worker` elsewhere).
    run_workers: bool = True
    worker_session_timeout_ms: int = 10_000  # a dead worker's photos move on after this
    detector: str = "retinaface"
    embedder: str = "facenet512"  # the model workers embed with, and search's default
    worker_batch_size: int = 8  # photos per accelerator batch
    worker_max_wait_ms: int = 200  # how long a batch waits to fill up
    worker_decode_threads: int = 2
    worker_threads: int = 2  # ONNX Runtime intra-op threads
    worker_use_gpu: bool = True

    # Search by example.
    search_threshold_percent: float = 85.0  # calibrated similarity, 70 to 95
    search_top_k: int = 50
    search_verify_top: int = 10  # candidates re-checked by exact distance

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
    # A publish that takes longer fails (and is retried): the broker is away.
    publish_timeout_seconds: float = 10.0
    # Read models behind and not moving for this long, despite republishing: new broker clients.
    reconnect_after_seconds: float = 60.0

    # Input limits: bigger images are rejected before decoding.
    max_image_pixels: int = 60_000_000
    max_upload_bytes: int = 50 * 1024 * 1024

    # Local imports are allowed only under these directories (empty: none allowed).
    allowed_import_roots: list[Path] = Field(default_factory=list)
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

    # Remote imports (VK, Yandex.Disk). Tests point the bases at local fakes; plain http is
    # accepted only for loopback bases, and only when import_allow_loopback_http is on.
    vk_api_base: str = "https://api.vk.com/method"
    yadisk_api_base: str = "https://cloud-api.yandex.net"
    vk_id_base: str = "https://id.vk.com"
    # The VK ID app of this deployment; its redirect URI points at /api/oauth/vk/callback.
    vk_client_id: str = ""
    vk_redirect_uri: str = ""
    # Yandex OAuth (sign-in for imports from the user's own Yandex.Disk): the app of this
    # deployment, registered with the Disk read permission; its redirect URI points at
    # /api/oauth/yandex/callback. An empty scope asks for the app's registered permissions.
    yandex_oauth_base: str = "https://oauth.yandex.ru"
    yandex_client_id: str = ""
    yandex_client_secret: SecretStr = SecretStr("")
    yandex_redirect_uri: str = ""
    yandex_scope: str = "cloud_api:disk.read"
    import_allow_loopback_http: bool = False
    vk_requests_per_second: float = 3.0  # VK allows 3 API calls a second per token
    import_backoff_seconds: float = 1.0  # first wait after a "too many requests" answer
    import_concurrency: int = 4  # photos downloaded at once by one import job
    oauth_state_seconds: float = 600.0  # how long a started sign-in may take

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
