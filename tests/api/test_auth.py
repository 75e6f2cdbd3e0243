"""Sign-in, sessions, roles, and the 401 gate."""

from __future__ import annotations

import pytest

from tests.api.conftest import auth

PROTECTED = [
    ("GET", "/graphql?query={me{id}}"),
    ("POST", "/graphql"),
    ("POST", "/api/photos"),
    ("GET", "/api/photos/x/original"),
    ("GET", "/api/photos/x/thumbnail"),
    ("GET", "/api/faces/x/crop"),
    ("GET", "/api/export/faces.csv"),
    ("GET", "/api/export/faces.json"),
    ("GET", "/api/monitoring/series"),
    ("GET", "/api/auth/me"),
    ("GET", "/api/users"),
    ("GET", "/api/oauth/status"),
    ("GET", "/api/oauth/yandex/start"),
    ("GET", "/api/credentials"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_unauthenticated_requests_get_401(api, users, method, path):
    r = api.client.request(method, path)
    assert r.status_code == 401, (path, r.status_code)
    assert r.json() == {"detail": "sign in first"}
    r = api.client.request(method, path, headers=auth("not-a-token"))
    assert r.status_code == 401


def test_health_and_sign_in_are_open(api, users):
    assert api.client.get("/health").status_code == 200
    status = api.client.get("/api/auth/status").json()
    assert status == {"setup_required": False, "user": None}


def test_setup_only_once_and_login(api, users):
    r = api.client.post("/api/auth/setup", json={"username": "eve", "password": "eve-password"})
    assert r.status_code == 409
    assert api.client.post("/api/auth/login", json={"username": "ann", "password": "wrong-password"}).status_code == 401
    assert api.client.post("/api/auth/login", json={"username": "nobody", "password": "whatever1"}).status_code == 401
    r = api.client.post("/api/auth/login", json={"username": "ann", "password": "ann-password"})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert "fs_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    # The cookie alone signs the browser in.
    assert api.client.get("/api/auth/me").json()["username"] == "ann"
    api.client.cookies.clear()


def test_logout_ends_the_session(api, users):
    token = api.client.post("/api/auth/login", json={"username": "bob", "password": "bob-password"}).json()["token"]
    api.client.cookies.clear()
    assert api.client.get("/api/auth/me", headers=auth(token)).status_code == 200
    assert api.client.post("/api/auth/logout", headers=auth(token)).status_code == 204
    assert api.client.get("/api/auth/me", headers=auth(token)).status_code == 401


def test_only_admins_manage_users(api, users):
    r = api.client.post("/api/users", json={"username": "carl", "password": "carl-password"}, headers=auth(users.bob))
    assert r.status_code == 403
    assert api.client.get("/api/users", headers=auth(users.bob)).status_code == 403
    names = [u["username"] for u in api.client.get("/api/users", headers=auth(users.ann)).json()]
    assert names == ["ann", "bob"]
    r = api.client.post("/api/users", json={"username": "bob", "password": "another-pass"}, headers=auth(users.ann))
    assert r.status_code == 422 and "taken" in r.json()["detail"]
    r = api.client.post("/api/users", json={"username": "dan", "password": "short"}, headers=auth(users.ann))
    assert r.status_code == 422


def test_passwords_are_stored_as_argon2id(api, users):
    import sqlalchemy as sa

    from api.users import users as users_table

    async def hashes():
        async with api.system.engine.connect() as conn:
            return [r[0] for r in await conn.execute(sa.select(users_table.c.password_hash))]

    stored = api.run(hashes)
    assert stored and all(h.startswith("$argon2id$") for h in stored)
    assert not any("password" in h for h in stored)


def test_me_query_and_metrics_when_signed_in(api, users):
    assert api.data(users.bob, "{ me { username role } }") == {"me": {"username": "bob", "role": "user"}}
    r = api.client.get("/metrics", headers=auth(users.ann))
    assert r.status_code == 200 and "facesearch_http_request_seconds" in r.text
    assert r.headers["content-type"].startswith("text/plain")


def test_security_headers(api, users):
    for r in (api.client.get("/health"), api.client.get("/api/auth/me"), api.client.get("/")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'self'" in r.headers["content-security-policy"]


def test_graphiql_in_development(api, users):
    r = api.client.get("/graphql", headers={**auth(users.ann), "Accept": "text/html"})
    assert r.status_code == 200 and "graphiql" in r.text.lower()


def test_openapi_documents_the_rest_endpoints(api, users):
    spec = api.client.get("/openapi.json", headers=auth(users.ann)).json()
    for path in ("/api/photos", "/api/photos/{photo_id}/original", "/api/photos/{photo_id}/thumbnail",
                 "/api/faces/{face_id}/crop", "/api/export/faces.{fmt}", "/api/auth/login"):
        assert path in spec["paths"], path
