"""The people read model: each person (id, name, size, representative face, edited or not)
and its member faces, per owner and embedding model; and the face sets clustering reads.

Every row follows from the People events alone, so `facesearch replay people` rebuilds it
identically (timestamps come from the events).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.envelope import EventEnvelope
from projections.base import Projection
from projections.tables import faces, hidden_people, people, people_models, person_faces, photos

people_projection = Projection("people", ("people",), (people_models, people, person_faces, hidden_people))


async def _stream(conn: AsyncConnection, people_id: str):
    return (await conn.execute(sa.select(people_models).where(people_models.c.people_id == people_id))).one()


async def _insert_person(
    conn: AsyncConnection, e: EventEnvelope, person_id: str, face_ids: list[str], representative: str, edited: bool,
    name: str = "",
) -> None:
    stream = await _stream(conn, e.aggregate_id)
    await conn.execute(people.insert().values(
        id=person_id, people_id=e.aggregate_id, owner=stream.owner, model=stream.model, name=name, size=len(face_ids),
        representative_face_id=representative, edited=edited, updated_at=e.timestamp,
    ))
    await _insert_faces(conn, e.aggregate_id, person_id, face_ids)


async def _insert_faces(conn: AsyncConnection, people_id: str, person_id: str, face_ids: Iterable[str]) -> None:
    rows = [dict(people_id=people_id, face_id=f, person_id=person_id) for f in face_ids]
    if rows:
        await conn.execute(person_faces.insert(), rows)


async def _refresh(conn: AsyncConnection, person_ids: Iterable[str], timestamp: str, **values: Any) -> None:
    """Recounts these people's faces (a person with none is gone) and sets `values`."""
    for person_id in set(person_ids):
        size = (await conn.execute(
            sa.select(sa.func.count()).select_from(person_faces).where(person_faces.c.person_id == person_id)
        )).scalar_one()
        if size == 0:
            await conn.execute(people.delete().where(people.c.id == person_id))
        else:
            await conn.execute(people.update().where(people.c.id == person_id).values(size=size, updated_at=timestamp, **values))


@people_projection.on("PeopleStarted")
async def people_started(conn: AsyncConnection, e: EventEnvelope) -> None:
    await conn.execute(people_models.insert().values(
        people_id=e.aggregate_id, owner=e.payload["owner"], model=e.payload["model"], runs=0, unassigned=0,
    ))


