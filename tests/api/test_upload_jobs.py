"""Uploads are import jobs (listed with the others, with stored, duplicate and rejected files,
each rejected one with its reason's code), and errors carry a code and params a client words
in the user's language: our pixel limit is the one quoted, never Pillow's."""

from __future__ import annotations

from tests.api.conftest import MAX_UPLOAD, auth, wait_until
from tests.conftest import huge_png_header, make_image

JOB = """query($id: ID!) { importJob(id: $id) { id source target status discovered stored duplicates failed
  canRetry canCancel reasonCode problems { kind code params reason } } }"""


def job(api, token, import_id):
    return api.data(token, JOB, id=import_id)["importJob"]


def send(api, token, import_id, *files):
    return api.client.post(f"/api/photos?import_id={import_id}", files=[("files", f) for f in files], headers=auth(token))


def test_an_upload_is_an_import_job_with_counts_and_reasons(api, users):
    r = api.client.post("/api/uploads", json={"names": ["a.jpg", "a.jpg", "empty.jpg", "bomb.png", "notes.txt"]},
                        headers=auth(users.ann))
    assert r.status_code == 201, r.text
    import_id = r.json()["import_id"]
    answers = [
        send(api, users.ann, import_id, ("a.jpg", make_image(501), "image/jpeg")),
        send(api, users.ann, import_id, ("a.jpg", make_image(501), "image/jpeg")),  # same name, same bytes
        send(api, users.ann, import_id, ("empty.jpg", b"", "image/jpeg")),
        send(api, users.ann, import_id, ("bomb.png", huge_png_header(), "image/png")),
        send(api, users.ann, import_id, ("notes.txt", b"just text", "text/plain")),
    ]
    assert [a.json()["results"][0]["status"] for a in answers] == ["new", "duplicate", "refused", "rejected", "refused"]
    assert all(a.json()["import_id"] == import_id for a in answers)
    empty, bomb = answers[2].json()["results"][0], answers[3].json()["results"][0]
    assert empty["code"] == "EMPTY_FILE"
    # Our limit (60 MP), never Pillow's 178,956,970-pixel one, and no Pillow wording.
    assert bomb["code"] == "TOO_MANY_PIXELS" and bomb["params"] == {"limit_megapixels": 60.0, "megapixels": 900.0}
    assert "178" not in bomb["reason"] and "bomb" not in bomb["reason"].lower()

    api.caught_up()
    running = job(api, users.ann, import_id)
    assert running["status"] == "RUNNING" and running["canCancel"] and running["source"] == "UPLOAD"
    assert api.client.post(f"/api/uploads/{import_id}/complete", headers=auth(users.ann)).status_code == 200
    api.caught_up()
    done = job(api, users.ann, import_id)
    assert done["status"] == "COMPLETED" and not done["canRetry"] and not done["canCancel"]
    assert (done["discovered"], done["stored"], done["duplicates"], done["failed"]) == (5, 2, 1, 3)
    assert sorted(p["code"] for p in done["problems"]) == ["EMPTY_FILE", "NOT_AN_IMAGE", "TOO_MANY_PIXELS"]
    assert done["target"].startswith("a.jpg, a.jpg, empty.jpg")
    # Listed with the other imports, and the gallery filters by it.
    assert import_id in [j["id"] for j in api.data(users.ann, "{ imports { id } }")["imports"]]
    photos = api.data(users.ann, "query($f: PhotoFilter) { photos(filter: $f) { totalCount } }", f={"importId": import_id})
    assert photos["photos"]["totalCount"] == 2  # the new photo and the rejected bomb (an import's filter shows both)

    # A closed job takes no more files; someone else's is not found.
    late = send(api, users.ann, import_id, ("late.jpg", make_image(502), "image/jpeg"))
    assert late.status_code == 409 and late.json()["code"] == "IMPORT_CLOSED"
    other = send(api, users.bob, import_id, ("mine.jpg", make_image(503), "image/jpeg"))
    assert other.status_code == 404 and other.json()["code"] == "NOT_FOUND"


def test_an_upload_without_a_job_is_a_job_of_its_own(api, users):
    r = api.upload(users.ann, ("solo.jpg", make_image(510), "image/jpeg"), ("zero.png", b"", "image/png"))
    assert r.status_code == 201
    import_id = r.json()["import_id"]
    wait_until(lambda: (job(api, users.ann, import_id) or {}).get("status") == "COMPLETED")
    done = job(api, users.ann, import_id)
    assert (done["stored"], done["failed"]) == (1, 1) and done["problems"][0]["code"] == "EMPTY_FILE"


def test_upload_jobs_cancel_but_do_not_retry(api, users):
    import_id = api.client.post("/api/uploads", headers=auth(users.ann)).json()["import_id"]
    assert api.data(users.ann, "mutation($id: ID!) { cancelImport(id: $id) }", id=import_id) == {"cancelImport": True}
    api.caught_up()
    assert job(api, users.ann, import_id)["status"] == "CANCELLED"
    body = api.gql(users.ann, "mutation($id: ID!) { retryImport(id: $id) }", id=import_id)
    assert body["errors"][0]["extensions"] == {"code": "IMPORT_REFUSED", "reason": "not_retryable", "params": {"source": "upload"}}
    body = api.gql(users.bob, "mutation($id: ID!) { cancelImport(id: $id) }", id=import_id)
    assert body["errors"][0]["extensions"]["reason"] == "not_found"


def test_errors_carry_a_code_and_params(api, users):
    big = ("big.jpg", b"\xff\xd8\xff" + b"\x00" * MAX_UPLOAD, "image/jpeg")
    r = api.client.post("/api/search/examples", files={"file": big}, headers=auth(users.ann))
    assert r.status_code == 413 and r.json()["code"] == "TOO_LARGE"
    assert r.json()["params"] == {"limit_megabytes": round(MAX_UPLOAD / 2**20, 1)}
    r = api.client.post("/api/search/examples", files={"file": ("bomb.png", huge_png_header(), "image/png")},
                        headers=auth(users.ann))
    assert r.status_code == 422 and r.json()["code"] == "TOO_MANY_PIXELS" and r.json()["params"]["limit_megapixels"] == 60.0
    r = api.client.get("/api/photos/nope/original", headers=auth(users.ann))
    assert r.status_code == 404 and r.json() == {"detail": "no such photo", "code": "NOT_FOUND", "params": {}}
    body = api.gql(users.ann, 'mutation { startImport(input: {source: YANDEX_DISK, target: "https://example.com/x"}) }')
    assert body["errors"][0]["extensions"]["code"] == "IMPORT_REFUSED"
    assert body["errors"][0]["extensions"]["reason"] == "bad_link"
