"""CSV and JSON export of faces: columns, filters, ownership, each face's person, and 100,000 rows in
bounded memory."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc

from api.queries import EXPORT_COLUMNS
from tests.api.conftest import auth, face_row, new_user
from tests.conftest import make_image


def test_export_csv_and_json(api, users):
    photo_id = api.upload(users.ann, ("e.jpg", make_image(70, size=(300, 200)), "image/jpeg")).json()["results"][0]["photo_id"]
    api.caught_up()
    api.add_faces(photo_id, users.ann_id, [(1, 2, 30, 40), (50, 60, 90, 100)], source="upload")
    r = api.client.get(f"/api/export/faces.csv?photo_id={photo_id}", headers=auth(users.ann))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert [(row["face_id"], row["x1"], row["y2"], row["source"], row["models"]) for row in rows] == [
        (f"{photo_id}:0", "1.0", "40.0", "upload", "facenet512"), (f"{photo_id}:1", "50.0", "100.0", "upload", "facenet512"),
    ]
    assert rows[0]["processed_at"] == "2026-01-02T03:04:05+00:00" and rows[0]["photo_id"] == photo_id
    r = api.client.get(f"/api/export/faces.json?photo_id={photo_id}", headers=auth(users.ann))
    assert r.headers["content-type"] == "application/json"
    items = json.loads(r.text)
    assert [i["face_id"] for i in items] == [f"{photo_id}:0", f"{photo_id}:1"] and items[0]["score"] == 0.9
    assert api.client.get("/api/export/faces.xml", headers=auth(users.ann)).status_code == 422
    assert api.client.get("/api/export/faces.csv?source=vk", headers=auth(users.ann)).text.count("\n") == 1


def test_export_names_each_faces_person(api, users):
    token, owner = new_user(api, users.ann, "export-people")
    made = api.add_identities(owner, {"ann": 6, "ben": 5}, seed=7)
    api.add_faces("photo-of-nobody", owner, [(1, 2, 30, 40)])  # never embedded: nobody's face
    assert api.data(token, "mutation { clusterPeople { people } }")["clusterPeople"]["people"] == 2
    api.caught_up()
    people = api.data(token, "{ people { id faceIds } }")["people"]
    person = {face: p["id"] for p in people for face in p["faceIds"]}
    ann = person[made["ann"][0]]
    api.data(token, 'mutation($id: ID!) { namePerson(id: $id, name: "Анна Иванова") }', id=ann)
    api.caught_up()

    r = api.client.get("/api/export/faces.csv", headers=auth(token))
    rows = {row["face_id"]: row for row in csv.DictReader(io.StringIO(r.text))}
    assert len(rows) == 12
    for face in made["ann"]:
        assert (rows[face]["person_id"], rows[face]["person_name"]) == (ann, "Анна Иванова")
    ben = person[made["ben"][0]]
    for face in made["ben"]:
        assert (rows[face]["person_id"], rows[face]["person_name"]) == (ben, "")
    assert (rows["photo-of-nobody:0"]["person_id"], rows["photo-of-nobody:0"]["person_name"]) == ("", "")

    items = {i["face_id"]: i for i in json.loads(api.client.get("/api/export/faces.json", headers=auth(token)).text)}
    assert items[made["ann"][0]]["person_name"] == "Анна Иванова" and items["photo-of-nobody:0"]["person_id"] is None
    # Another model's people (there are none) leave the columns empty.
    r = api.client.get("/api/export/faces.csv?model=arcface", headers=auth(token))
    assert {(row["person_id"], row["person_name"]) for row in csv.DictReader(io.StringIO(r.text))} == {("", "")}


def test_export_of_100000_faces_streams_in_bounded_memory(api, users):
    total = 100_000
    owner = "bulk-owner"
    # The faces of another owner, inserted directly: a read model row per face.
    from projections.tables import faces

    async def insert() -> None:
        batch = []
        async with api.system.runner.writer.transaction() as conn:
            for i in range(total):
                batch.append(face_row(f"photo-{i // 4:06d}", owner, i % 4, (i % 500, 10, i % 500 + 40, 60)))
                if len(batch) == 10_000:
                    await conn.execute(faces.insert(), batch)
                    batch.clear()

    api.run(insert)
    token = _token_for(api, owner)

    tracemalloc.start()
    try:
        lines = 0
        size = 0
        with api.client.stream("GET", "/api/export/faces.csv", headers=auth(token)) as r:
            assert r.status_code == 200
            tail = b""
            for chunk in r.iter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\n")
                tail = (tail + chunk)[-400:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == total + 1
    assert tail.endswith(b"\r\n") and b"photo-024999:3" in tail
    # The whole export is ~14 MB of text (and several times that as Python rows); the server held a batch.
    assert size > 10_000_000
    print(f"export: {size / 2**20:.1f} MiB streamed, peak traced memory {peak / 2**20:.1f} MiB")
    assert peak < 25 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def _token_for(api, owner: str) -> str:
    """A session for a user whose id is `owner` (the bulk rows' owner)."""
    import time

    from api.users import User, users

    async def make() -> str:
        async with api.system.runner.writer.transaction() as conn:
            await conn.execute(users.insert().values(id=owner, username="bulk", password_hash="x", role="user",
                                                     created_at=time.time()))
        return await api.client.app.state.users.open_session(User(owner, "bulk", "user"))

    return api.run(make)
