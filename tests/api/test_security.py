"""Hostile use of the API (issue 16, items 5 to 7): cross-origin state changes with the
session cookie, password guessing, weak passwords, look-alike user names, /metrics for
anyone, request bodies echoed in 422s, user errors logged as tracebacks, control and
text-direction characters in file names, and date filters that silently match nothing.

Each test here failed on the code before these protections (commit f64cc5e)."""

from __future__ import annotations

import io
import logging

import pytest
from fastapi.testclient import TestClient
from loguru import logger
from PIL import Image

from api import users as accounts
from api.app import create_app
from facesearch.settings import Settings
from tests.api.conftest import MAX_UPLOAD, Api, auth, write_test_calibration

OWN = "http://testserver"  # the origin TestClient's requests go to
METRICS_TOKEN = "scrape-only-token-0123456789"
FOREIGN = ["http://127.0.0.1:9999", "http://testserver:8081", "https://evil.example", "null"]


@pytest.fixture(scope="module")
def api(tansu, tmp_path_factory):
    """This module's own server (its sign-in throttle counts only this module's attempts),
    with a metrics token for Prometheus."""
    root = tmp_path_factory.mktemp("api-security")
    (root / "imports").mkdir()
    write_test_calibration(root / "models")
    settings = Settings(
        var_dir=root / "var", models_dir=root / "models", kafka_bootstrap=tansu.bootstrap, run_workers=False,
        max_upload_bytes=MAX_UPLOAD, allowed_import_roots=[root / "imports"], metrics_token=METRICS_TOKEN,
    )
    with TestClient(create_app(settings), raise_server_exceptions=True) as client:
        yield Api(client, settings)


