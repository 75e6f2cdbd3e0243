"""The production blob store on an S3-compatible server over HTTP (moto's S3 server on
loopback stands in for MinIO, which cannot run here)."""

from __future__ import annotations

import pytest

from facesearch.infra.tansu import free_port
from facesearch.settings import Settings
from facesearch.system import make_app
from tests.conftest import make_image


@pytest.fixture
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_photos_stored_in_s3_once_per_content(s3_endpoint, tmp_path):
    settings = Settings(
        var_dir=tmp_path / "var", s3_endpoint=s3_endpoint, s3_bucket="photos",
        s3_access_key="test-key", s3_secret_key="test-secret",
    )
    app = make_app(settings)
    try:
        puts = []
        app.blobs.client.meta.events.register("before-call.s3.PutObject", lambda **_: puts.append(1))
        first, second = make_image(1), make_image(2)

        outcomes = [
            app.store_photo(first, owner="ann", source="local", source_ref="local:/a.jpg"),
            app.store_photo(first, owner="ann", source="vk", source_ref="vk:photo1_1"),
            app.store_photo(second, owner="ann", source="local", source_ref="local:/b.jpg"),
        ]

        assert [o.status for o in outcomes] == ["new", "duplicate", "new"]
        assert len(puts) == 2  # the duplicate did not upload again
        keys = [o["Key"] for o in app.blobs.client.list_objects_v2(Bucket="photos")["Contents"]]
        assert sorted(keys) == sorted(app.blobs.put(data) for data in (first, second))
        assert app.blobs.get(keys[0]) in (first, second)
        assert not app.blobs.exists("0" * 64)
    finally:
        app.close()
