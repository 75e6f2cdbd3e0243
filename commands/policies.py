"""Which commands the system sends when something happens."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from domain.envelope import EventEnvelope


@dataclass(frozen=True)
class AnalysePhoto:
    """Asks the workers to find, align and embed every face of one stored photo."""

    photo_id: str
    content_hash: str
    owner: str
    kind: str = "analyse"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysePhoto:
        return cls(photo_id=data["photo_id"], content_hash=data["content_hash"], owner=data["owner"])


@dataclass(frozen=True)
class EmbedPhoto:
    """Asks the workers to embed the already detected faces of one photo with `model` (a
    model added after the photo was analysed): the stored boxes and landmarks, no detection."""

    photo_id: str
    content_hash: str
    owner: str
    model: str
    kind: str = "embed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedPhoto:
        return cls(photo_id=data["photo_id"], content_hash=data["content_hash"], owner=data["owner"], model=data["model"])


def commands_for(envelope: EventEnvelope) -> list[AnalysePhoto]:
    if envelope.event_type == "PhotoImported":
        payload = envelope.payload
        return [AnalysePhoto(envelope.aggregate_id, payload["content_hash"], payload["owner"])]
    return []
