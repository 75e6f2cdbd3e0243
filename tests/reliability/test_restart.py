"""Start, upload, stop (SIGTERM or kill -9), start again, search: on both profiles.

Failed before projections/vectors.py loaded collections on open: after any restart Milvus
keeps collections released, and searchByExample and clusterPeople answered
"Collection 'faces_facenet512' is in state 'released'; call load() before search/get/query".
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.server import UpProcess

SEARCH = """query($id: String!) { searchByExample(input: {exampleId: $id, threshold: 80}) {
  candidates photos { photoId similarity } } }"""
CLUSTER = "mutation { clusterPeople { faces people } }"
ANALYSED_WITHIN_S = 90
SEARCHABLE_WITHIN_S = 30


def pick_photos(data_dir: Path) -> tuple[list[Path], Path]:
    """Three photos of one person to store, a fourth of the same person to search with."""
    import csv

    with open(data_dir / "lfw" / "clusters.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    identity = rows[0]["identity"]
    paths = [data_dir / "lfw" / r["path"] for r in rows if r["identity"] == identity][:4]
    return paths[:3], paths[3]


class Client:
    def __init__(self, server: UpProcess) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=60)
        self.token = ""

    def sign_in(self, first: bool) -> None:
        body = {"username": "ann", "password": "restart-Test-pass-9431"}
        r = self.http.post("/api/auth/setup" if first else "/api/auth/login", json=body)
        assert r.status_code in (200, 201), r.text
        self.token = r.json()["token"]
        self.http.cookies.clear()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def gql(self, query: str, **variables) -> dict:
        r = self.http.post("/graphql", json={"query": query, "variables": variables}, headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()

    def search(self, example: Path) -> dict:
        r = self.http.post("/api/search/examples", files={"file": (example.name, example.read_bytes(), "image/jpeg")},
                           headers=self.auth)
        assert r.status_code == 201, r.text
        return self.gql(SEARCH, id=r.json()["example_id"])

    def wait_analysed(self, count: int) -> None:
        deadline = time.monotonic() + ANALYSED_WITHIN_S
        while time.monotonic() < deadline:
            body = self.gql("{ photos(first: 50) { edges { node { status } } } }")
            statuses = [e["node"]["status"] for e in body["data"]["photos"]["edges"]]
            if len(statuses) >= count and all(s == "ANALYSED" for s in statuses):
                return
            time.sleep(0.5)
        raise AssertionError(f"photos not analysed within {ANALYSED_WITHIN_S} s: {statuses}")


def search_and_cluster(client: Client, example: Path) -> tuple[set[str], int]:
    """(photos found for the example, faces clustered); asserts neither failed."""
    body = client.search(example)
    assert "errors" not in body, body["errors"]
    found = {p["photoId"] for p in body["data"]["searchByExample"]["photos"]}
    body = client.gql(CLUSTER)
    assert "errors" not in body, body["errors"]
    return found, body["data"]["clusterPeople"]["faces"]


def until_searchable(client: Client, example: Path, stored: int) -> tuple[set[str], int]:
    """Analysed photos reach the faces and vectors projections a moment later: search until
    every stored photo is found (bounded)."""
    deadline = time.monotonic() + SEARCHABLE_WITHIN_S
    while True:
        found = search_and_cluster(client, example)
        if len(found[0]) == stored and found[1] >= stored:
            return found
        assert time.monotonic() < deadline, f"not searchable within {SEARCHABLE_WITHIN_S} s: {found}"
        time.sleep(1.0)


def up_settings(tmp_path: Path, tansu, models_dir: Path, prefix: str) -> dict:
    """The settings of a `facesearch up` that restarts quickly, on the test's own topics."""
    return {
        "var_dir": tmp_path / "var", "models_dir": models_dir, "kafka_bootstrap": tansu.bootstrap,
        "topic_prefix": f"{prefix}{tmp_path.name[-10:].replace('-', '_')}", "worker_use_gpu": "false",
        "redelivery_after_seconds": 2.0, "worker_max_wait_ms": 100, "worker_session_timeout_ms": 6000,
    }


