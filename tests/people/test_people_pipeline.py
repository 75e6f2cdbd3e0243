"""People on the real pipeline: LFW photos imported, analysed by the real models, indexed in
Milvus Lite; a run, a name, then a new photo of that person joins through Milvus alone."""

from __future__ import annotations

import asyncio
import shutil

from commands.people import attach_new_faces, name_person, peek_people, run_clustering
from facesearch.imports import import_local
from facesearch.system import System
from projections.people import faces_of_person, list_people, people_projection
from projections.replay import table_checksums
from tests.pipeline.conftest import data_dir, lfw_identities, models_dir, pipeline_settings, wait_until_analysed  # noqa: F401 (fixtures)


async def test_new_photo_of_a_named_person_joins_through_milvus(pipeline_settings, data_dir, tmp_path):
    people = lfw_identities(data_dir, 3, 5)
    album, later = tmp_path / "album", tmp_path / "later"
    album.mkdir()
    later.mkdir()
    for paths in people.values():
        for path in paths[:4]:
            shutil.copy(path, album / path.name)
    first = next(iter(people))
    shutil.copy(people[first][4], later / people[first][4].name)

    system = System(pipeline_settings)
    await system.start(workers=True)
    try:
        await asyncio.to_thread(import_local, system.app, pipeline_settings, str(album), owner="ann", operator=True)
        await wait_until_analysed(system, 12)
        run = await run_clustering(system, "ann")
        assert run.faces == 12 and run.people == 3
        await system.wait_until_caught_up()
        listed = await list_people(system.engine, "ann", "facenet512")
        assert sorted(r["size"] for r in listed) == [4, 4, 4]
        state = peek_people(system.app, "ann", "facenet512")
        by_name = {}
        for person in state.persons.values():
            refs = {ref.rsplit("/", 1)[-1] for ref in await _refs(system, person.faces)}
            by_name[next(n for n, paths in people.items() if refs == {p.name for p in paths[:4]})] = person.id
        ann = by_name[first]
        await asyncio.to_thread(name_person, system.app, "ann", "facenet512", ann, "Ann")

        await asyncio.to_thread(import_local, system.app, pipeline_settings, str(later), owner="ann", operator=True)
        await wait_until_analysed(system, 13)
        attached = await attach_new_faces(system, "ann")
        assert list(attached) == [ann] and len(attached[ann]) == 1
        await system.wait_until_caught_up()
        assert attached[ann][0] in await faces_of_person(system.engine, ann)
        assert peek_people(system.app, "ann", "facenet512").runs == 1  # no re-run

        live = await table_checksums(system.runner, people_projection.tables)
        await system.replay(["people"])  # what `facesearch replay people` does
        assert await table_checksums(system.runner, people_projection.tables) == live
    finally:
        await system.stop()


async def _refs(system: System, face_ids: list[str]) -> list[str]:
    import sqlalchemy as sa

    from projections.tables import faces

    async with system.engine.connect() as conn:
        rows = await conn.execute(sa.select(faces.c.source_ref).where(faces.c.id.in_(face_ids)))
        return [r[0] for r in rows]
