"""People on the real pipeline: LFW photos imported, analysed by the real models, indexed in
Milvus Lite; a run, a name, then a new photo of that person joins through Milvus alone."""

from __future__ import annotations

import asyncio
import shutil

from commands.people import name_person, peek_people
from facesearch.services.imports import import_local
from facesearch.services.people import attach_new_faces, run_clustering
from facesearch.system import System
from projections.people import faces_of_person, list_people, people_projection
from projections.replay import table_checksums
from tests.pipeline.conftest import lfw_identities, wait_until_analysed


async def test_new_photo_of_a_named_person_joins_through_milvus(pipeline_settings, data_dir, tmp_path):
    people = lfw_identities(data_dir, 3, 7)  # 6 photos each now, one of the first later
    album, later = tmp_path / "album", tmp_path / "later"
    album.mkdir()
    later.mkdir()
    for paths in people.values():
        for path in paths[:6]:
            shutil.copy(path, album / path.name)
    first = next(iter(people))
    shutil.copy(people[first][6], later / people[first][6].name)

    system = System(pipeline_settings)
    await system.start(workers=True)
    try:
        await asyncio.to_thread(import_local, system.app, pipeline_settings, str(album), owner="ann", operator=True)
        await wait_until_analysed(system, 18)
        run = await run_clustering(system, "ann")
        assert run.faces >= 18 and run.people >= 3  # some LFW photos show a second, background face
        await system.wait_until_caught_up()
        refs = await _refs(system)
        state = peek_people(system.app, "ann", "facenet512")
        # The first identity is one person of its 6 photos' main faces, nobody else's among them.
        own = {p.name for p in people[first][:6]}
        holders = {state.person_of.get(f) for f, ref in refs.items() if ref in own} - {None}
        assert len(holders) == 1
        [holder] = holders
        assert {refs[f] for f in state.persons[holder].faces} == own
        ann = next(state.person_of[f] for f, ref in refs.items() if ref == people[first][0].name and f in state.person_of)
        assert len(await list_people(system.engine, "ann", "facenet512")) == run.people
        await asyncio.to_thread(name_person, system.app, "ann", "facenet512", ann, "Ann")

        await asyncio.to_thread(import_local, system.app, pipeline_settings, str(later), owner="ann", operator=True)
        await wait_until_analysed(system, 19)
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


async def _refs(system: System) -> dict[str, str]:
    """Face id → file name of its photo."""
    import sqlalchemy as sa

    from projections.tables import faces

    async with system.engine.connect() as conn:
        rows = await conn.execute(sa.select(faces.c.id, faces.c.source_ref))
        return {r.id: r.source_ref.rsplit("/", 1)[-1] for r in rows}