def store_and_search(server: UpProcess, stored: list[Path], example: Path) -> tuple[set[str], int]:
    """Starts `server`, makes the first account, uploads `stored` and waits until a search of
    `example` finds them all: what the test compares after each restart."""
    client = Client(server.start())
    client.sign_in(first=True)
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in stored]
    assert client.http.post("/api/photos", files=files, headers=client.auth).status_code == 201
    client.wait_analysed(len(stored))
    return until_searchable(client, example, len(stored))


@pytest.mark.parametrize(("profile", "stop_signal"), [
    ("sqlite", signal.SIGTERM), ("sqlite", signal.SIGKILL), ("postgres", signal.SIGKILL),
], ids=["sqlite-sigterm", "sqlite-kill9", "postgres-kill9"])
def test_search_after_restart(profile, stop_signal, tmp_path, fresh_tansu, data_dir, models_dir, request):
    settings = up_settings(tmp_path, fresh_tansu, models_dir, "r")
    if profile == "postgres":
        dsn = request.getfixturevalue("pg_database")
        settings |= {"event_store_dsn": dsn, "read_model_url": dsn}
    stored, example = pick_photos(data_dir)
    server = UpProcess(settings, tmp_path / "up.log")
    try:
        before = store_and_search(server, stored, example)

        server.stop(stop_signal)
        client = Client(server.start())
        client.sign_in(first=False)
        assert search_and_cluster(client, example) == before  # the first use after the restart
        log = server.tail(200_000)
        assert "call load()" not in log and "Traceback" not in log, log[-3000:]
    finally:
        server.stop(signal.SIGTERM) if server.process and server.process.poll() is None else None
        server.kill_session()


def stop_left_server(var_dir: Path) -> None:
    """At teardown: the embedded Milvus server a failed test may have left running."""
    try:
        os.killpg(int(json.loads((var_dir / "milvus-server.json").read_text())["server_pid"]), signal.SIGKILL)
    except (OSError, ValueError, KeyError):
        pass


def test_moving_to_the_embedded_server_keeps_every_face_through_a_kill9(tmp_path, fresh_tansu, data_dir, models_dir):
    """The quick start's default store: an archive made on Milvus Lite is rebuilt into the
    embedded Milvus server at the first start on it; after a kill -9 (which leaves the server
    running on its own) the next start stops that server, starts its own on the same data,
    and searches find what they found before."""
    settings = up_settings(tmp_path, fresh_tansu, models_dir, "m") | {"milvus_embedded": "lite"}
    stored, example = pick_photos(data_dir)
    server = UpProcess(settings, tmp_path / "up.log")
    try:
        before = store_and_search(server, stored, example)
        server.stop(signal.SIGTERM)

        server.env["FACESEARCH_MILVUS_EMBEDDED"] = "server"
        client = Client(server.start(timeout=180))
        client.sign_in(first=False)
        assert search_and_cluster(client, example) == before  # rebuilt from the events before answering
        assert (tmp_path / "var" / "milvus-server.json").exists()
        log = server.tail(200_000)
        assert "rebuilding it from the event log" in log, log[-3000:]

        server.stop(signal.SIGKILL)
        client = Client(server.start(timeout=180))
        client.sign_in(first=False)
        assert search_and_cluster(client, example) == before
        log = server.tail(200_000)
        assert "a killed process left running" in log, log[-3000:]
        assert log.count("rebuilding it from the event log") == 1  # the server kept its faces
        assert "call load()" not in log and "Traceback" not in log, log[-3000:]
        milvus = json.loads((tmp_path / "var" / "milvus-server.json").read_text())["server_pid"]
        server.stop(signal.SIGTERM)
        assert not (tmp_path / "var" / "milvus-server.json").exists()
        with pytest.raises(ProcessLookupError):  # the server stopped with its owner
            os.killpg(milvus, 0)
    finally:
        server.stop(signal.SIGTERM) if server.process and server.process.poll() is None else None
        server.kill_session()
        stop_left_server(tmp_path / "var")
