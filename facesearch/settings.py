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
    redelivery_after_seconds: float = 5.0
    reconcile_after_seconds: float = 60.0

    # Input limits: bigger images are rejected before decoding.
    max_image_pixels: int = 60_000_000
    max_upload_bytes: int = 50 * 1024 * 1024

    # Local imports are allowed only under these directories (empty: none allowed).
    allowed_import_roots: list[Path] = Field(default_factory=list)
    # Fernet key(s), comma-separated, newest first, encrypting VK / Yandex.Disk tokens at rest.
    token_key: SecretStr = SecretStr("")

    api_host: str = "127.0.0.1"
    api_port: int = 8000

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
