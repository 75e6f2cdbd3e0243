"""The cross-check on real parts: with FaceNet512 and ArcFace configured, every match of a
search carries both models' verdicts and the cross-check's; the option that keeps only the
matches the cross-check accepts drops a face the other model cannot vouch for."""

from __future__ import annotations

import asyncio
import shutil

from facesearch.services.imports import import_local
from facesearch.services.search import search_by_example
from facesearch.system import System
from projections.vectors import collection_name
from tests.pipeline.conftest import lfw_identities, wait_until_analysed

MODELS = ["facenet512", "arcface"]


async def test_each_match_has_both_verdicts_and_the_option_drops_what_one_model_rejects(pipeline_settings, data_dir, tmp_path):
    people = lfw_identities(data_dir, 3, 5)  # per person: 4 imported, 1 held out
    names = list(people)
    album = tmp_path / "album"
    album.mkdir()
    for paths in people.values():
        for path in paths[:4]:
            shutil.copy(path, album / path.name)
    settings = pipeline_settings.model_copy(update={"embedders": MODELS})
    system = System(settings)
    await system.start(workers=True)
    try:
        result = await asyncio.to_thread(import_local, system.app, settings, str(album), owner="ann", operator=True)
        assert result.counts["stored"] == 12
        await wait_until_analysed(system, 12)
        await system.wait_until_caught_up(60)
        faces = await asyncio.to_thread(system.vectors.count, "facenet512")
        assert await asyncio.to_thread(system.vectors.count, "arcface") == faces >= 12

        held_out = people[names[0]][4].read_bytes()
        own = {p.name for p in people[names[0]][:4]}
        found = await search_by_example(system, held_out, owner="ann")
        assert found.models == MODELS and found.archive_faces == faces
        matches = [(p.source_ref.rsplit("/", 1)[-1], m) for p in found.photos for m in p.faces]
        assert {ref for ref, _ in matches} == own, [ref for ref, _ in matches]
        for _, match in matches:
            assert [v.model for v in match.verdicts] == MODELS
            assert all(v.same and v.raw is not None and v.similarity >= 85 for v in match.verdicts), match.verdicts
            assert match.cross_check is True and match.cross_check_similarity >= 85
        assert found.photos[0].faces[0].verdicts[1].metric == "l2"  # ArcFace answers in its own metric

        both = await search_by_example(system, held_out, owner="ann", require_all_models=True)
        assert {p.photo_id for p in both.photos} == {p.photo_id for p in found.photos}

        # ArcFace loses one face's vector: the cross-check can no longer vouch for that face.
        dropped = found.photos[-1].faces[0].face_id
        await asyncio.to_thread(system.vectors.client.delete, collection_name("arcface"), ids=[dropped])
        plain = await search_by_example(system, held_out, owner="ann")
        kept = {m.face_id: m for p in plain.photos for m in p.faces}
        assert dropped in kept and kept[dropped].verdicts[1].same is None and kept[dropped].cross_check is False
        strict = await search_by_example(system, held_out, owner="ann", require_all_models=True)
        assert dropped not in {m.face_id for p in strict.photos for m in p.faces}
        assert len(strict.photos) == len(found.photos) - 1

        # Another person's photo: FaceNet may rank it, the cross-check refuses it.
        other = people[names[1]][4].read_bytes()
        refused = await search_by_example(system, other, owner="ann", require_all_models=True)
        assert not own & {p.source_ref.rsplit("/", 1)[-1] for p in refused.photos}
    finally:
        await system.stop()
