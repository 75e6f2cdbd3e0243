"""The Milvus projection's index settings: IVF_PQ on a real Milvus server (PyPI `milvus`),
and the fallback with a warning on Milvus Lite, which has no IVF_PQ."""

from __future__ import annotations

import numpy as np
import pytest
from loguru import logger

from facesearch.infra.milvus_server import MilvusServer, server_binary
from projections.vectors import LITE_FLUSH_ROWS, FaceVectorIndex, IndexConfig


def rows(n: int, dim: int = 128, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, [
        {"id": f"p{i}:0", "photo_id": f"p{i}", "owner": "ann" if i % 2 == 0 else "bob", "source": "local",
         "import_id": "", "imported_at": i, "vector": v.tolist()}
        for i, v in enumerate(vectors)
    ]


def test_lite_falls_back_from_ivf_pq_with_a_warning(tmp_path):
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), IndexConfig(index_type="IVF_PQ", ivf_nlist=16, ivf_nprobe=16, metrics=(("arcface", "L2"),)))
    try:
        vectors, data = rows(300)
        index.upsert("arcface", data)
        hits = index.search("arcface", vectors[0], 5, 'owner == "ann"')
        # L2 for ArcFace; 300 rows are flushed into an IVF_SQ8 segment, whose 8-bit codes
        # leave a small distance between a vector and itself.
        assert hits[0].photo_id == "p0" and hits[0].raw("L2") < 0.02
        assert all(int(h.photo_id[1:]) % 2 == 0 for h in hits)  # the owner filter
        assert index.client.describe_index("faces_arcface", "vector")["index_type"] == "IVF_SQ8"
        assert any("has no IVF_PQ index" in m for m in messages)
    finally:
        logger.remove(sink)
        index.close()


def test_search_many_answers_each_query_as_its_own_search(tmp_path):
    """Query expansion searches from several seeds in one request (facesearch/services/search.py)."""
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), IndexConfig(index_type="HNSW"))
    try:
        vectors, data = rows(300)
        index.upsert("facenet512", data)
        queries = [vectors[0], vectors[10], vectors[42]]
        many = index.search_many("facenet512", queries, 7, 'owner == "ann"')
        assert [[h.face_id for h in hits] for hits in many] == [
            [h.face_id for h in index.search("facenet512", q, 7, 'owner == "ann"')] for q in queries]
        assert [hits[0].photo_id for hits in many] == ["p0", "p10", "p42"]
        assert index.search_many("facenet512", [], 7) == []
    finally:
        index.close()


def test_lite_is_flushed_as_rows_arrive_and_once_writes_pause(tmp_path):
    """Rows Milvus Lite has not flushed are searched one by one in Python (416 ms a search at
    10,000 of them, 19 ms flushed): the index flushes every LITE_FLUSH_ROWS rows written, and
    what is left once writes pause."""
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), IndexConfig(index_type="HNSW"))
    try:
        vectors, data = rows(LITE_FLUSH_ROWS + 40)
        index.upsert("facenet512", data[:1])
        flushed: list[str] = []
        flush = index.client.flush
        index.client.flush = lambda name, **kw: (flushed.append(name), flush(name, **kw))[1]
        for row in data[1:]:  # one face at a time, as the projection writes them
            index.upsert("facenet512", [row])
        assert flushed == ["faces_facenet512"]
        assert index.flush_idle(idle_s=60.0) == []  # written just now: not idle yet
        assert index.flush_idle(idle_s=0.0) == ["faces_facenet512"] and len(flushed) == 2
        assert index.flush_idle(idle_s=0.0) == []  # nothing left to flush
        assert index.search("facenet512", vectors[-1], 1)[0].photo_id == f"p{len(data) - 1}"
        assert index.count("facenet512") == len(data)
    finally:
        index.close()


def test_a_server_index_never_flushes_by_hand():
    index = FaceVectorIndex("http://127.0.0.1:1", IndexConfig())
    index._written("faces_facenet512", 10 * LITE_FLUSH_ROWS)  # no client needed: nothing to do
    assert index.flush_idle(idle_s=0.0) == []


@pytest.mark.skipif(server_binary() is None, reason="milvus-server (PyPI milvus) not installed")
def test_ivf_pq_on_a_milvus_server(tmp_path):
    with MilvusServer(tmp_path / "milvus") as server:
        index = FaceVectorIndex(server.uri, IndexConfig(index_type="IVF_PQ", ivf_nlist=32, ivf_nprobe=32, pq_m=16))
        try:
            vectors, data = rows(3000)
            index.upsert("facenet512", data)
            index.client.flush("faces_facenet512")
            info = index.client.describe_index("faces_facenet512", "vector")
            assert (info["index_type"], info["metric_type"]) == ("IVF_PQ", "COSINE")
            found = 0
            for i in range(0, 200, 2):  # ann's faces find themselves
                hits = index.search("facenet512", vectors[i], 10, 'owner == "ann"')
                assert all(int(h.photo_id[1:]) % 2 == 0 for h in hits)
                found += any(h.photo_id == f"p{i}" for h in hits)
            assert found >= 90
        finally:
            index.close()
