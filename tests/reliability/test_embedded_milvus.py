"""The embedded profile's Milvus server (facesearch/infra/milvus_server.py): one per var_dir,
started by the first process that needs it and joined by the others; a long-running process
does not lean on a one-off command's server; the owner's release frees it for the next."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facesearch.infra.milvus_server import ADVERTISEMENT, SharedMilvusServer, server_binary
from projections.vectors import FaceVectorIndex, IndexConfig

MODEL = "facenet512"


def rows(count: int) -> list[dict]:
    vectors = np.random.default_rng(7).normal(size=(count, 512)).astype(np.float32)
    return [
        {"id": f"p{i}:0", "photo_id": f"p{i}", "owner": "ann", "source": "local", "import_id": "",
         "imported_at": 0, "vector": v.tolist()}
        for i, v in enumerate(vectors)
    ]


def test_one_server_per_var_dir_joined_by_the_others(tmp_path):
    assert server_binary() is not None, "the milvus-server extra is installed by scripts/install.sh"
    owner = SharedMilvusServer(tmp_path)
    try:
        uri = owner.uri()
        assert owner.owned
        advertised = json.loads((tmp_path / ADVERTISEMENT).read_text())
        assert advertised["uri"] == uri and advertised["service"] is False

        one_off = SharedMilvusServer(tmp_path)
        assert one_off.uri() == uri and not one_off.owned  # joined, not a second server

        written = FaceVectorIndex(str(owner.data_dir), IndexConfig(consistency="Strong"), lite=False, server=owner)
        written.upsert(MODEL, rows(20))
        reader = FaceVectorIndex(str(one_off.data_dir), IndexConfig(consistency="Strong"), lite=False, server=one_off)
        assert reader.count(MODEL) == 20
        reader.shutdown()  # a joiner's shutdown leaves the owner's server running
        assert written.count(MODEL) == 20

        service = SharedMilvusServer(tmp_path, patience_s=2)
        service.service = True  # `facesearch up` waits for a one-off command's server to end
        with pytest.raises(RuntimeError, match="held by process"):
            service.uri()
        written.close()
    finally:
        owner.release()
    assert not (tmp_path / ADVERTISEMENT).exists()

    again = SharedMilvusServer(tmp_path)  # the lock is free: the next process owns a server of its own
    try:
        index = FaceVectorIndex(str(again.data_dir), IndexConfig(consistency="Strong"), lite=False, server=again)
        assert index.count(MODEL) == 20  # what the first server stored survived its stop
        assert again.owned
        index.shutdown()
        assert not again.owned
    finally:
        again.release()
