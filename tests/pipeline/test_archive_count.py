"""The archive size a search scales its percentages by comes from the faces read model
(projections.faces.archive_face_count), not from Milvus: Milvus Lite counts a filtered
collection row by row in Python, over a second a search at 20,000 faces. The two must agree
on every filter a search can carry, including the edges of a date range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from projections.faces import archive_face_count
from projections.tables import face_photos, faces, metadata
from projections.vectors import FaceVectorIndex, IndexConfig, epoch_seconds, filter_expression

T0 = datetime(2026, 11, 3, 12, 0, 0, tzinfo=UTC)


def archive() -> list[dict]:
    """Photos of two owners, two sources, two imports, a second apart (some on a whole second),
    with one to three faces; one face embedded by ArcFace only, one deleted."""
    rows = []
    for i in range(24):
        imported = T0 + timedelta(seconds=i // 2, microseconds=0 if i % 4 == 0 else 250_000)
        for k in range(1 + i % 3):
            rows.append({
                "photo_id": f"{i:08d}-0000-0000-0000-000000000000", "face_index": k,
                "owner": "ann" if i % 5 else "bob", "source": "local" if i % 2 else "vk",
                "import_id": "imp-a" if i < 12 else "imp-b", "imported_at": imported,
                "models": "arcface" if (i, k) == (7, 0) else "arcface,facenet512", "deleted": (i, k) == (8, 1),
            })
    return rows


@pytest.fixture
async def stores(tmp_path):
    rows = archive()
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'read.sqlite'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        photos = {r["photo_id"]: r for r in rows}
        await conn.execute(face_photos.insert(), [
            {"photo_id": p, "owner": r["owner"], "source": r["source"], "source_ref": p, "import_id": r["import_id"],
             "imported_at": r["imported_at"].isoformat(), "status": "analysed"} for p, r in photos.items()])
        await conn.execute(faces.insert(), [
            {"id": f"{r['photo_id']}:{r['face_index']}", "photo_id": r["photo_id"], "face_index": r["face_index"],
             "owner": r["owner"], "source": r["source"], "source_ref": r["photo_id"], "import_id": r["import_id"],
             "x1": 0, "y1": 0, "x2": 1, "y2": 1, "landmarks": [], "score": 1, "size_px": 1, "blur": 1, "flags": "",
             "detector": "retinaface", "detector_version": "1", "models": r["models"], "processed_at": "",
             "deleted": r["deleted"]} for r in rows])
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), IndexConfig(index_type="FLAT"))
    rng = np.random.default_rng(0)
    index.upsert("facenet512", [
        {"id": f"{r['photo_id']}:{r['face_index']}", "photo_id": r["photo_id"], "owner": r["owner"], "source": r["source"],
         "import_id": r["import_id"], "imported_at": epoch_seconds(r["imported_at"].isoformat()),
         "vector": (v / np.linalg.norm(v)).tolist()}
        for r, v in zip(rows, rng.normal(size=(len(rows), 16)).astype(np.float32))
        if "facenet512" in r["models"].split(",") and not r["deleted"]])
    yield engine, index
    index.close()
    await engine.dispose()


FILTERS = [
    {},
    {"source": "vk"},
    {"import_id": "imp-b"},
    {"source": "local", "import_id": "imp-a"},
    {"imported_from": T0 + timedelta(seconds=3)},  # a whole second: photos at 3.0 and 3.25 are in
    {"imported_to": T0 + timedelta(seconds=5)},  # 5.25 is in (Milvus keeps whole seconds), 6.0 is out
    {"imported_from": T0 + timedelta(seconds=2, milliseconds=500), "imported_to": T0 + timedelta(seconds=8, milliseconds=900)},
    {"source": "vk", "imported_from": T0 + timedelta(seconds=4), "imported_to": T0 + timedelta(seconds=4)},
]


@pytest.mark.parametrize("owner", ["ann", "bob", "nobody"])
@pytest.mark.parametrize("case", range(len(FILTERS)))
async def test_the_read_model_counts_what_milvus_counts(stores, owner, case):
    engine, index = stores
    f = FILTERS[case]
    milvus = index.count("facenet512", filter_expression(owner, **f))
    assert await archive_face_count(engine, owner, "facenet512", **f) == milvus
    if owner == "ann" and not f:
        assert milvus > 20  # the archive is not trivially empty


async def test_a_model_counts_only_the_faces_it_embedded(stores):
    engine, _ = stores
    with_arcface = await archive_face_count(engine, "ann", "arcface")
    assert with_arcface == await archive_face_count(engine, "ann", "facenet512") + 1  # (7, 0): ArcFace only
    assert await archive_face_count(engine, "ann", "face") == 0  # a name inside another is not that model
    async with engine.connect() as conn:
        deleted = (await conn.execute(sa.select(sa.func.count()).select_from(faces).where(faces.c.deleted))).scalar()
    assert deleted == 1
