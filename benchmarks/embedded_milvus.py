"""The embedded Milvus server's lifecycle: start, stop, restart, and the first query after
a restart, with the settings `facesearch/infra/milvus_server.py` passes (SERVER_ENVIRONMENT)
and with Milvus 2.3.5's own defaults, one after the other in one run.

    python -m benchmarks.embedded_milvus [--rows 1000]

Each round starts a server on a new data folder, writes --rows face rows, stops it, starts
it again on the same folder and times the first count and search there (what a user's first
search after a restart waits for). Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from benchmarks._common import machine, print_json, print_table
from facesearch.infra import milvus_server
from projections.vectors import FaceVectorIndex, IndexConfig

MODEL = "facenet512"


def face_rows(count: int) -> list[dict]:
    vectors = np.random.default_rng(3).normal(size=(count, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        {"id": f"p{i}:0", "photo_id": f"p{i}", "owner": "bench", "source": "local", "import_id": "",
         "imported_at": 0, "vector": v.tolist()}
        for i, v in enumerate(vectors)
    ]


def timed(action) -> tuple[float, object]:
    began = time.monotonic()
    result = action()
    return time.monotonic() - began, result


def one_round(work: Path, rows: list[dict]) -> dict:
    server = milvus_server.SharedMilvusServer(work)
    start_s, _ = timed(server.uri)
    index = FaceVectorIndex(str(server.data_dir), IndexConfig(), lite=False, server=server)
    for at in range(0, len(rows), 500):
        index.upsert(MODEL, rows[at : at + 500])
    index.close()
    stop_s, _ = timed(server.release)

    again = milvus_server.SharedMilvusServer(work)
    restart_s, _ = timed(again.uri)
    index = FaceVectorIndex(str(again.data_dir), IndexConfig(), lite=False, server=again)
    count_s, counted = timed(lambda: index.count(MODEL))
    search_s, hits = timed(lambda: index.search(MODEL, np.asarray(rows[0]["vector"], np.float32), 10, 'owner == "bench"'))
    index.close()
    again.release()
    return {
        "start_s": round(start_s, 1), "stop_s": round(stop_s, 1), "restart_s": round(restart_s, 1),
        "first_count_s": round(count_s, 1), "then_search_s": round(search_s, 2),
        "rows_after_restart": counted, "nearest_is_itself": bool(hits) and hits[0].face_id == rows[0]["id"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args(argv)
    rows = face_rows(args.rows)
    results = {}
    for name, environment in (("facesearch settings", milvus_server.SERVER_ENVIRONMENT), ("Milvus defaults", {})):
        work = Path(tempfile.mkdtemp(prefix="fs-milvus-"))
        try:
            with mock.patch.object(milvus_server, "SERVER_ENVIRONMENT", environment):
                results[name] = one_round(work, rows)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(name, results[name], flush=True)
    print(f"{machine()}; milvus 2.3.5 (PyPI), {args.rows} rows of 512-d; settings {milvus_server.SERVER_ENVIRONMENT}")
    columns = list(next(iter(results.values())))
    print_table(["server", *columns], [[name, *r.values()] for name, r in results.items()])
    out = {"benchmark": "embedded_milvus", "rows": args.rows, "results": results, "machine": machine()}
    print_json(out)
    return out


if __name__ == "__main__":
    main()
