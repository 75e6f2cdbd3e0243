"""The aggregates alone: no database, no broker."""

from __future__ import annotations

import pytest

from domain.import_job import ImportJob, ImportNotOpen
from domain.photo import (
    Photo,
    PhotoAlreadyAnalysed,
    PhotoImported,
    PhotoStatus,
    photo_id_for,
)


def new_photo(owner: str = "ann", digest: str = "a" * 64) -> Photo:
    return Photo.imported(
        owner=owner, source="local", source_ref="local:/a.jpg", import_id=None,
        content_hash=digest, size=10, width=4, height=3, mime_type="image/jpeg",
    )


def test_photo_id_depends_on_owner_and_content_only():
    assert new_photo().id == photo_id_for("ann", "a" * 64)
    assert new_photo(owner="bob").id != new_photo().id


def test_second_source_is_recorded_once():
    photo = new_photo()
    assert photo.add_source("vk", "vk:photo1_2", None) is True
    assert photo.add_source("vk", "vk:photo1_2", None) is False
    assert photo.sources == [("local", "local:/a.jpg"), ("vk", "vk:photo1_2")]
    assert len(photo.collect_events()) == 2


def test_faces_then_embeddings_and_no_second_analysis():
    photo = new_photo()
    photo.record_faces("retinaface", "1", [{"box": [0, 0, 1, 1]}], {"detect": 1.0})
    photo.record_embedding(0, "facenet512", "1", 2, "AAAA", 1.0)
    photo.record_embedding(0, "facenet512", "1", 2, "AAAA", 1.0)  # a redelivery adds nothing
    assert photo.status == PhotoStatus.analysed and photo.face_count == 1
    assert [type(e).__name__ for e in photo.collect_events()] == ["PhotoImported", "FacesDetected", "FaceEmbedded"]
    with pytest.raises(PhotoAlreadyAnalysed):
        photo.record_faces("retinaface", "1", [], {})
    with pytest.raises(ValueError):
        photo.record_embedding(3, "facenet512", "1", 2, "AAAA", 1.0)


def test_no_faces_is_its_own_status():
    photo = new_photo()
    photo.record_faces("retinaface", "1", [], {"detect": 1.0})
    assert photo.status == PhotoStatus.no_faces
    assert type(photo.collect_events()[-1]).__name__ == "NoFacesFound"


def test_rejected_photo_needs_no_analysis():
    photo = Photo.rejected(owner="ann", source="upload", source_ref="upload:x", import_id=None,
                           content_hash="b" * 64, size=3, reason="not an image", code="NOT_AN_IMAGE")
    assert photo.status == PhotoStatus.rejected and not photo.needs_analysis
    assert photo.reject_code == "NOT_AN_IMAGE"


def test_import_job_counts_and_settles_each_reference_once():
    job = ImportJob.request(owner="ann", source="local", target="/photos")
    assert job.discover("r1", "a.jpg") and job.discover("r2", "b.txt") and job.discover("r3", "c.jpg")
    assert not job.discover("r1", "a.jpg")
    job.record_stored("r1", "p1", duplicate=False)
    job.record_stored("r1", "p1", duplicate=False)
    job.record_skipped("r2", "not an image", "not_a_photo")
    job.record_failed("r3", "truncated", "CORRUPT_IMAGE")
    assert job.counts() == {"discovered": 3, "stored": 1, "skipped": 1, "failed": 1}
    job.complete()
    with pytest.raises(ImportNotOpen):
        job.discover("r4", "d.jpg")


def test_v1_rejections_are_upcast_without_a_code():
    from domain.import_job import PhotoFailed, PhotoSkipped
    from domain.photo import PhotoRejected

    for event_class, added in ((PhotoRejected, {}), (PhotoFailed, {"params": {}}), (PhotoSkipped, {})):
        state = {"reason": "truncated"}
        event_class.upcast_v1_v2(state)
        assert state == {"reason": "truncated", "code": ""} | added


def test_v1_photo_imported_is_upcast():
    state = {"owner": "ann"}
    PhotoImported.upcast_v1_v2(state)
    assert state["mime_type"] == "application/octet-stream"
    assert PhotoImported.class_version == 2
