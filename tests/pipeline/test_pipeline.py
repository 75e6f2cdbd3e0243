"""The whole pipeline on real parts: import → event store → relay → tansu → workers (real
models) → events → faces read model and Milvus Lite → search by example."""

from __future__ import annotations

import asyncio
import io
import shutil

import pytest
import sqlalchemy as sa
from PIL import Image

from commands.images import FORMATS_IN_WORDS
from facesearch.services.imports import import_local
from facesearch.services.search import SearchFilters, SearchInputError, search_by_example
from facesearch.system import System
from projections.faces import photos_without_faces
from projections.replay import table_checksums
from projections.tables import face_photos, faces, photos
from tests.pipeline.conftest import collage, lfw_identities, wait_until_analysed


async def rows(system: System, query) -> list[dict]:
    async with system.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def test_photos_are_analysed_indexed_and_found_by_example(pipeline_settings, data_dir, tmp_path):
    people = lfw_identities(data_dir, 3, 5)  # per person: 3 imported alone, 1 in the group, 1 held out
    names = list(people)
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(data_dir / "photos" / "insightface" / "t1.jpg", album / "t1.jpg")  # 6 people
    for name, paths in people.items():
        for path in paths[:3]:
            shutil.copy(path, album / path.name)
    (album / "group.jpg").write_bytes(collage([paths[3] for paths in people.values()]))
    clean = sorted((data_dir / "no_faces" / "clean").iterdir())[:2]
    for path in clean:
        shutil.copy(path, album / f"noface_{path.name}")
    expected_photos = 1 + 9 + 1 + len(clean)

    system = System(pipeline_settings)
    await system.start(workers=True)
    try:
        result = await asyncio.to_thread(import_local, system.app, pipeline_settings, str(album), owner="ann", operator=True)
        assert result.counts["stored"] == expected_photos
        await wait_until_analysed(system, expected_photos)

        by_ref = {r["source_ref"].rsplit("/", 1)[-1]: r for r in await rows(system, sa.select(photos))}
        # The group photo: all 6 faces found, in the faces read model and in Milvus.
        t1 = by_ref["t1.jpg"]
        assert t1["status"] == "analysed" and t1["face_count"] == 6
        t1_faces = await rows(system, sa.select(faces).where(faces.c.photo_id == t1["id"]))
        assert len(t1_faces) == 6
        assert all(f["models"] == "facenet512" and f["detector"] == "retinaface" and len(f["landmarks"]) == 5 for f in t1_faces)
        assert all(f["owner"] == "ann" and f["source"] == "local" and f["processed_at"] for f in t1_faces)
        all_faces = await rows(system, sa.select(faces))
        assert await asyncio.to_thread(system.vectors.count, "facenet512") == len(all_faces)

        # Photos without faces: their own category, never faces.
        no_faces = await photos_without_faces(system.engine, owner="ann")
        assert sorted(r["source_ref"].rsplit("/", 1)[-1] for r in no_faces) == sorted(f"noface_{p.name}" for p in clean)
        assert all(by_ref[f"noface_{p.name}"]["status"] == "no_faces" for p in clean)

        # Search with a held-out photo of the first person: their 3 photos and the group photo,
        # with the box of their face (the first tile), and nobody else's photos.
        held_out = people[names[0]][4].read_bytes()
        found = await search_by_example(system, held_out, owner="ann")
        refs = {p.source_ref.rsplit("/", 1)[-1]: p for p in found.photos}
        own = {p.name for p in people[names[0]][:3]}
        others = {p.name for name in names[1:] for p in people[name][:3]}
        assert own <= set(refs), (own, list(refs))
        assert not others & set(refs)
        group = refs["group.jpg"]
        assert len(group.faces) == 1
        box = group.faces[0].box
        assert 0 <= (box.x1 + box.x2) / 2 < 250  # the face in the first tile
        assert all(85 <= m.similarity <= 100 for p in found.photos for m in p.faces)
        assert found.agreement.checked > 0 and found.agreement.rate == 1.0
        assert found.agreement.max_difference < 1e-3  # HNSW distances are exact for what it returns

        # The owner filter: another user's search sees none of ann's photos.
        assert (await search_by_example(system, held_out, owner="bob")).photos == []
        # A source filter that matches nothing.
        assert (await search_by_example(system, held_out, owner="ann", filters=SearchFilters(source="vk"))).photos == []

        # Choosing a face of a group example: face i of the group photo finds person i.
        group_bytes = (album / "group.jpg").read_bytes()
        searched = await search_by_example(system, group_bytes, owner="ann", face_index=None)
        assert len(searched.example_faces) >= 3

        # Bad examples are clear errors.
        gif = io.BytesIO()
        Image.new("RGB", (32, 32)).save(gif, "GIF")
        with pytest.raises(SearchInputError, match=FORMATS_IN_WORDS):
            await search_by_example(system, gif.getvalue(), owner="ann")
        with pytest.raises(SearchInputError, match="not an image"):
            await search_by_example(system, b"hello", owner="ann")
        with pytest.raises(SearchInputError, match="no face"):
            await search_by_example(system, clean[0].read_bytes(), owner="ann")
        with pytest.raises(SearchInputError, match="threshold"):
            await search_by_example(system, held_out, owner="ann", threshold=99)

        # Verification: same person vs different people.
        searcher = system.searcher
        same = await searcher.verify_pair(people[names[0]][0].read_bytes(), held_out)
        different = await searcher.verify_pair(people[names[1]][0].read_bytes(), held_out)
        assert same.same and not different.same and same.similarity > different.similarity

        # Replay rebuilds the faces read model identically, and Milvus with as many vectors.
        before = await table_checksums(system.runner, [faces, face_photos])
        counts = await system.replay(["faces", "vectors"])
        assert await table_checksums(system.runner, [faces, face_photos]) == before
        assert counts["faces"] == counts["vectors"]
        assert await asyncio.to_thread(system.vectors.count, "facenet512") == len(all_faces)
        again = await search_by_example(system, held_out, owner="ann")
        assert {p.photo_id for p in again.photos} == {p.photo_id for p in found.photos}
    finally:
        await system.stop()
