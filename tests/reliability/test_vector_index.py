"""The face index on Milvus Lite across process lifetimes, without the rest of the system.

Failed before projections/vectors.py loaded collections on open (search and vectors after a
reopen: "Collection 'faces_facenet512' is in state 'released'") and serialised its first
connection (threads opening one Lite file at once: "Open local milvus failed").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from projections.vectors import FaceVectorIndex, IndexConfig, VectorIndexUnavailable
from tests.reliability.server import ROOT

MODEL = "facenet512"
CONFIG = IndexConfig(metrics=((MODEL, "COSINE"),))


def rows(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, 512)).astype(np.float32)
    return [dict(id=f"p{i}:0", photo_id=f"p{i}", owner="ann", source="upload", import_id="", imported_at=0,
                 vector=v.tolist()) for i, v in enumerate(vectors)]


def in_new_process(db: Path, code: str) -> str:
    """Runs `code` (with `index` open on `db`) in a fresh interpreter, as a restarted server would."""
    script = textwrap.dedent(f"""
        import numpy as np
        from projections.vectors import FaceVectorIndex, IndexConfig
        index = FaceVectorIndex({str(db)!r}, IndexConfig(metrics=(("{MODEL}", "COSINE"),)))
    """) + textwrap.dedent(code)
    path = db.parent / "step.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=90,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_search_and_vectors_after_the_process_restarts(tmp_path):
    db = tmp_path / "milvus.db"
    stored = rows(20)
    in_new_process(db, f"index.upsert({MODEL!r}, {stored!r})")
    out = in_new_process(db, f"""
        hits = index.search({MODEL!r}, np.array({stored[3]['vector']!r}, dtype=np.float32), 3, 'owner == "ann"')
        print(hits[0].face_id, len(index.vectors({MODEL!r}, ["p3:0", "p4:0"])), index.count({MODEL!r}))
        index.delete_photo("p5")
        print(index.count({MODEL!r}))
    """)
    assert out.split() == ["p3:0", "2", "20", "19"]


def test_a_collection_released_behind_its_back_is_loaded_again(tmp_path):
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), CONFIG)
    try:
        stored = rows(5)
        index.upsert(MODEL, stored)
        index.client.release_collection("faces_facenet512")  # as a Milvus server restart does
        hits = index.search(MODEL, np.array(stored[1]["vector"], dtype=np.float32), 1)
        assert hits[0].face_id == "p1:0"
        index.client.release_collection("faces_facenet512")
        assert set(index.vectors(MODEL, ["p0:0", "p2:0"])) == {"p0:0", "p2:0"}
    finally:
        index.close()


def test_threads_opening_the_index_at_once_share_one_connection(tmp_path):
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), CONFIG)
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            index.count(MODEL)
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
    finally:
        index.close()


def test_an_index_that_cannot_load_says_so_without_milvus_text(tmp_path, monkeypatch):
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), CONFIG)
    try:
        index.upsert(MODEL, rows(2))
        index.client.release_collection("faces_facenet512")
        index._loaded.clear()
        monkeypatch.setattr(index.client, "load_collection", lambda name: None)  # a load that does not take
        with pytest.raises(VectorIndexUnavailable) as caught:
            index.search(MODEL, np.zeros(512, dtype=np.float32), 1)
        assert caught.value.code == "VECTOR_INDEX_UNAVAILABLE"
        assert "released" not in str(caught.value) and "load()" not in str(caught.value)
    finally:
        index.close()


def test_a_connection_lost_on_any_call_connects_again(tmp_path, monkeypatch):
    """Every call, not only those on a loaded collection: the flake this fixed was a search's
    `has_collection` meeting a GOAWAY from Milvus Lite ("too many pings")."""
    from pymilvus.exceptions import MilvusException

    index = FaceVectorIndex(str(tmp_path / "milvus.db"), CONFIG)
    try:
        index.upsert(MODEL, rows(3))
        lost = index.client

        def gone(*args, **kwargs):
            raise MilvusException(message="<_MultiThreadedRendezvous: StatusCode.UNAVAILABLE, too_many_pings>")

        for call in ("has_collection", "list_collections"):
            monkeypatch.setattr(lost, call, gone)
        assert index.count(MODEL) == 3
        assert index.client is not lost  # a new connection answered
        assert index.models() == [MODEL]
    finally:
        index.close()


def test_opening_waits_for_a_busy_server_then_says_so(tmp_path, monkeypatch):
    import pymilvus

    import projections.vectors as vectors

    real, attempts = pymilvus.MilvusClient, []

    def slow_to_answer(*args, **kwargs):
        attempts.append(kwargs)
        if len(attempts) < 3:
            raise pymilvus.exceptions.MilvusException(message="Fail connecting to server on 127.0.0.1:1")
        return real(*args, **kwargs)

    monkeypatch.setattr(pymilvus, "MilvusClient", slow_to_answer)
    monkeypatch.setattr(vectors.time, "sleep", lambda s: None)
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), CONFIG)
    try:
        assert index.count(MODEL) == 0 and len(attempts) == 3
        assert attempts[0]["grpc_options"]["grpc.keepalive_permit_without_calls"] == 0  # Lite: no idle pings
    finally:
        index.close()

    def never_answers(*args, **kwargs):
        raise pymilvus.exceptions.MilvusException(message="Fail connecting to server on 127.0.0.1:1")

    monkeypatch.setattr(pymilvus, "MilvusClient", never_answers)
    monkeypatch.setattr(vectors, "CONNECT_PATIENCE_S", 0.0)
    with pytest.raises(VectorIndexUnavailable):
        FaceVectorIndex(str(tmp_path / "other.db"), CONFIG).count(MODEL)
