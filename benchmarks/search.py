"""Top-10 search latency and recall@10 against exact search, for Milvus Lite and a Milvus
server (the PyPI `milvus` package), HNSW and IVF_PQ.

    python -m benchmarks.search --faces 100000 [--faces 1000000] [--queries 200]
        [--backends lite,server] [--indexes HNSW,IVF_PQ] [--model facenet512]
        [--writes bulk,projection,unflushed]

The collection holds the real LFW face embeddings of clusters.csv (cached after the first
run) plus synthetic vectors drawn from a Gaussian fitted to them (same mean and per-dimension
spread, L2-normalised), up to --faces. Queries are real faces; each search filters by owner
(one owner owns everything, as a single-user archive does). Milvus Lite has no IVF_PQ: that
row runs IVF_SQ8 and says so. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import machine, print_json, print_table
from benchmarks._faces import cluster_embeddings
from facesearch.settings import get_settings
from projections import vectors as vectors_module
from projections.vectors import FaceVectorIndex, IndexConfig


def corpus(real: np.ndarray, total: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_synthetic = max(0, total - len(real))
    mean, std = real.mean(0), real.std(0)
    synthetic = rng.normal(mean, std, size=(n_synthetic, real.shape[1])).astype(np.float32)
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
    return np.concatenate([real[:total], synthetic])


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    out = []
    for start in range(0, len(queries), 64):
        q = queries[start : start + 64]
        scores = q @ vectors.T  # unit vectors: cosine order == L2 order
        out.append(np.argsort(-scores, axis=1)[:, :k])
    return np.concatenate(out)


WRITES = ("bulk", "projection", "unflushed")
PROJECTION_ROWS = 4  # rows a write, as the vectors projection writes a photo's faces


def load(index: FaceVectorIndex, model: str, vectors: np.ndarray, writes: str = "bulk") -> float:
    """Fills the collection: `bulk` inserts 5,000 rows at a time and waits for the index;
    `projection` upserts a few rows at a time through FaceVectorIndex, as the product's
    vectors projection does (with its Milvus Lite flushing, then the idle flush);
    `unflushed` the same with that flushing turned off (how the product wrote before it)."""
    if writes != "bulk":
        return load_as_projection(index, model, vectors, flush=writes == "projection")
    start = time.perf_counter()
    for s in range(0, len(vectors), 5000):
        rows = [
            {"id": f"f{i}:0", "photo_id": f"p{i}", "owner": "bench", "source": "local", "import_id": "",
             "imported_at": 0, "vector": vectors[i].tolist()}
            for i in range(s, min(s + 5000, len(vectors)))
        ]
        name = index.ensure_collection(model, vectors.shape[1])
        index.client.insert(name, rows)
    index.client.flush(name)
    # Wait for the index to cover every row, then make sure it is loaded.
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        info = index.client.describe_index(name, "vector")
        if info.get("indexed_rows", 0) >= len(vectors) and info.get("pending_index_rows", 0) == 0:
            break
        time.sleep(2)
    index.client.release_collection(name)
    index.client.load_collection(name)
    return time.perf_counter() - start


def load_as_projection(index: FaceVectorIndex, model: str, vectors: np.ndarray, flush: bool) -> float:
    start = time.perf_counter()
    saved = vectors_module.LITE_FLUSH_ROWS
    vectors_module.LITE_FLUSH_ROWS = saved if flush else 2**62
    try:
        for s in range(0, len(vectors), PROJECTION_ROWS):
            index.upsert(model, [
                {"id": f"f{i}:0", "photo_id": f"p{i}", "owner": "bench", "source": "local", "import_id": "",
                 "imported_at": 0, "vector": vectors[i].tolist()}
                for i in range(s, min(s + PROJECTION_ROWS, len(vectors)))
            ])
        if flush:
            index.flush_idle(idle_s=0.0)
    finally:
        vectors_module.LITE_FLUSH_ROWS = saved
    return time.perf_counter() - start


def measure(index: FaceVectorIndex, model: str, queries: np.ndarray, truth: np.ndarray) -> dict:
    latencies, recalls = [], []
    for i in range(3):  # warm-up
        index.search(model, queries[i], 10, 'owner == "bench"')
    for q, expected in zip(queries, truth):
        start = time.perf_counter()
        hits = index.search(model, q, 10, 'owner == "bench"')
        latencies.append((time.perf_counter() - start) * 1000)
        found = {int(h.photo_id[1:]) for h in hits}
        recalls.append(len(found & set(expected.tolist())) / len(expected))
    lat = np.array(latencies)
    return {
        "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2), "recall_at_10": round(float(np.mean(recalls)), 4),
    }


def main(argv: list[str] | None = None) -> dict:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, action="append", help="collection sizes (repeatable); default 100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="lite,server")
    parser.add_argument("--indexes", default="HNSW,IVF_PQ")
    parser.add_argument("--writes", default="bulk", help=f"how rows are written, comma-separated: {', '.join(WRITES)}")
    parser.add_argument("--model", default=settings.embedder)
    parser.add_argument("--clusters", type=Path, default=settings.data_dir / "lfw" / "clusters.csv")
    parser.add_argument("--root", type=Path, default=settings.data_dir / "lfw")
    args = parser.parse_args(argv)
    sizes = args.faces or [100_000]

    real, _, _ = cluster_embeddings(args.clusters, args.root, args.model)
    rng = np.random.default_rng(1)
    queries = real[rng.choice(len(real), size=min(args.queries, len(real)), replace=False)]
    # Queries are perturbed copies of indexed faces: like another photo of the same person.
    queries = queries + rng.normal(0, 0.02, queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    rows, results = [], []
    work = Path(tempfile.mkdtemp(prefix="fs-search-"))
    server = None
    try:
        for size in sizes:
            vectors = corpus(real, size)
            truth = exact_top(vectors, queries, 10, "cosine")
            for backend in args.backends.split(","):
                uri = str(work / f"lite-{size}.db")
                if backend == "server":
                    from facesearch.infra.milvus_server import MilvusServer

                    server = server or MilvusServer(work / "server").start()
                    uri = server.uri
                for kind in args.indexes.split(","):
                    for writes in args.writes.split(","):
                        if writes not in WRITES:
                            parser.error(f"--writes: {writes!r} is not one of {', '.join(WRITES)}")
                        config = IndexConfig(index_type=kind, ivf_nlist=1024, ivf_nprobe=32, pq_m=64, hnsw_ef=64)
                        index = FaceVectorIndex(uri, config)
                        index.drop_all()
                        load_s = load(index, args.model, vectors, writes)
                        m = measure(index, args.model, queries, truth)
                        ran = index.index_type
                        index.drop_all()
                        index.close()
                        row = {"faces": size, "backend": backend, "index": ran if ran == kind else f"{ran} (asked {kind})",
                               "writes": writes, "load_index_s": round(load_s, 1), **m}
                        results.append(row)
                        rows.append(list(row.values()))
                        print(row, flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{machine()}; model {args.model} ({real.shape[1]}-d), {len(real)} real LFW faces + synthetic; "
          f"{len(queries)} queries, top-10, owner filter; HNSW M=16 efConstruction=200 ef=64; IVF nlist=1024 nprobe=32, PQ m=64")
    print_table(["faces", "backend", "index", "writes", "load+index s", "p50 ms", "p95 ms", "p99 ms", "recall@10"], rows)
    out = {"benchmark": "search", "model": args.model, "queries": len(queries), "results": results, "machine": machine()}
    print_json(out)
    return out


if __name__ == "__main__":
    main()
