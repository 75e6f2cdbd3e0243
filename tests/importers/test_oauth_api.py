"""Signing in through the API (Yandex OAuth, VK ID) against the fakes, then importing with
the saved sign-in through GraphQL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from commands.importers.tokens import TokenCipher
from domain.import_job import ImportStatus
from facesearch.settings import Settings
from tests.fakes import yadisk_server
from tests.fakes.images import make_image
from tests.importers.conftest import YANDEX_REDIRECT, ApiOnFakes

OWN_DISK = {
    "Photos": {
        "2019": {"a.jpg": make_image(11), "notes.txt": b"x"},
        "c.png": make_image(12, "PNG"),
    },
    "Work": {"d.jpg": make_image(13)},
}


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def sign_in_with_yandex(api: ApiOnFakes) -> dict[str, str]:
    """Start at the API, follow the redirect to the (fake) Yandex OAuth, which sends the
    browser back with a code; hand that to the API's callback. The callback's outcome."""
    started = api.get("/api/oauth/yandex/start")
    assert started.status_code == 302
    consent = httpx.get(started.headers["location"], follow_redirects=False)
    assert consent.status_code == 302
    back = consent.headers["location"]
    assert back.startswith(YANDEX_REDIRECT + "?")
    return outcome_of(api.get(urlsplit(back).path, **query_of(back)))


def outcome_of(callback: httpx.Response) -> dict[str, str]:
    """What the API's callback tells the Imports screen it redirects to."""
    assert callback.status_code == 303
    screen, _, query = callback.headers["location"].partition("?")
    assert screen == "/#/imports"
    return {k: v[0] for k, v in parse_qs(query).items()}


def test_yandex_sign_in_through_the_api_then_import_a_folder_of_the_own_disk(api_on_fakes):
    api = api_on_fakes
    api.disk.own = OWN_DISK
    assert api.get("/api/oauth/status").json()["yandex"] == {"configured": True, "connected": False}
    refused = api.gql("mutation { startImport(input: {source: YANDEX_DISK, target: \"disk:/Photos\"}) }")
    assert "sign in with Yandex.Disk first" in refused["errors"][0]["message"]

    started = api.get("/api/oauth/yandex/start")
    authorize = urlsplit(started.headers["location"])
    query = query_of(started.headers["location"])
    assert authorize.path == "/authorize"
    assert query["response_type"] == "code" and query["client_id"] == api.settings.yandex_client_id
    assert query["redirect_uri"] == YANDEX_REDIRECT and query["scope"] == "cloud_api:disk.read"
    assert query["code_challenge_method"] == "S256" and len(query["state"]) >= 32

    outcome = sign_in_with_yandex(api)
    assert outcome["yandex"] == "connected", outcome
    [exchange] = api.yandex.token_requests
    assert exchange["grant_type"] == "authorization_code" and "client_id" not in exchange  # id + secret in Basic auth
    assert api.get("/api/oauth/status").json()["yandex"] == {"configured": True, "connected": True}
    [credential] = api.get("/api/credentials").json()
    assert (credential["id"], credential["provider"], credential["status"]) == (outcome["credential"], "yandex", "active")
    assert api.store.token_for(owner=api.user_id, provider="yandex") == yadisk_server.GOOD_TOKEN

    by_path = api.finished(api.start_import("YANDEX_DISK", "disk:/Photos"))
    assert by_path.status == ImportStatus.completed, by_path.reason
    assert by_path.counts == {"discovered": 3, "stored": 2, "skipped": 1, "failed": 0}
    assert by_path.options == {"credential_id": credential["id"]}
    by_web_link = api.finished(api.start_import("YANDEX_DISK", "https://disk.yandex.ru/client/disk/Work"))
    assert by_web_link.status == ImportStatus.completed, by_web_link.reason
    assert by_web_link.counts["stored"] == 1
    assert api.disk.auth_headers_at_storage == 0
    assert not any(yadisk_server.GOOD_TOKEN in answer for answer in api.responses)


