"""A model added to an existing archive: the photo keeps its detected faces, the store adds
each model's vectors once, and the re-embedding pass asks for a bounded number at a time."""

from __future__ import annotations

from collections import Counter
from uuid import UUID

import pytest

from commands.policies import EmbedPhoto
from commands.reembedding import Reembedder
from facesearch.system import make_app
from tests.conftest import make_image
from tests.core.test_reconciler import RecordingPublisher

FACES = [
    {"box": {"x1": 1, "y1": 2, "x2": 30, "y2": 40}, "landmarks": [[5, 5], [9, 5], [7, 8], [5, 11], [9, 11]], "score": 0.99},
    {"box": {"x1": 40, "y1": 2, "x2": 60, "y2": 30}, "landmarks": [[45, 5], [49, 5], [47, 8], [45, 11], [49, 11]], "score": 0.98},
]


def embedding(index: int, model: str) -> dict:
    return dict(face_index=index, model=model, model_version="v", dimension=1, vector_b64="AACAPw==", timing_ms=1.0)


@pytest.fixture
def app(profile_settings):
    application = make_app(profile_settings)
    yield application
    application.close()


def test_stored_faces_stay_on_the_photo_and_each_model_embeds_each_face_once(app):
    outcome = app.store_photo(make_image(1), owner="ann", source="upload", source_ref="upload:1")
    assert app.record_faces(outcome.photo_id, "retinaface", "r", FACES, [embedding(0, "facenet512"), embedding(1, "facenet512")], {})
    photo = app.get_photo(outcome.photo_id)
    assert photo.faces == FACES  # what a later model aligns
    assert photo.faces_missing("facenet512") == [] and photo.faces_missing("arcface") == [0, 1]

    assert app.record_embeddings(outcome.photo_id, [embedding(0, "arcface"), embedding(1, "arcface")]) == 2
    assert app.record_embeddings(outcome.photo_id, [embedding(0, "arcface"), embedding(1, "arcface")]) == 0  # redelivered
    assert app.get_photo(outcome.photo_id).faces_missing("arcface") == []
    events = Counter(
        (n.topic.rsplit(".", 1)[-1], n.originator_version)
        for n in app.recorder.select_notifications(start=None, limit=100)
        if n.originator_id == UUID(str(outcome.photo_id))
    )
    assert sum(1 for topic, _ in events if topic.endswith("FaceEmbedded")) == 4  # 2 faces x 2 models


def test_a_deleted_photo_misses_nothing(app):
    outcome = app.store_photo(make_image(2), owner="ann", source="upload", source_ref="upload:2")
    app.record_faces(outcome.photo_id, "retinaface", "r", FACES, [], {})
    app.delete_photo(outcome.photo_id)
    assert app.get_photo(outcome.photo_id).faces_missing("arcface") == []


async def test_reembedding_asks_a_bounded_number_and_resumes_from_what_is_missing():
    missing = {f"p{i:02d}" for i in range(10)}  # photos lacking arcface

    async def find_missing(model: str, analysed_before: float, limit: int) -> list[EmbedPhoto]:
        return [EmbedPhoto(pid, "h" * 64, "ann", model) for pid in sorted(missing)[:limit]]

    publisher = RecordingPublisher()
    reembedder = Reembedder(
        find_missing, publisher, lambda kind: f"fs.commands.{kind}", 4, ["arcface"],
        batch=3, grace_seconds=5, resend_after_seconds=60, idle_seconds=100,
    )
    assert await reembedder.run_round(now=0) == 3  # at most `batch` in flight
    assert [m[3]["photo_id"] for m in publisher.sent] == ["p00", "p01", "p02"]
    assert all(m[0] == "fs.commands.embed" and m[3]["model"] == "arcface" for m in publisher.sent)
    assert await reembedder.run_round(now=1) == 0  # none done yet: nothing more
    missing -= {"p00", "p01"}  # embedded meanwhile
    assert await reembedder.run_round(now=2) == 2
    assert [m[3]["photo_id"] for m in publisher.sent[3:]] == ["p03", "p04"]
    # p02 got lost with the broker: asked again once it is overdue.
    assert await reembedder.run_round(now=61) == 1  # p03 and p04 are still in flight
    assert [m[3]["photo_id"] for m in publisher.sent[5:]] == ["p02"]

    # A crash: a new pass knows nothing and simply finds what is still missing.
    restarted = Reembedder(
        find_missing, RecordingPublisher(), lambda kind: f"fs.commands.{kind}", 4, ["arcface"],
        batch=3, grace_seconds=5, resend_after_seconds=60, idle_seconds=100,
    )
    assert await restarted.run_round(now=62) == 3
    assert [m[3]["photo_id"] for m in restarted.publisher.sent] == ["p02", "p03", "p04"]

    # Nothing missing: the pass idles, then looks again.
    missing.clear()
    assert await restarted.run_round(now=63) == 0
    missing.add("p99")
    assert await restarted.run_round(now=64) == 0  # idle until 163
    assert await restarted.run_round(now=164) == 1