@people_projection.on("ClusteringCompleted")
async def clustering_completed(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    automatic = sa.select(people.c.id).where((people.c.people_id == e.aggregate_id) & people.c.edited.is_(False))
    await conn.execute(person_faces.delete().where(person_faces.c.person_id.in_(automatic)))
    await conn.execute(people.delete().where((people.c.people_id == e.aggregate_id) & people.c.edited.is_(False)))
    for person_id, face_ids in p["people"].items():
        await _insert_person(conn, e, person_id, face_ids, p["representatives"][person_id], edited=False)
    for person_id, face_ids in p["attached"].items():
        await _insert_faces(conn, e.aggregate_id, person_id, face_ids)
    await _refresh(conn, p["attached"], e.timestamp)
    await conn.execute(people_models.update().where(people_models.c.people_id == e.aggregate_id).values(
        runs=people_models.c.runs + 1, algorithm=p["algorithm"], parameters=p["parameters"],
        unassigned=len(p["unassigned"]), clustered_at=e.timestamp,
    ))


@people_projection.on("FacesAttached")
async def faces_attached(conn: AsyncConnection, e: EventEnvelope) -> None:
    for person_id, face_ids in e.payload["attached"].items():
        await _insert_faces(conn, e.aggregate_id, person_id, face_ids)
    await _refresh(conn, e.payload["attached"], e.timestamp)
    await conn.execute(people_models.update().where(people_models.c.people_id == e.aggregate_id).values(
        unassigned=people_models.c.unassigned + len(e.payload["unassigned"]),
    ))


@people_projection.on("PersonNamed")
async def person_named(conn: AsyncConnection, e: EventEnvelope) -> None:
    await conn.execute(people.update().where(people.c.id == e.payload["person_id"]).values(
        name=e.payload["name"], edited=True, updated_at=e.timestamp,
    ))


@people_projection.on("PeopleMerged")
async def people_merged(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    await conn.execute(person_faces.update().where(person_faces.c.person_id == p["merged_id"]).values(person_id=p["person_id"]))
    await conn.execute(people.delete().where(people.c.id == p["merged_id"]))
    await conn.execute(hidden_people.delete().where(hidden_people.c.person_id == p["merged_id"]))
    await _refresh(conn, [p["person_id"]], e.timestamp, name=p["name"], representative_face_id=p["representative"], edited=True)


async def _take_out(conn: AsyncConnection, people_id: str, face_id: str) -> None:
    await conn.execute(person_faces.delete().where(
        (person_faces.c.people_id == people_id) & (person_faces.c.face_id == face_id)
    ))


@people_projection.on("FaceMoved")
async def face_moved(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    await _take_out(conn, e.aggregate_id, p["face_id"])
    if p["from_person"]:
        extra = {"representative_face_id": p["from_representative"]} if p["from_representative"] else {}
        await _refresh(conn, [p["from_person"]], e.timestamp, **extra)
    if p["created"]:
        await _insert_person(conn, e, p["to_person"], [p["face_id"]], p["face_id"], edited=True)
    else:
        await _insert_faces(conn, e.aggregate_id, p["to_person"], [p["face_id"]])
        await _refresh(conn, [p["to_person"]], e.timestamp, edited=True)


@people_projection.on("FaceRejected")
async def face_rejected(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    await _take_out(conn, e.aggregate_id, p["face_id"])
    extra = {"representative_face_id": p["representative"]} if p["representative"] else {}
    await _refresh(conn, [p["person_id"]], e.timestamp, edited=True, **extra)


@people_projection.on("PersonSplit")
async def person_split(conn: AsyncConnection, e: EventEnvelope) -> None:
    p = e.payload
    await conn.execute(person_faces.delete().where(
        (person_faces.c.people_id == e.aggregate_id) & person_faces.c.face_id.in_(p["face_ids"])
    ))
    await _refresh(conn, [p["person_id"]], e.timestamp, representative_face_id=p["representative"], edited=True)
    await _insert_person(conn, e, p["new_person_id"], p["face_ids"], p["new_representative"], edited=True)


@people_projection.on("PeopleDeclared")
async def people_declared(conn: AsyncConnection, e: EventEnvelope) -> None:
    ids = [e.payload["person_id"], e.payload["other_id"]]
    await conn.execute(people.update().where(people.c.id.in_(ids)).values(edited=True, updated_at=e.timestamp))


@people_projection.on("PersonHidden")
async def person_hidden(conn: AsyncConnection, e: EventEnvelope) -> None:
    person_id = e.payload["person_id"]
    await conn.execute(hidden_people.delete().where(hidden_people.c.person_id == person_id))
    if e.payload["hidden"]:
        await conn.execute(hidden_people.insert().values(person_id=person_id, people_id=e.aggregate_id))
    await conn.execute(people.update().where(people.c.id == person_id).values(edited=True, updated_at=e.timestamp))


@people_projection.on("CoverChosen")
async def cover_chosen(conn: AsyncConnection, e: EventEnvelope) -> None:
    await conn.execute(people.update().where(people.c.id == e.payload["person_id"]).values(
        representative_face_id=e.payload["face_id"], edited=True, updated_at=e.timestamp,
    ))


@people_projection.on("FacesReviewed")
async def faces_reviewed(conn: AsyncConnection, e: EventEnvelope) -> None:
    accepted: dict[str, str] = e.payload["accepted"]
    for face_id, person_id in accepted.items():
        await _insert_faces(conn, e.aggregate_id, person_id, [face_id])
    await _refresh(conn, accepted.values(), e.timestamp, edited=True)
    declined = set(e.payload["declined"].values()) - set(accepted.values())
    if declined:
        await conn.execute(people.update().where(people.c.id.in_(declined)).values(edited=True, updated_at=e.timestamp))
    await conn.execute(people_models.update().where(people_models.c.people_id == e.aggregate_id).values(
        unassigned=people_models.c.unassigned - len(accepted),
    ))


# Queries ------------------------------------------------------------------------------------


def _person_columns():
    hidden = sa.exists().where(hidden_people.c.person_id == people.c.id)
    return (people.c.id, people.c.name, people.c.size, people.c.representative_face_id, people.c.edited,
            people.c.updated_at, hidden.label("hidden"))


async def list_people(
    engine: AsyncEngine, owner: str, model: str, search: str = "", include_hidden: bool = True,
) -> list[dict[str, Any]]:
    """The owner's people for `model`, largest first: id, name, size, representative_face_id,
    edited, updated_at, hidden. `search`: only names containing it (any case); hidden people
    are left out unless `include_hidden`."""
    query = (
        sa.select(*_person_columns())
        .where((people.c.owner == owner) & (people.c.model == model))
        .order_by(people.c.size.desc(), people.c.id)
    )
    if not include_hidden:
        query = query.where(~sa.exists().where(hidden_people.c.person_id == people.c.id))
    async with engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(query)]
    # Folded here, not in SQL: SQLite's lower() knows only ASCII, and names are often Cyrillic.
    wanted = search.strip().casefold()
    return [r for r in rows if wanted in r["name"].casefold()] if wanted else rows


async def person_row(engine: AsyncEngine, owner: str, model: str, person_id: str) -> dict[str, Any] | None:
    """One of the owner's people for `model`, as `list_people` gives it; None when it is not theirs."""
    query = sa.select(*_person_columns()).where(
        (people.c.id == person_id) & (people.c.owner == owner) & (people.c.model == model)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None


async def person_photos(engine: AsyncEngine, owner: str, person_id: str, limit: int) -> list[dict[str, Any]]:
    """The person's photos, newest first, each with the person's face in it: face_id,
    photo_id, imported_at, the face's box x1..y2 and the photo's width and height (one row
    per photo: a person appears once in a photo)."""
    query = (
        sa.select(person_faces.c.face_id, faces.c.photo_id, photos.c.imported_at, faces.c.x1, faces.c.y1,
                  faces.c.x2, faces.c.y2, photos.c.width, photos.c.height)
        .join(people, people.c.id == person_faces.c.person_id)
        .join(faces, faces.c.id == person_faces.c.face_id)
        .outerjoin(photos, photos.c.id == faces.c.photo_id)
        .where((person_faces.c.person_id == person_id) & (people.c.owner == owner) & faces.c.deleted.is_(False))
        .order_by(photos.c.imported_at.desc(), faces.c.photo_id)
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def faces_of_people(engine: AsyncEngine, owner: str, person_ids: list[str]) -> dict[str, list[str]]:
    """The face ids of each of these people of the owner's, in id order (one query for many)."""
    result: dict[str, list[str]] = {p: [] for p in person_ids}
    if not person_ids:
        return result
    query = (
        sa.select(person_faces.c.person_id, person_faces.c.face_id)
        .join(people, people.c.id == person_faces.c.person_id)
        .where(person_faces.c.person_id.in_(person_ids) & (people.c.owner == owner))
        .order_by(person_faces.c.face_id)
    )
    async with engine.connect() as conn:
        for row in await conn.execute(query):
            result[row.person_id].append(row.face_id)
    return result


async def faces_of_person(engine: AsyncEngine, person_id: str) -> list[str]:
    """The face ids of one person, in id order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(person_faces.c.face_id).where(person_faces.c.person_id == person_id).order_by(person_faces.c.face_id)
        )
        return [r[0] for r in rows]


async def person_of_faces(engine: AsyncEngine, owner: str, model: str, face_ids: list[str]) -> dict[str, str]:
    """Face id → person id for those of these faces that belong to someone."""
    if not face_ids:
        return {}
    query = (
        sa.select(person_faces.c.face_id, person_faces.c.person_id)
        .join(people_models, people_models.c.people_id == person_faces.c.people_id)
        .where((people_models.c.owner == owner) & (people_models.c.model == model) & person_faces.c.face_id.in_(face_ids))
    )
    async with engine.connect() as conn:
        return {r.face_id: r.person_id for r in await conn.execute(query)}


async def people_of_faces(engine: AsyncEngine, owner: str, model: str, face_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Face id → (person id, name) for those of these faces that belong to someone."""
    if not face_ids:
        return {}
    query = (
        sa.select(person_faces.c.face_id, person_faces.c.person_id, people.c.name)
        .join(people_models, people_models.c.people_id == person_faces.c.people_id)
        .join(people, people.c.id == person_faces.c.person_id)
        .where((people_models.c.owner == owner) & (people_models.c.model == model) & person_faces.c.face_id.in_(face_ids))
    )
    async with engine.connect() as conn:
        return {r.face_id: (r.person_id, r.name) for r in await conn.execute(query)}


async def embedded_faces(
    engine: AsyncEngine, owner: str, model: str, exclude: set[str] | None = None,
) -> list[tuple[str, bool]]:
    """The owner's faces embedded by `model` (not deleted), in id order, each with whether
    it is flagged low quality."""
    query = (
        sa.select(faces.c.id, faces.c.flags, faces.c.models)
        .where((faces.c.owner == owner) & faces.c.deleted.is_(False) & faces.c.models.like(f"%{model}%"))
        .order_by(faces.c.id)
    )
    async with engine.connect() as conn:
        return [
            (r.id, bool(r.flags)) for r in await conn.execute(query)
            if model in r.models.split(",") and r.id not in (exclude or ())
        ]