def jpeg(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG")
    return out.getvalue()


def another_client(api: Api, address: tuple[str, int] = ("testclient", 50000)) -> TestClient:
    """A client with its own cookie jar (and address), on the running app's event loop."""
    client = TestClient(api.client.app, client=address)
    client.portal = api.client.portal
    return client


def signed_in_browser(api: Api, username: str = "bob", password: str = "bob-password") -> TestClient:
    """A client holding only the session cookie, as a browser does."""
    client = another_client(api)
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    assert client.cookies.get("fs_session")
    return client


def photo_count(api: Api, token: str) -> int:
    return api.data(token, "{ stats { photos } }")["stats"]["photos"]


# --- CSRF ------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", FOREIGN)
def test_cookie_state_changes_from_another_origin_are_refused(api, users, origin):
    browser = signed_in_browser(api)
    before = photo_count(api, users.bob)
    hostile = {"Origin": origin}
    attempts = [
        browser.post("/api/photos", files={"files": ("planted.jpg", jpeg(), "image/jpeg")}, headers=hostile),
        browser.post("/api/auth/logout", headers=hostile),
        browser.post("/api/credentials/vk/revoke", headers=hostile),
        browser.post("/graphql", json={"query": 'mutation { deletePhoto(id: "x") { deleted } }'}, headers=hostile),
        browser.post("/api/search/examples", files={"file": ("e.jpg", jpeg(), "image/jpeg")}, headers=hostile),
    ]
    for r in attempts:
        assert r.status_code == 403, (r.request.url, r.status_code, r.text)
        assert r.json()["code"] == "CSRF_ORIGIN_REFUSED"
    api.caught_up()
    assert photo_count(api, users.bob) == before, "a photo was planted from another origin"
    assert browser.get("/api/auth/me").status_code == 200, "the session was closed from another origin"


def test_referer_counts_when_origin_is_absent_and_one_of_them_is_required(api, users):
    browser = signed_in_browser(api)
    r = browser.post("/api/auth/logout", headers={"Referer": "http://127.0.0.1:9999/attack.html"})
    assert r.status_code == 403 and r.json()["code"] == "CSRF_ORIGIN_REFUSED"
    r = browser.post("/api/auth/logout")  # the cookie, and neither header
    assert r.status_code == 403 and r.json()["code"] == "CSRF_ORIGIN_REFUSED"
    assert browser.get("/api/auth/me").status_code == 200
    r = browser.post("/api/auth/logout", headers={"Referer": f"{OWN}/photos?x=1"})
    assert r.status_code == 204
    assert browser.get("/api/auth/me").status_code == 401


@pytest.mark.parametrize("origin", [OWN, "http://127.0.0.1:8000", "http://localhost:8000"])
def test_own_origins_and_bearer_tokens_still_work(api, users, origin):
    browser = signed_in_browser(api)
    r = browser.post("/api/photos", files={"files": ("own.jpg", jpeg((10, 200, 10)), "image/jpeg")},
                     headers={"Origin": origin})
    assert r.status_code == 201, r.text
    # A script's bearer token needs no Origin, and a page elsewhere cannot send one.
    r = api.client.post("/graphql", json={"query": "{ me { id } }"},
                        headers=auth(users.bob) | {"Origin": "http://127.0.0.1:9999"})
    assert r.status_code == 200 and r.json()["data"]["me"]["id"] == users.bob_id
    assert browser.post("/api/auth/logout", headers={"Origin": origin}).status_code == 204


def test_sign_in_from_another_origin_is_refused(api, users):
    r = another_client(api).post("/api/auth/login", json={"username": "bob", "password": "bob-password"},
                                 headers={"Origin": "http://127.0.0.1:9999"})
    assert r.status_code == 403 and r.json()["code"] == "CSRF_ORIGIN_REFUSED"
    assert "set-cookie" not in r.headers


# --- sign-in throttling ------------------------------------------------------------------


@pytest.fixture
def hashes(monkeypatch):
    """Counts Argon2 verifications."""
    calls = []
    real = accounts._hasher

    class Counting:
        def verify(self, *args):
            calls.append(1)
            return real.verify(*args)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(accounts, "_hasher", Counting())
    return calls


def test_wrong_passwords_are_throttled_per_account_before_hashing(api, users, hashes):
    from api.throttle import LoginThrottle

    api.client.app.state.login_throttle = LoginThrottle(5, 1000, 900)
    r = api.client.post("/api/users", json={"username": "target", "password": "target-password-1"},
                        headers=auth(users.ann))
    assert r.status_code == 201, r.text
    client = another_client(api)
    codes = [client.post("/api/auth/login", json={"username": "target", "password": f"guess-{i}"}).status_code
             for i in range(80)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
    assert len(hashes) == 5, f"{len(hashes)} Argon2 hashes for 80 guesses: refused guesses must cost none"
    refused = client.post("/api/auth/login", json={"username": "TARGET", "password": "target-password-1"})
    assert refused.status_code == 429, "the right password inside the window is refused too (or guessing goes on)"
    assert refused.json()["code"] == "TOO_MANY_ATTEMPTS"
    assert 800 <= int(refused.headers["Retry-After"]) <= 900
    # Another account from the same address signs in as usual.
    assert client.post("/api/auth/login", json={"username": "bob", "password": "bob-password"}).status_code == 200


def test_wrong_passwords_are_throttled_per_address(api, users):
    from api.throttle import LoginThrottle

    api.client.app.state.login_throttle = LoginThrottle(5, 12, 900)
    client = another_client(api)
    codes = [client.post("/api/auth/login", json={"username": f"sprayed-{i}", "password": "Summer2024!"}).status_code
             for i in range(20)]
    assert codes[:12] == [401] * 12 and set(codes[12:]) == {429}, codes
    assert client.post("/api/auth/login", json={"username": "bob", "password": "bob-password"}).status_code == 429
    # Another address is not affected.
    other = another_client(api, ("10.9.8.7", 5000))
    assert other.post("/api/auth/login", json={"username": "bob", "password": "bob-password"}).status_code == 200
    api.client.app.state.login_throttle = LoginThrottle(5, 30, 900)


def test_sliding_window_forgets_old_failures():
    from api.throttle import LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(3, 10, 60, clock=lambda: now[0])
    assert [throttle.attempt("a", "ip") for _ in range(4)] == [0, 0, 0, 60]
    now[0] += 30
    assert throttle.attempt("a", "ip") == 30
    now[0] += 31
    assert throttle.attempt("a", "ip") == 0
    throttle.succeeded("a", "ip")
    assert throttle.accounts.retry_after("a") == 0


# --- password policy and user names ------------------------------------------------------


@pytest.mark.parametrize("password", ["12345678", "password", " " * 9, " \t\n " * 4, "password123", "qwertyuiop",
                                      "aaaaaaaaaaaa", "short-1"])
def test_weak_passwords_are_refused(api, users, password):
    r = api.client.post("/api/users", json={"username": "weakling", "password": password}, headers=auth(users.ann))
    assert r.status_code == 422, (password, r.status_code, r.text)
    assert "password" in r.json()["detail"]


@pytest.mark.parametrize("name", ["Alice", "ALICE", "alice", "ａｌｉｃｅ", " Alice "])
def test_user_names_are_one_account_whatever_their_case_or_width(api, users, name):
    first = api.client.post("/api/users", json={"username": "alice", "password": "alice-password-1"},
                            headers=auth(users.ann))
    assert first.status_code in (201, 422), first.text  # the first parametrisation makes it
    r = api.client.post("/api/users", json={"username": name, "password": "another-password-2"},
                        headers=auth(users.ann))
    assert r.status_code == 422 and "taken" in r.json()["detail"], (name, r.text)
    r = another_client(api).post("/api/auth/login", json={"username": name, "password": "alice-password-1"})
    assert r.status_code == 200 and r.json()["user"]["username"] == "alice"


@pytest.mark.parametrize("name", ["ali\u200bce", "alice\x00", "\u202eecila", "al\x07ice", "ali\ufeffce", "a\u2028b"])
def test_user_names_with_invisible_or_control_characters_are_refused(api, users, name):
    r = api.client.post("/api/users", json={"username": name, "password": "decent-password-3"},
                        headers=auth(users.ann))
    assert r.status_code == 422, (repr(name), r.text)
    assert name not in {u["username"] for u in api.client.get("/api/users", headers=auth(users.ann)).json()}


# --- exposure ----------------------------------------------------------------------------


def test_metrics_answer_administrators_and_the_metrics_token_only(api, users):
    assert api.client.get("/metrics", headers=auth(users.bob)).status_code == 403
    r = api.client.get("/metrics", headers=auth(users.ann))
    assert r.status_code == 200 and "facesearch_" in r.text
    assert api.client.get("/metrics", headers=auth(METRICS_TOKEN)).status_code == 200
    # The metrics token opens nothing else.
    for path in ("/api/auth/me", "/api/monitoring/series", "/api/users"):
        assert api.client.get(path, headers=auth(METRICS_TOKEN)).status_code == 401, path
    r = api.client.post("/graphql", json={"query": "{ me { id } }"}, headers=auth(METRICS_TOKEN))
    assert r.status_code == 401


SECRET = "Correct-Horse-Battery-Staple-42"


@pytest.mark.parametrize(("path", "body"), [
    ("/api/users", {"username": "x" * 65, "password": SECRET}),
    ("/api/users", {"username": "newbie", "password": SECRET, "role": ["admin"]}),
    ("/api/auth/login", {"username": "", "password": SECRET}),
    ("/api/auth/login", {"username": "bob", "password": SECRET * 40}),
])
def test_422_does_not_echo_the_request(api, users, path, body):
    r = api.client.post(path, json=body, headers=auth(users.ann))
    assert r.status_code == 422, r.text
    assert "Correct-Horse" not in r.text and "x" * 65 not in r.text, r.text
    assert r.json()["detail"][0]["loc"][0] == "body"


def test_expected_graphql_errors_are_logged_without_traceback(api, users, caplog):
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO", format="{level} {message}")
    try:
        with caplog.at_level(logging.INFO, logger="strawberry.execution"):
            body = api.gql(users.bob, 'mutation { deletePhoto(id: "00000000-0000-0000-0000-000000000000") { deleted } }')
            assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            body = api.gql(users.bob, "{ photos(first: 100000) { totalCount } }")
            assert body["errors"]
    finally:
        logger.remove(sink)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert any(line.startswith("INFO graphql NOT_FOUND at deletePhoto") for line in lines), lines
    assert not any("Traceback" in line for line in lines)


def test_unexpected_graphql_errors_are_still_errors_with_traceback(caplog):
    from graphql import GraphQLError

    from api.gql.schema import schema

    try:
        raise RuntimeError("a bug")
    except RuntimeError as bug:
        error = GraphQLError("a bug", original_error=bug)
    with caplog.at_level(logging.INFO, logger="strawberry.execution"):
        schema.process_errors([error])
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info and record.exc_info[1] is error.original_error


# --- file names and filters --------------------------------------------------------------


def test_uploaded_file_names_lose_nul_and_text_direction_characters(api, users):
    # By hand: HTTP clients percent-encode a NUL in a file name, a hostile one need not.
    name = "holiday\u202egpj.exe\x00\u200b.jpg".encode()
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"files\"; filename=\"" + name + b"\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + jpeg((1, 2, 3)) + b"\r\n--b0undary--\r\n")
    r = api.client.post("/api/photos", content=body,
                        headers=auth(users.bob) | {"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert r.status_code == 201, r.text
    [result] = r.json()["results"]
    assert result["filename"] == "holiday_gpj.exe__.jpg", repr(result["filename"])
    api.caught_up()
    body = api.data(users.bob, "query($id: ID!) { photo(id: $id) { sources { sourceRef } } }", id=result["photo_id"])
    refs = [s["sourceRef"] for s in body["photo"]["sources"]]
    assert refs == ["upload:holiday_gpj.exe__.jpg"], refs


def test_local_import_stores_printable_names(tmp_path):
    from commands.importers.local import LocalFolderSource

    (tmp_path / "d\u202eir").mkdir()
    (tmp_path / "d\u202eir" / "cat\u202egpj.exe.jpg").write_bytes(jpeg())
    (tmp_path / "bell\x07.png").write_bytes(b"not an image")
    source = LocalFolderSource(tmp_path, [tmp_path])
    found = list(source.discover())
    assert len(found) == 2
    for item in found:
        for text in (item.source_ref, item.name, *map(str, item.provenance.values())):
            assert "\u202e" not in text and "\x07" not in text, repr(text)
    photo = next(i for i in found if i.name == "cat_gpj.exe.jpg")
    # Readable, and one-to-one: a digest of the real path follows what was replaced.
    assert photo.source_ref.startswith(f"local:{tmp_path}/d_ir/cat_gpj.exe.jpg#")
    assert source.fetch(photo) == jpeg()  # the real path still reads the file


@pytest.mark.parametrize("bad", ["2024-13-45", "yesterday", "2024-02-30", "31.12.2024", "2024-05-31T25:00"])
def test_invalid_dates_in_filters_are_errors(api, users, bad):
    body = api.gql(users.bob, "query($f: PhotoFilter) { photos(filter: $f) { totalCount } }", f={"importedFrom": bad})
    assert body.get("data") is None or body["data"]["photos"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_FILTER" and "importedFrom" in error["message"], error


def test_dates_in_filters_compare_as_times(api, users):
    api.upload(users.bob, ("dated.jpg", jpeg((5, 6, 7)), "image/jpeg"))
    api.caught_up()
    query = "query($f: PhotoFilter) { photos(filter: $f) { totalCount } }"
    total = api.data(users.bob, query)["photos"]["totalCount"]
    assert total >= 1
    count = lambda **f: api.data(users.bob, query, f=f)["photos"]["totalCount"]  # noqa: E731
    assert count(importedFrom="2000-01-01") == total
    assert count(importedTo="2000-01-01T00:00:00+03:00") == 0
    assert count(importedFrom="2999-01-01T00:00:00-05:00") == 0
    assert count(importedTo="2999-01-01T00:00:00Z") == total
