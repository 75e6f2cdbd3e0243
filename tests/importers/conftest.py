"""Fake VK, Yandex.Disk and Yandex OAuth servers (real HTTP on 127.0.0.1) for the importer
tests, and the API (`create_app`, no broker or projections) pointed at them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from pydantic import SecretStr

from commands.importers.tokens import TokenCipher
from facesearch.settings import Settings
from tests.fakes import vk_server, yadisk_server, yandex_oauth

VK_REDIRECT = "https://faces.example/api/oauth/vk/callback"
YANDEX_REDIRECT = "https://faces.example/api/oauth/yandex/callback"
START_IMPORT = "mutation($s: ImportSource!, $t: String!) { startImport(input: {source: $s, target: $t}) }"


@pytest.fixture
def vk() -> Iterator[tuple[vk_server.FakeVk, str]]:
    """A fresh fake VK and its API base URL (…/method)."""
    with vk_server.running() as served:
        yield served


@pytest.fixture
def yadisk() -> Iterator[tuple[yadisk_server.FakeYandexDisk, str]]:
    """A fresh fake Yandex.Disk and its API base URL."""
    with yadisk_server.running() as served:
        yield served


@pytest.fixture
def yandex_id() -> Iterator[tuple[yandex_oauth.FakeYandexOAuth, str]]:
    """A fresh fake Yandex OAuth and its base URL."""
    with yandex_oauth.running() as served:
        yield served


@dataclass(frozen=True)
class FinishedJob:
    status: str
    counts: dict[str, int]
    options: dict[str, Any]
    reason: str | None  # ImportFailed's


@dataclass
class ApiOnFakes:
    """The API signed in as one user (the session cookie, as a browser has it)."""

    client: Any  # fastapi.testclient.TestClient
    settings: Settings
    user_id: str
    vk: vk_server.FakeVk
    disk: yadisk_server.FakeYandexDisk
    yandex: yandex_oauth.FakeYandexOAuth
    responses: list[str]  # every answer's text and Location, to search for tokens

    @property
    def system(self):
        return self.client.app.state.system

    @property
    def store(self):
        return self.client.app.state.imports.credentials()

    def get(self, path: str, **params: Any):
        response = self.client.get(path, params=params)
        self.responses += [response.text, response.headers.get("location", "")]
        return response

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        self.responses.append(response.text)
        return response.json()

    def start_import(self, source: str, target: str) -> UUID:
        body = self.gql(START_IMPORT, s=source, t=target)
        assert "errors" not in body, body["errors"]
        return UUID(body["data"]["startImport"])

    def finished(self, import_id: UUID, timeout: float = 60.0) -> FinishedJob:
        """The job once it has ended and its runner is done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.system.app.get_import(import_id)
            if not job.is_open and not self.client.app.state.imports.running:
                last = list(self.system.app.events.get(import_id))[-1]
                return FinishedJob(job.status, job.counts(), job.options, getattr(last, "reason", None))
            time.sleep(0.05)
        raise AssertionError(f"import {import_id} did not finish in {timeout} s")

    def stored_bytes(self) -> bytes:
        """Every database file of this server (event store with its credentials, read models)."""
        var = self.settings.var_dir
        return b"".join(p.read_bytes() for p in sorted(var.glob("*.sqlite*")) if p.is_file())


@pytest.fixture
def api_on_fakes(tmp_path: Path, vk, yadisk, yandex_id) -> Iterator[ApiOnFakes]:
    from fastapi.testclient import TestClient

    from api.app import create_app

    fake_vk, vk_base = vk
    fake_disk, disk_base = yadisk
    fake_yandex, yandex_base = yandex_id
    settings = Settings(
        var_dir=tmp_path / "var", kafka_bootstrap="127.0.0.1:9", run_workers=False,
        token_key=SecretStr(TokenCipher.generate_key()), import_allow_loopback_http=True,
        vk_api_base=vk_base, vk_id_base=vk_base.removesuffix("/method"), yadisk_api_base=disk_base,
        vk_client_id="51234", vk_redirect_uri=VK_REDIRECT, vk_requests_per_second=30.0,
        yandex_oauth_base=yandex_base, yandex_client_id=yandex_oauth.CLIENT_ID,
        yandex_client_secret=SecretStr(yandex_oauth.CLIENT_SECRET), yandex_redirect_uri=YANDEX_REDIRECT,
        import_backoff_seconds=0.05,
    )
    # Signed in by cookie, like the web client, so its state changes name our origin as a browser's do.
    with TestClient(create_app(settings, run_system=False), follow_redirects=False,
                    headers={"Origin": "http://testserver"}) as client:
        signed_in = client.post("/api/auth/setup", json={"username": "ann", "password": "ann-password"})
        assert signed_in.status_code == 201, signed_in.text
        yield ApiOnFakes(client, settings, signed_in.json()["user"]["id"], fake_vk, fake_disk, fake_yandex, [])