def test_embedders_come_from_the_environment_and_the_first_is_the_primary(monkeypatch):
    from facesearch.settings import Settings

    assert Settings().embedders == ["facenet512"] and Settings().embedder == "facenet512"
    monkeypatch.setenv("FACESEARCH_EMBEDDERS", '["arcface","facenet512","arcface"]')
    settings = Settings()
    assert settings.embedders == ["arcface", "facenet512"] and settings.embedder == "arcface"


async def test_the_read_models_say_which_photos_miss_a_model_and_how_far_each_got(profile_settings):
    import sqlalchemy as sa

    from projections import queries
    from projections.db import make_engine
    from projections.tables import faces, metadata, photos

    profile_settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(profile_settings.resolved_read_model_url())
    face = dict(owner="ann", source="local", source_ref="r", x1=0, y1=0, x2=1, y2=1, landmarks=[], score=1.0,
                size_px=1.0, blur=1.0, flags="", detector="retinaface", detector_version="r",
                processed_at="2030-01-01T00:00:00+00:00")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            for pid, deleted in (("p1", False), ("p2", False), ("p3", True), ("p4", False)):
                await conn.execute(photos.insert().values(
                    id=pid, owner="ann", content_hash=f"h{pid}", source="local", source_ref="r", status="analysed",
                    size=1, face_count=2, imported_at="2030", deleted=deleted))
            await conn.execute(faces.insert(), [
                face | dict(id="p1:0", photo_id="p1", face_index=0, models="arcface,facenet512", deleted=False),
                face | dict(id="p1:1", photo_id="p1", face_index=1, models="facenet512", deleted=False),
                face | dict(id="p2:0", photo_id="p2", face_index=0, models="arcface2,facenet512", deleted=False),
                face | dict(id="p3:0", photo_id="p3", face_index=0, models="facenet512", deleted=True),
                face | dict(id="p4:0", photo_id="p4", face_index=0, models="facenet512", deleted=False,
                            processed_at="2030-06-01T00:00:00+00:00"),
            ])
        cutoff = "2030-02-01T00:00:00+00:00"  # p4 was analysed after it: left alone for now
        assert await queries.photos_missing_model(engine, "arcface", cutoff, 10) == [("p1", "hp1", "ann"), ("p2", "hp2", "ann")]
        assert await queries.photos_missing_model(engine, "arcface", cutoff, 1) == [("p1", "hp1", "ann")]
        assert await queries.photos_missing_model(engine, "facenet512", cutoff, 10) == []
        assert await queries.embedding_progress(engine, ["facenet512", "arcface", "arc%"]) == {
            "facenet512": {"embedded": 4, "faces": 4}, "arcface": {"embedded": 1, "faces": 4}, "arc%": {"embedded": 0, "faces": 4},
        }
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(faces))).scalar() == 5
    finally:
        await engine.dispose()
