"""Uploads (good and bad), the photos query with filters and pagination, images, deletion,
imports and their progress, faces, and one user never seeing another's."""

from __future__ import annotations

import io
import json

from PIL import Image

from tests.api.conftest import MAX_UPLOAD, auth, images_dir, wait_until
from tests.conftest import huge_png_header, make_image, truncated_jpeg, write_images

PHOTOS = """query($filter: PhotoFilter, $first: Int!, $after: String) {
  photos(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id source status width height mimeType faceCount importId
      sources { source sourceRef } importJob { id status }
      faces { id faceIndex score box { x1 y1 x2 y2 } cropUrl } } }
  }
}"""


def png(index: int) -> bytes:
    return make_image(index, fmt="PNG")


def photo_ids(api, token, **filter_) -> list[str]:
    data = api.data(token, PHOTOS, filter=filter_ or None, first=200)
    return [e["node"]["id"] for e in data["photos"]["edges"]]


def test_upload_good_and_duplicate(api, users):
    r = api.upload(users.ann, ("one.jpg", make_image(1), "image/jpeg"), ("two.png", png(2), "image/png"))
    assert r.status_code == 201
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["new", "new"]
    r = api.upload(users.ann, ("again.jpg", make_image(1), "image/jpeg"))
    assert r.status_code == 201
    assert r.json()["results"][0] == {"filename": "again.jpg", "status": "duplicate", "photo_id": results[0]["photo_id"], "reason": "", "code": "", "params": {}}


def test_bad_uploads(api, users):
    r = api.upload(users.ann, ("notes.txt", b"just some text", "text/plain"))
    assert r.status_code == 415 and r.json()["results"][0]["status"] == "refused"
    # Claims to be a JPEG; the bytes say otherwise.
    r = api.upload(users.ann, ("fake.jpg", b"GIF89a" + b"\x00" * 100, "image/jpeg"))
    assert r.status_code == 415
    r = api.upload(users.ann, ("big.jpg", b"\xff\xd8\xff" + b"\x00" * MAX_UPLOAD, "image/jpeg"))
    assert r.status_code == 413 and "too large" in r.json()["results"][0]["reason"]
    r = api.upload(users.ann, ("broken.jpg", truncated_jpeg(), "image/jpeg"))
    assert r.status_code == 422
    assert r.json()["results"][0]["status"] == "rejected" and "truncated" in r.json()["results"][0]["reason"]
    r = api.upload(users.ann, ("bomb.png", huge_png_header(), "image/png"))
    assert r.status_code == 422 and "too large" in r.json()["results"][0]["reason"]
    # A request body far over the limit is cut off before it is read whole.
    huge = b"\x00" * (MAX_UPLOAD * 21 + 2 * 1024 * 1024)
    r = api.client.post("/api/photos", content=huge, headers={**auth(users.ann), "Content-Type": "application/octet-stream"})
    assert r.status_code == 413
    # Mixed: the good file is stored, the bad one reported.
    r = api.upload(users.ann, ("ok.jpg", make_image(3), "image/jpeg"), ("bad.txt", b"nope", "text/plain"))
    assert r.status_code == 201 and [x["status"] for x in r.json()["results"]] == ["new", "refused"]


def test_photos_query_filters_and_pages(api, users):
    for i in range(10, 16):
        api.upload(users.ann, (f"p{i}.jpg", make_image(i), "image/jpeg"))
    write_images(images_dir(api) / "album", 3, start=50)
    import_id = api.data(users.ann, 'mutation($t: String!) { startImport(input: {source: LOCAL, target: $t}) }',
                         t=str(images_dir(api) / "album"))["startImport"]
    wait_until(lambda: api.data(users.ann, "query($id: ID!) { importJob(id: $id) { status } }", id=import_id)
               ["importJob"] == {"status": "COMPLETED"})
    api.caught_up()

    everything = photo_ids(api, users.ann)
    local = photo_ids(api, users.ann, source="LOCAL")
    uploaded = photo_ids(api, users.ann, source="UPLOAD")
    assert len(local) == 3 and set(local) | set(uploaded) == set(everything)
    assert photo_ids(api, users.ann, importId=import_id) == local
    assert photo_ids(api, users.ann, source="VK") == []
    # Rejected uploads are not gallery photos, but can be asked for.
    assert len(photo_ids(api, users.ann, status="REJECTED")) == 2

    # Cursor pagination walks every photo once, newest first.
    seen, after = [], None
    while True:
        page = api.data(users.ann, PHOTOS, first=4, after=after)["photos"]
        seen += [e["node"]["id"] for e in page["edges"]]
        assert page["totalCount"] == len(everything)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == everything and len(seen) == len(set(seen))
    assert "errors" in api.gql(users.ann, PHOTOS, first=4, after="bm90LWEtY3Vyc29y")
    assert "errors" in api.gql(users.ann, PHOTOS, first=1000)

    # Date filter on the import time.
    first_at = api.data(users.ann, "{ photos(first: 200) { edges { node { importedAt } } } }")["photos"]["edges"]
    newest = max(e["node"]["importedAt"] for e in first_at)
    assert photo_ids(api, users.ann, importedFrom=newest) == everything[:1]
    assert photo_ids(api, users.ann, importedTo="2000-01-01") == []

    node = api.data(users.ann, PHOTOS, filter={"source": "LOCAL"}, first=1)["photos"]["edges"][0]["node"]
    assert node["importJob"] == {"id": import_id, "status": "COMPLETED"} and node["sources"][0]["source"] == "LOCAL"

    jobs = api.data(users.ann, "{ imports { id source status discovered stored progress problems { reason } } }")["imports"]
    assert jobs[0] == {"id": import_id, "source": "LOCAL", "status": "COMPLETED", "discovered": 3, "stored": 3,
                       "progress": 1.0, "problems": []}


