"""Both embedding models side by side, on real parts (tansu, real weights, Milvus Lite):
every face in one collection per model, and a model added to an archive that already
exists filled in from the stored photos while the other model keeps answering searches."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from pathlib import Path
from uuid import UUID

import sqlalchemy as sa

from commands.policies import EmbedPhoto
from domain.envelope import partition_for
from facesearch.services.imports import import_local
from facesearch.services.search import search_by_example
from facesearch.system import System
from projections.tables import faces
from projections.vectors import collection_name
from tests.pipeline.conftest import lfw_identities, wait_until_analysed

BOTH = ["facenet512", "arcface"]


def album_of(data_dir: Path, tmp_path: Path) -> tuple[Path, int, bytes]:
    """A group photo (6 faces) and 3 photos each of 3 people; with a held-out photo of the first."""
    people = lfw_identities(data_dir, 3, 4)
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(data_dir / "photos" / "insightface" / "t1.jpg", album / "t1.jpg")
    for paths in people.values():
        for path in paths[:3]:
            shutil.copy(path, album / path.name)
    return album, 1 + 9, next(iter(people.values()))[3].read_bytes()


async def face_ids(system: System) -> set[str]:
    async with system.engine.connect() as conn:
        return set((await conn.execute(sa.select(faces.c.id).where(faces.c.deleted.is_(False)))).scalars())


def collection_ids(system: System, model: str) -> list[str]:
    rows = system.vectors.client.query(collection_name(model), filter='id != ""', output_fields=["id"], limit=16_384)
    return [str(r["id"]) for r in rows]


def embeddings_in_store(system: System) -> Counter:
    """(photo id, face index, model) -> how many FaceEmbedded events the store holds."""
    return Counter(
        (e.aggregate_id, e.payload["face_index"], e.payload["model"])
        for e in system.read_page(0, 100_000)
        if e.event_type == "FaceEmbedded"
    )


def assert_every_face_once_per_model(system: System, ids: set[str], models: list[str]) -> None:
    stored = embeddings_in_store(system)
    expected = {(fid.rsplit(":", 1)[0], int(fid.rsplit(":", 1)[1]), m) for fid in ids for m in models}
    assert set(stored) == expected  # nothing lost
    assert set(stored.values()) == {1}  # nothing twice
    for model in models:
        in_milvus = collection_ids(system, model)
        assert sorted(in_milvus) == sorted(ids), model  # the same face ids, each once


async def test_a_new_photo_gets_a_vector_per_model_under_the_same_face_ids(pipeline_settings, data_dir, tmp_path):
    settings = pipeline_settings.model_copy(update={"embedders": BOTH})
    album, expected, held_out = album_of(data_dir, tmp_path)
    system = System(settings)
    await system.start(workers=True)
    try:
        assert list(system.workers[0].analyzers) == BOTH
        await asyncio.to_thread(import_local, system.app, settings, str(album), owner="ann", operator=True)
        await wait_until_analysed(system, expected)
        ids = await face_ids(system)
        assert len(ids) >= 6 + 9
        assert_every_face_once_per_model(system, ids, BOTH)
        async with system.engine.connect() as conn:
            assert set((await conn.execute(sa.select(faces.c.models))).scalars()) == {"arcface,facenet512"}
        assert await system.embedding_progress() == {m: {"embedded": len(ids), "faces": len(ids)} for m in BOTH}
        # Detected once: the detector of the second model's analyzer never loaded.
        assert "detector" not in vars(system.workers[0].analyzers["arcface"])
        found = await search_by_example(system, held_out, owner="ann")
        assert len(found.photos) >= 3
    finally:
        await system.stop()


async def search_while(system: System, example: bytes, until, log: list[tuple[int, int]]) -> None:
    """Searches with the primary model in a loop until `until()`; logs (arcface embedded, hits)."""
    while not await until():
        progress = await system.embedding_progress()
        found = await search_by_example(system, example, owner="ann")
        log.append((progress["arcface"]["embedded"], len(found.photos)))


async def test_a_model_added_later_fills_in_while_the_first_keeps_answering(pipeline_settings, data_dir, tmp_path):
    album, expected, held_out = album_of(data_dir, tmp_path)
    first = System(pipeline_settings)  # facenet512 alone
    await first.start(workers=True)
    try:
        await asyncio.to_thread(import_local, first.app, pipeline_settings, str(album), owner="ann", operator=True)
        await wait_until_analysed(first, expected)
        ids = await face_ids(first)
        assert_every_face_once_per_model(first, ids, ["facenet512"])
        assert (await first.embedding_progress())["facenet512"] == {"embedded": len(ids), "faces": len(ids)}
    finally:
        await first.stop()

    # Restarted with both models; the re-embedding pass asks 2 photos at a time, so it takes
    # several rounds, and the second system is stopped in the middle of it.
    both = pipeline_settings.model_copy(update={
        "embedders": BOTH, "reembed_batch": 2, "reembed_every_seconds": 1.0, "reembed_grace_seconds": 0.0,
    })
    searches: list[tuple[int, int]] = []

    async def arcface_embedded(system: System) -> int:
        return (await system.embedding_progress())["arcface"]["embedded"]

    second = System(both)
    await second.start(workers=True, reembed=True)
    try:
        assert (await second.embedding_progress())["arcface"] == {"embedded": 0, "faces": len(ids)}

        async def partly_done() -> bool:
            return await arcface_embedded(second) >= 2

        await asyncio.wait_for(search_while(second, held_out, partly_done, searches), 180)
        assert await arcface_embedded(second) < len(ids), "the restart must come in the middle"
    finally:
        await second.stop()

    third = System(both)
    await third.start(workers=True, reembed=True)
    try:
        async def all_done() -> bool:
            return await arcface_embedded(third) == len(ids)

        await asyncio.wait_for(search_while(third, held_out, all_done, searches), 300)
        await third.wait_until_caught_up()
        # facenet512 answered every search, including those made while arcface was partial.
        assert all(hits >= 3 for _, hits in searches), searches
        assert sum(1 for embedded, _ in searches if 0 < embedded < len(ids)) >= 1, searches
        assert third.reembedder is not None and third.reembedder.asked >= 1
        assert await third.embedding_progress() == {m: {"embedded": len(ids), "faces": len(ids)} for m in BOTH}
        assert_every_face_once_per_model(third, ids, BOTH)
        assert await asyncio.to_thread(third.vectors.count, "arcface") == len(ids)
        found = await search_by_example(third, held_out, owner="ann", model="arcface")
        assert len(found.photos) >= 3  # the filled-in model finds the same person

        # A redelivered EmbedPhoto (through the broker, and straight to the worker) records nothing.
        worker = third.workers[0]
        before, skipped = embeddings_in_store(third), worker.stats.redelivered
        photo_id = next(iter(ids)).rsplit(":", 1)[0]
        photo = third.app.get_photo(UUID(photo_id))
        command = EmbedPhoto(photo_id, photo.content_hash, "ann", "arcface")
        topic = third.transport.command_topic("embed")
        await third.transport.publish(topic, photo_id, partition_for(photo_id, both.partitions), command.to_dict())
        for _ in range(200):
            if worker.stats.redelivered > skipped:
                break
            await asyncio.sleep(0.1)
        assert worker.stats.redelivered > skipped
        reembedded = worker.stats.reembedded
        await worker.handle_embed_batch([command.to_dict(), command.to_dict()])
        assert worker.stats.reembedded == reembedded
        await third.wait_until_caught_up()
        assert embeddings_in_store(third) == before
    finally:
        await third.stop()
