"""What every resolver gets: the signed-in user, the System, and this request's dataloaders.

Dataloaders batch the lookups a list of photos triggers (their faces, sources, import
jobs; a list of people, their faces) into one query per kind, so a page of 50 photos costs
a handful of queries, not 150.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from api import queries
from api.users import User

if TYPE_CHECKING:
    from api.imports import ImportJobs
    from api.search import ExampleStore
    from facesearch.system import System


@dataclass
class Loaders:
    faces: DataLoader[str, list[dict[str, Any]]]
    sources: DataLoader[str, list[dict[str, Any]]]
    imports: DataLoader[str, dict[str, Any] | None]
    problems: DataLoader[str, list[dict[str, Any]]]
    photos: DataLoader[str, dict[str, Any] | None]
    person_faces: DataLoader[str, list[str]]


def make_loaders(engine, owner: str) -> Loaders:
    async def faces(ids: list[str]) -> list[list[dict[str, Any]]]:
        found = await queries.faces_by_photo(engine, owner, ids)
        return [found.get(i, []) for i in ids]

    async def sources(ids: list[str]) -> list[list[dict[str, Any]]]:
        found = await queries.sources_by_photo(engine, owner, ids)
        return [found.get(i, []) for i in ids]

    async def imports(ids: list[str]) -> list[dict[str, Any] | None]:
        found = await queries.imports_by_ids(engine, owner, ids)
        return [found.get(i) for i in ids]

    async def problems(ids: list[str]) -> list[list[dict[str, Any]]]:
        found = await queries.problems_by_import(engine, owner, ids)
        return [found.get(i, []) for i in ids]

    async def photos(ids: list[str]) -> list[dict[str, Any] | None]:
        found = await queries.photos_by_ids(engine, owner, ids)
        return [found.get(i) for i in ids]

    async def person_faces(ids: list[str]) -> list[list[str]]:
        from projections.people import faces_of_people

        found = await faces_of_people(engine, owner, ids)
        return [found.get(i, []) for i in ids]

    return Loaders(DataLoader(faces), DataLoader(sources), DataLoader(imports), DataLoader(problems), DataLoader(photos),
                   DataLoader(person_faces))


@dataclass
class Context(BaseContext):
    user: User | None = None
    system: System | None = None
    imports: ImportJobs | None = None
    examples: ExampleStore | None = None
    loaders: Loaders | None = field(default=None)

    def __post_init__(self) -> None:
        super().__init__()


class SignedInContext(Protocol):
    """A `Context` whose user signed in, so it has loaders too (what resolvers get from `_ctx`)."""

    user: User
    system: System
    imports: ImportJobs
    examples: ExampleStore
    loaders: Loaders
