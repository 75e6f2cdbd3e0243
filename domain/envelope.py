"""The message every stored event becomes on the broker: small, JSON-safe, self-describing."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class EventEnvelope:
    notification_id: int  # position in the event store's application sequence
    family: str  # "photos", "imports", ...: one topic each
    aggregate_id: str
    aggregate_version: int
    event_type: str  # "PhotoImported", "FacesDetected", ...
    schema_version: int
    timestamp: str  # ISO 8601, UTC
    payload: dict[str, Any]
    # The notification id of the message before this one on the same topic partition
    # (0 for the first): consumers apply a message only when it follows what they have.
    previous_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventEnvelope:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def partition_for(aggregate_id: str, partitions: int) -> int:
    """Stable partition of an aggregate: all its events travel, in order, on one partition."""
    return zlib.crc32(aggregate_id.encode()) % partitions
