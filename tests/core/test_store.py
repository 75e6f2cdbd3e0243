"""The application service on a real event store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest

from commands.envelopes import iter_envelopes
from facesearch.system import make_app
from tests.conftest import huge_png_header, make_image, truncated_jpeg


@pytest.fixture
def app(profile_settings):
    application = make_app(profile_settings)
    yield application
    application.close()


def test_same_bytes_twice_are_one_photo_and_one_blob(app, profile_settings):
    data = make_image(1)
    first = app.store_photo(data, owner="ann", source="local", source_ref="local:/a.jpg")
    second = app.store_photo(data, owner="ann", source="vk", source_ref="vk:photo1_1")
    assert (first.status, second.status) == ("new", "duplicate")
    assert first.photo_id == second.photo_id
    assert app.get_photo(first.photo_id).sources == [("local", "local:/a.jpg"), ("vk", "vk:photo1_1")]
    blob_files = [p for p in profile_settings.resolved_blob_dir().rglob("*") if p.is_file()]
    assert len(blob_files) == 1 and blob_files[0].read_bytes() == data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.4 this is a document, not a photo", "not an image"),
        (truncated_jpeg(), "truncated"),
        (huge_png_header(), "too large"),
        (b"", "empty"),
    ],
    ids=["non-image", "truncated-jpeg", "30000x30000", "empty"],
)
def test_bad_input_ends_as_photo_rejected_with_a_reason(app, profile_settings, data, reason):
    outcome = app.store_photo(data, owner="ann", source="upload", source_ref="upload:bad")
    assert outcome.status == "rejected"
    assert reason in outcome.reason
    [envelope] = list(iter_envelopes(app))
    assert envelope.event_type == "PhotoRejected"
    assert reason in envelope.payload["reason"]
    assert not any(p.is_file() for p in profile_settings.resolved_blob_dir().rglob("*"))  # nothing kept
    # The store keeps working after bad input.
    assert app.store_photo(make_image(2), owner="ann", source="upload", source_ref="upload:good").status == "new"


def test_a_stored_v1_event_is_upcast_when_read(app):
    outcome = app.store_photo(make_image(3), owner="ann", source="local", source_ref="local:/c.jpg")
    [notification] = app.recorder.select_notifications(start=None, limit=10)
    # Rewrite the stored state as a version-1 PhotoImported (before mime_type existed).
    state = json.loads(notification.state)
    state.pop("mime_type")
    state.pop("class_version", None)
    old = type(notification)(
        originator_id=notification.originator_id, originator_version=notification.originator_version,
        topic=notification.topic, state=json.dumps(state).encode(), id=notification.id,
    )
    from commands.envelopes import to_envelope

    envelope = to_envelope(app, old)
    assert envelope.event_type == "PhotoImported" and envelope.schema_version == 2
    assert envelope.payload["mime_type"] == "application/octet-stream"
    assert envelope.aggregate_id == str(outcome.photo_id)
