"""Which aggregate's events travel on which topic ("family")."""

from __future__ import annotations

from domain.import_job import ImportJob
from domain.people import People
from domain.photo import Photo

FAMILY_OF_AGGREGATE: dict[type, str] = {Photo: "photos", ImportJob: "imports", People: "people"}
FAMILIES: tuple[str, ...] = tuple(FAMILY_OF_AGGREGATE.values())


def family_of_event(event: object) -> str:
    """The family of a domain event: each aggregate and its events share one module."""
    module = type(event).__module__
    for aggregate, family in FAMILY_OF_AGGREGATE.items():
        if aggregate.__module__ == module:
            return family
    raise LookupError(f"no family for event {type(event).__name__}")
