"""Turns stored events into broker envelopes (upcasting old versions on the way)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification

from domain.envelope import EventEnvelope
from domain.families import family_of_event

_BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def _json_safe(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def to_envelope(app: Application[Any], notification: Notification) -> EventEnvelope:
    # Upcasts to the current class version; every stored event is an aggregate's (domain/), with a timestamp.
    event = cast(Aggregate.Event, app.mapper.to_domain_event(notification))
    payload = {k: _json_safe(v) for k, v in event.__dict__.items() if k not in _BASE_FIELDS}
    return EventEnvelope(
        notification_id=notification.id,
        family=family_of_event(event),
        aggregate_id=str(event.originator_id),
        aggregate_version=event.originator_version,
        event_type=type(event).__name__,
        schema_version=getattr(type(event), "class_version", 1),
        timestamp=event.timestamp.isoformat(),
        payload=payload,
    )


def read_envelopes(app: Application[Any], after: int, limit: int) -> list[EventEnvelope]:
    """Up to `limit` envelopes with notification id greater than `after`, in order."""
    notifications = app.recorder.select_notifications(start=after, limit=limit, inclusive_of_start=False)
    return [to_envelope(app, n) for n in notifications]


def iter_envelopes(app: Application[Any], after: int = 0, page: int = 1000) -> Iterator[EventEnvelope]:
    while True:
        batch = read_envelopes(app, after, page)
        if not batch:
            return
        yield from batch
        after = batch[-1].notification_id


def max_notification_id(app: Application[Any]) -> int:
    return app.recorder.max_notification_id() or 0