def test_faces_boxes_and_the_no_faces_category(api, users):
    api.upload(users.ann, ("faces.jpg", make_image(30, size=(400, 300)), "image/jpeg"))
    api.caught_up()
    [photo_id] = [i for i in photo_ids(api, users.ann) if api.data(users.ann, "query($id: ID!) { photo(id: $id) { width } }",
                                                                  id=i)["photo"]["width"] == 400]
    boxes = [(10, 20, 110, 140), (200, 50, 290, 160)]
    api.add_faces(photo_id, users.ann_id, boxes)
    photo = api.data(users.ann, "query($id: ID!) { photo(id: $id) { faces { id faceIndex score box { x1 y1 x2 y2 } cropUrl } } }",
                     id=photo_id)["photo"]
    assert [(f["box"]["x1"], f["box"]["y1"], f["box"]["x2"], f["box"]["y2"]) for f in photo["faces"]] == boxes
    crop = api.client.get(photo["faces"][1]["cropUrl"], headers=auth(users.ann))
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(crop.content)).size == (160, 160)
    assert api.client.get(photo["faces"][1]["cropUrl"] + "?size=99", headers=auth(users.ann)).status_code == 422

    faces = api.data(users.ann, "query($p: ID!) { faces(filter: {photoId: $p}) { totalCount edges { node { id photo { id } } } } }",
                     p=photo_id)["faces"]
    assert faces["totalCount"] == 2 and faces["edges"][0]["node"]["photo"]["id"] == photo_id
    # hasFaces reads the photos read model's count, which FacesDetected sets (not these test rows),
    # so the "no faces" category is asked of the status the pipeline records.
    assert photo_ids(api, users.ann, noFaces=True) == []


def test_images_have_the_right_types_and_cache(api, users):
    r = api.upload(users.ann, ("img.png", png(40), "image/png"))
    photo_id = r.json()["results"][0]["photo_id"]
    api.caught_up()
    original = api.client.get(f"/api/photos/{photo_id}/original", headers=auth(users.ann))
    assert original.status_code == 200 and original.headers["content-type"] == "image/png"
    assert original.content == png(40)
    assert "immutable" in original.headers["cache-control"]
    again = api.client.get(f"/api/photos/{photo_id}/original", headers={**auth(users.ann), "If-None-Match": original.headers["etag"]})
    assert again.status_code == 304
    thumb = api.client.get(f"/api/photos/{photo_id}/thumbnail?size=128", headers=auth(users.ann))
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 128
    cached = list((api.settings.var_dir / "cache" / "thumbnails").rglob("*_128.jpg"))
    assert cached, "thumbnails are cached on disk"
    assert api.client.get(f"/api/photos/{photo_id}/thumbnail?size=7", headers=auth(users.ann)).status_code == 422
    assert api.client.get("/api/photos/nope/original", headers=auth(users.ann)).status_code == 404


def test_delete_photo(api, users):
    photo_id = api.upload(users.ann, ("gone.jpg", make_image(60), "image/jpeg")).json()["results"][0]["photo_id"]
    api.caught_up()
    result = api.data(users.ann, "mutation($id: ID!) { deletePhoto(id: $id) { id deleted } }", id=photo_id)
    assert result["deletePhoto"] == {"id": photo_id, "deleted": True}
    api.caught_up()
    assert photo_id not in photo_ids(api, users.ann)
    assert api.client.get(f"/api/photos/{photo_id}/original", headers=auth(users.ann)).status_code == 404
    assert "errors" in api.gql(users.ann, "mutation($id: ID!) { deletePhoto(id: $id) { id } }", id=photo_id)


