"""The Milvus projection's index settings: IVF_PQ on a real Milvus server (PyPI `milvus`),
and the fallback with a warning on Milvus Lite, which has no IVF_PQ."""

from __future__ import annotations

import numpy as np
import pytest
from loguru import logger

from facesearch.milvus_server import MilvusServer, server_binary
from projections.vectors import FaceVectorIndex, IndexConfig


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
    index = FaceVectorIndex(str(tmp_path / "milvus.db"), IndexConfig(index_type="IVF_PQ", ivf_nlist=16, ivf_nprobe=16))
    try:
        vectors, data = rows(300)
        index.upsert("arcface", data)
        hits = index.search("arcface", vectors[0], 5, 'owner == "ann"')
        assert hits[0].photo_id == "p0" and hits[0].raw("L2") < 1e-3  # L2 for ArcFace
        assert all(int(h.photo_id[1:]) % 2 == 0 for h in hits)  # the owner filter
        assert index.client.describe_index("faces_arcface", "vector")["index_type"] == "IVF_SQ8"
        assert any("has no IVF_PQ index" in m for m in messages)
    finally:
        logger.remove(sink)
        index.close()


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