def test_a_yandex_token_the_disk_refuses_fails_the_job_with_a_clear_message(api_on_fakes):
    api = api_on_fakes
    api.disk.own = OWN_DISK
    api.yandex.issue_token = yadisk_server.EXPIRED_TOKEN
    assert sign_in_with_yandex(api)["yandex"] == "connected"

    job = api.finished(api.start_import("YANDEX_DISK", "disk:/Photos"))
    assert job.status == ImportStatus.failed
    assert "Yandex no longer accepts the access token" in job.reason and "sign in again" in job.reason
    assert job.counts["stored"] == 0 and api.disk.downloads == 0


def test_yandex_callbacks_that_do_not_belong_are_refused(api_on_fakes):
    api = api_on_fakes
    started = api.get("/api/oauth/yandex/start")
    consent = httpx.get(started.headers["location"], follow_redirects=False)
    code = query_of(consent.headers["location"])["code"]

    forged = outcome_of(api.get("/api/oauth/yandex/callback", code=code, state="forged"))
    assert forged["yandex"] == "failed" and "start signing in again" in forged["reason"]
    denied = outcome_of(api.get("/api/oauth/yandex/callback", error="access_denied"))
    assert denied == {"yandex": "failed", "reason": "Yandex sign-in was cancelled or refused (access_denied)"}
    assert api.yandex.token_requests == []  # neither reached Yandex
    assert api.store.list(api.user_id) == []

    # A wrong app secret: Yandex refuses the exchange, nothing is saved.
    api.yandex.clients[api.settings.yandex_client_id] = "another-secret"
    outcome = sign_in_with_yandex(api)
    assert outcome["yandex"] == "failed" and "Yandex refused the sign-in" in outcome["reason"]
    assert api.store.list(api.user_id) == []


def test_revoking_through_the_api_disconnects(api_on_fakes):
    api = api_on_fakes
    assert sign_in_with_yandex(api)["yandex"] == "connected"
    assert api.client.post("/api/credentials/yadisk/revoke").json() == {"revoked": 1}
    assert api.get("/api/oauth/status").json()["yandex"] == {"configured": True, "connected": False}
    refused = api.gql("mutation { startImport(input: {source: YANDEX_DISK, target: \"disk:/Photos\"}) }")
    assert "sign in with Yandex.Disk first" in refused["errors"][0]["message"]


def test_without_a_configured_app_sign_in_is_unavailable(api_on_fakes):
    api = api_on_fakes
    api.settings.yandex_client_id = ""
    assert api.get("/api/oauth/status").json()["yandex"] == {"configured": False, "connected": False}
    assert api.get("/api/oauth/yandex/start").status_code == 503


def test_a_restart_of_the_api_keeps_what_the_database_holds(tmp_path):
    settings = Settings(var_dir=tmp_path / "var", kafka_bootstrap="127.0.0.1:9", run_workers=False,
                        token_key=SecretStr(TokenCipher.generate_key()))
    settings.var_dir.mkdir()
    engine = sa.create_engine(settings.resolved_read_model_url())
    with engine.begin() as conn:  # the table an older API kept VK tokens in: the API drops nothing at start
        conn.execute(sa.text("CREATE TABLE api_vk_tokens (user_id VARCHAR(36) PRIMARY KEY, ciphertext TEXT)"))
        conn.execute(sa.text("INSERT INTO api_vk_tokens VALUES ('ann', 'sealed')"))
    with TestClient(create_app(settings, run_system=False)) as client:
        store = client.app.state.imports.credentials()  # type: ignore[attr-defined]
        credential = store.save("ann", "yandex", "y0_token-of-ann")
    for _ in range(2):
        with TestClient(create_app(settings, run_system=False)) as client:
            store = client.app.state.imports.credentials()  # type: ignore[attr-defined]
            assert store.token_for(credential) == "y0_token-of-ann"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT user_id, ciphertext FROM api_vk_tokens")).all() == [("ann", "sealed")]
    engine.dispose()
