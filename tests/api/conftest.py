"""An API on real parts (event store, tansu, relay, projections) in a temporary directory,
driven through Starlette's TestClient; users sign in with bearer tokens."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.similarity import Calibration
from facesearch.settings import Settings
from projections.tables import faces

MAX_UPLOAD = 300_000
MODEL = "facenet512"
# The test calibration puts 85 % (the default "same person" threshold) at this raw cosine;
# synthetic faces of one identity are ≈ 0.75 apart, of different identities ≈ 0.
SAME_PERSON_COSINE = 0.4


@dataclass
class Api:
    client: TestClient
    settings: Settings

    @property
    def system(self):
        return self.client.app.state.system

    def run(self, coro_fn, *args: Any) -> Any:
        return self.client.portal.call(coro_fn, *args)

    def caught_up(self) -> None:
        self.run(self.system.wait_until_caught_up, 60)

    def gql(self, token: str, query: str, **variables: Any) -> dict[str, Any]:
        r = self.client.post("/graphql", json={"query": query, "variables": variables}, headers=auth(token))
        assert r.status_code == 200, r.text
        return r.json()

    def data(self, token: str, query: str, **variables: Any) -> dict[str, Any]:
        body = self.gql(token, query, **variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def upload(self, token: str, *files: tuple[str, bytes, str]):
        return self.client.post("/api/photos", files=[("files", f) for f in files], headers=auth(token))

    def add_faces(self, photo_id: str, owner: str, boxes: list[tuple[float, float, float, float]], **extra: Any) -> None:
        """Face rows as the faces projection writes them (the detector is another suite's subject)."""
        rows = [face_row(photo_id, owner, i, box, **extra) for i, box in enumerate(boxes)]

        async def insert() -> None:
            async with self.system.runner.writer.transaction() as conn:
                await conn.execute(faces.insert(), rows)

        self.run(insert)

    def add_identities(self, owner: str, photos_per_identity: dict[str, int], seed: int = 0) -> dict[str, list[str]]:
        """Synthetic faces of these identities, one per new photo: face rows in the read model
        and vectors in Milvus, as the pipeline would leave them. Returns identity → face ids."""
        rng = np.random.default_rng(seed)
        made: dict[str, list[str]] = {}
        vectors = []
        for identity, count in photos_per_identity.items():
            centre = rng.standard_normal(512)
            centre /= np.linalg.norm(centre)
            for _ in range(count):
                photo_id = str(uuid.uuid4())
                self.add_faces(photo_id, owner, [(10, 10, 110, 110)])
                v = centre + rng.standard_normal(512) * 0.025
                vectors.append(dict(id=f"{photo_id}:0", photo_id=photo_id, owner=owner, source="upload", import_id="",
                                    imported_at=0, vector=(v / np.linalg.norm(v)).astype(np.float32).tolist()))
                made.setdefault(identity, []).append(f"{photo_id}:0")
        self.system.vectors.upsert(MODEL, vectors)
        return made


def face_row(photo_id: str, owner: str, index: int, box, **extra: Any) -> dict[str, Any]:
    x1, y1, x2, y2 = box
    return dict(
        id=f"{photo_id}:{index}", photo_id=photo_id, face_index=index, owner=owner, source="upload",
        source_ref=f"upload:{photo_id}.jpg", import_id=None, x1=x1, y1=y1, x2=x2, y2=y2,
        landmarks=[[x1, y1]] * 5, score=0.9 + index / 1000, size_px=min(x2 - x1, y2 - y1), blur=100.0, flags="",
        detector="retinaface", detector_version="1", models="facenet512", processed_at="2026-01-02T03:04:05+00:00",
        deleted=False,
    ) | extra


def write_test_calibration(models_dir: Path) -> None:
    """A calibration for MODEL under which clustering groups the synthetic identities (no
    model runs in this suite: the real calibration is the pipeline's subject)."""
    # No cohort: every face has the typical statistics, so the normalised score is
    # (cos - 0.2) / 0.05; clustering's "same person" (85 % among CLUSTERING_ARCHIVE_FACES faces:
    # 0.1 / 30 false matches per pair) falls at SAME_PERSON_COSINE.
    from commands.people import CLUSTERING_ARCHIVE_FACES

    z85 = (SAME_PERSON_COSINE - 0.2) / 0.05
    rate85 = math.log10(0.1 / CLUSTERING_ARCHIVE_FACES)
    calibration = Calibration(
        model=MODEL, knots_score=(0.0, z85 - 1.0, z85), knots_log10_fmr=(0.0, rate85 + 1.0, rate85), tail_slope=-1.0,
        typical_mean=0.2, typical_std=0.05,
    )
    assert abs(calibration.typical_cosine(85.0, CLUSTERING_ARCHIVE_FACES) - SAME_PERSON_COSINE) < 1e-9
    path = models_dir / MODEL / "calibration.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"cosine": calibration.to_dict()}))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Users:
    ann: str  # administrator (made by first-run setup)
    bob: str  # an ordinary user
    ann_id: str
    bob_id: str


@pytest.fixture(scope="module")
def api(tansu, tmp_path_factory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    (root / "imports").mkdir()
    write_test_calibration(root / "models")
    settings = Settings(
        var_dir=root / "var", models_dir=root / "models", kafka_bootstrap=tansu.bootstrap, run_workers=False,
        max_upload_bytes=MAX_UPLOAD, allowed_import_roots=[root / "imports"], redelivery_after_seconds=2.0,
        # No workers run here: the re-embedding pass would only poll (and its queries would
        # land in the query counts of test_no_n_plus_one).
        reembed_every_seconds=3600.0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=True) as client:
        yield Api(client, settings)


@pytest.fixture(scope="module")
def users(api: Api) -> Users:
    c = api.client
    r = c.post("/api/auth/setup", json={"username": "ann", "password": "ann-password"})
    assert r.status_code == 201, r.text
    ann = r.json()
    r = c.post("/api/users", json={"username": "bob", "password": "bob-password"}, headers=auth(ann["token"]))
    assert r.status_code == 201, r.text
    r = c.post("/api/auth/login", json={"username": "bob", "password": "bob-password"})
    bob = r.json()
    c.cookies.clear()  # each test names its user by token
    return Users(ann["token"], bob["token"], ann["user"]["id"], bob["user"]["id"])


def new_user(api: Api, admin_token: str, username: str) -> tuple[str, str]:
    """Another ordinary user: (token, user id)."""
    r = api.client.post("/api/users", json={"username": username, "password": f"{username}-password"},
                        headers=auth(admin_token))
    assert r.status_code == 201, r.text
    r = api.client.post("/api/auth/login", json={"username": username, "password": f"{username}-password"})
    assert r.status_code == 200, r.text
    api.client.cookies.clear()
    return r.json()["token"], r.json()["user"]["id"]


def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def images_dir(api: Api) -> Path:
    return api.settings.allowed_import_roots[0]