def test_imports_refuse_bad_targets(api, users):
    mutation = "mutation($s: ImportSource!, $t: String!) { startImport(input: {source: $s, target: $t}) }"
    outside = api.gql(users.ann, mutation, s="LOCAL", t="/etc")
    assert "errors" in outside and outside["errors"][0]["extensions"]["code"] == "IMPORT_REFUSED"
    assert "errors" in api.gql(users.ann, mutation, s="YANDEX_DISK", t="https://example.com/not-a-disk")
    vk = api.gql(users.ann, mutation, s="VK", t="https://vk.com/album1_2")
    assert "FACESEARCH_TOKEN_KEY" in vk["errors"][0]["message"]  # this server cannot keep sign-ins
    off = {"configured": False, "connected": False}
    assert api.client.get("/api/oauth/status", headers=auth(users.ann)).json() == {"vk": off, "yandex": off}
    assert api.client.get("/api/oauth/vk/start", headers=auth(users.ann)).status_code == 503


def test_import_progress_subscription(api, users):
    write_images(images_dir(api) / "live", 20, start=200)
    import_id = api.data(users.ann, 'mutation($t: String!) { startImport(input: {source: LOCAL, target: $t}) }',
                         t=str(images_dir(api) / "live"))["startImport"]
    updates = []
    with api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"], headers=auth(users.ann)) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($id: ID!) { importProgress(id: $id) { status stored discovered progress } }",
            "variables": {"id": import_id}}})
        while True:
            message = ws.receive_json()
            if message["type"] == "complete":
                break
            assert message["type"] == "next", message
            updates.append(message["payload"]["data"]["importProgress"])
    assert updates[-1] == {"status": "COMPLETED", "stored": 20, "discovered": 20, "progress": 1.0}
    stored = [u["stored"] for u in updates]
    assert stored == sorted(stored)


def test_subscriptions_need_a_user(api, users):
    import pytest
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with api.client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init"})
            ws.receive_json()


def test_stats(api, users):
    api.caught_up()
    stats = api.data(users.ann, "{ stats { photos waiting analysed noFaces rejected faces runningImports } }")["stats"]
    assert stats["photos"] >= 10 and stats["rejected"] == 2 and stats["runningImports"] == 0
    assert stats["waiting"] == stats["photos"]  # no workers run in this suite


def test_a_second_user_sees_nothing_of_the_first(api, users):
    api.caught_up()
    ann_photos = photo_ids(api, users.ann)
    assert ann_photos
    assert photo_ids(api, users.bob) == []
    assert api.data(users.bob, PHOTOS, filter={"status": "REJECTED"}, first=10)["photos"]["totalCount"] == 0
    assert api.data(users.bob, "{ imports { id } faces { totalCount } }") == {"imports": [], "faces": {"totalCount": 0}}
    ann_face = api.data(users.ann, "{ faces(first: 1) { edges { node { id } } } }")["faces"]["edges"][0]["node"]["id"]
    ann_import = api.data(users.ann, "{ imports(first: 1) { id } }")["imports"][0]["id"]
    for photo_id in ann_photos[:3]:
        assert api.data(users.bob, "query($id: ID!) { photo(id: $id) { id } }", id=photo_id) == {"photo": None}
        for kind in ("original", "thumbnail"):
            assert api.client.get(f"/api/photos/{photo_id}/{kind}", headers=auth(users.bob)).status_code == 404
        assert "errors" in api.gql(users.bob, "mutation($id: ID!) { deletePhoto(id: $id) { id } }", id=photo_id)
    assert api.data(users.bob, "query($id: ID!) { face(id: $id) { id } }", id=ann_face) == {"face": None}
    assert api.client.get(f"/api/faces/{ann_face}/crop", headers=auth(users.bob)).status_code == 404
    assert api.data(users.bob, "query($id: ID!) { importJob(id: $id) { id } }", id=ann_import) == {"importJob": None}
    assert api.client.get("/api/export/faces.csv", headers=auth(users.bob)).text.count("\n") == 1  # the header only
    assert json.loads(api.client.get("/api/export/faces.json", headers=auth(users.bob)).text) == []
    stats = api.data(users.bob, "{ stats { photos faces } }")["stats"]
    assert stats == {"photos": 0, "faces": 0}
    # Bob's own upload of the same bytes is his photo, separate from Ann's.
    r = api.upload(users.bob, ("mine.jpg", make_image(1), "image/jpeg"))
    assert r.json()["results"][0]["status"] == "new"
    api.caught_up()
    assert len(photo_ids(api, users.bob)) == 1 and photo_ids(api, users.bob)[0] not in ann_photos


def test_no_n_plus_one(api, users):
    """A page of photos with their faces, sources and import jobs costs a fixed number of queries."""
    import sqlalchemy as sa

    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    engine = api.system.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        page = api.data(users.ann, PHOTOS, first=50)["photos"]
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(page["edges"]) >= 15
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) <= 6, queries
