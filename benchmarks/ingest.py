"""End-to-end ingest throughput: import → event store → relay → tansu → workers (real
models) → events → projections (photos, faces, Milvus).

    python -m benchmarks.ingest --photos 1000 [--batch 8] [--milvus server|lite]

Photos come from the evaluation data (DATA_DIR, default ../shared/data): the WIDER FACE
photos (crowds, ~12 faces each), the sample photos, LFW portraits, and 2×2 collages of LFW
portraits (4 faces), mixed to about 3 faces a photo. Prints a table of where the time
went (worker stages are summed over photos; the total is wall time) and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import random
import shutil
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from PIL import Image

from benchmarks._common import machine, print_json, print_table
from facesearch.settings import Settings, get_settings


def build_album(data_dir: Path, folder: Path, count: int) -> int:
    """Writes `count` distinct photos into `folder`; returns how many are collages.

    The photo store keeps one photo per content hash, so every collage must differ: the first
    ones tile the LFW portraits not used as singles, in order; once those run out, each takes
    4 portraits drawn at random (seeded by its number)."""
    folder.mkdir(parents=True, exist_ok=True)
    picked: list[Path] = sorted((data_dir / "wider" / "images").rglob("*.jpg"))
    picked += [p for p in sorted((data_dir / "photos").rglob("*")) if p.suffix in (".jpg", ".png") and "Tom_Hanks" not in p.name]
    with open(data_dir / "lfw" / "clusters.csv", newline="") as f:
        lfw = [data_dir / "lfw" / row["path"] for row in csv.DictReader(f)]
    picked = picked[:count]
    rest = count - len(picked)
    singles, collages = rest // 2, rest - rest // 2
    for i, path in enumerate(picked + lfw[:singles]):
        shutil.copy(path, folder / f"{i:05d}{path.suffix}")
    fresh = lfw[singles:]
    for j in range(collages):
        # Wrapping around `fresh + lfw` (as this did before) repeats a collage every
        # len(lfw) / 4 collages: 127 duplicates at 1,000 photos, which the import stores once.
        tiles = fresh[4 * j : 4 * j + 4] if 4 * j + 4 <= len(fresh) else random.Random(j).sample(lfw, 4)
        group = Image.new("RGB", (500, 500))
        for k, path in enumerate(tiles):
            tile = Image.open(path).convert("RGB")
            group.paste(tile, (250 * (k % 2), 250 * (k // 2)))
        buffer = io.BytesIO()
        group.save(buffer, "JPEG", quality=90)
        (folder / f"c{j:05d}.jpg").write_bytes(buffer.getvalue())
    return collages


async def run(args: argparse.Namespace) -> dict:
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    from facesearch.services.imports import import_local
    from facesearch.system import System
    from projections.tables import faces, photos

    base = get_settings()
    work = Path(tempfile.mkdtemp(prefix="fs-ingest-"))
    try:
        collages = build_album(args.data_dir, work / "album", args.photos)
        settings = Settings(
            var_dir=work / "var", models_dir=base.models_dir, worker_batch_size=args.batch,
            worker_max_wait_ms=args.max_wait_ms, worker_use_gpu=args.gpu, worker_threads=args.threads,
            redelivery_after_seconds=args.redelivery_after, milvus_embedded=args.milvus,
        )
        system = System(settings)
        project_s = [0.0]
        handle = system.runner.handle_batch

        async def timed_handle(*a, **k):  # time spent applying events to the read models
            t = time.perf_counter()
            try:
                return await handle(*a, **k)
            finally:
                project_s[0] += time.perf_counter() - t

        system.runner.handle_batch = timed_handle
        await system.start(workers=True)  # one in-process worker (2 cores: more would only compete)
        start = time.perf_counter()
        result = await asyncio.to_thread(import_local, system.app, settings, str(work / "album"), owner="bench", operator=True)
        import_s = time.perf_counter() - start
        # "stored" counts duplicates too; the read model holds one photo per distinct content.
        stored = len({hashlib.sha256(f.read_bytes()).digest() for f in (work / "album").iterdir()})
        if stored != result.counts["stored"]:
            logger.warning("{} photos stored, {} distinct", result.counts["stored"], stored)
        deadline = time.monotonic() + args.timeout
        while True:
            async with system.engine.connect() as conn:
                done = (await conn.execute(sa.select(sa.func.count()).where(photos.c.status != "imported"))).scalar()
            if done >= stored:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {stored} photos analysed after {args.timeout:.0f} s")
            await asyncio.sleep(0.25)
        analysed_s = time.perf_counter() - start
        await system.wait_until_caught_up(600)
        total_s = time.perf_counter() - start
        async with system.engine.connect() as conn:
            n_faces = (await conn.execute(sa.select(sa.func.count()).select_from(faces))).scalar()
            no_faces = (await conn.execute(sa.select(sa.func.count()).where(photos.c.status == "no_faces"))).scalar()
        vectors = await asyncio.to_thread(system.vectors.count, settings.embedder, strong=True)
        stages = {k: 0.0 for k in ("decode", "detect", "align", "embed", "record")}
        idle = 0.0
        for worker in system.workers:
            for k, v in worker.stats.seconds.items():
                stages[k] += v
            idle += worker.stats.idle_model_s
        await system.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ["import (event store)", round(import_s, 2)],
        ["decode (worker threads)", round(stages["decode"], 2)],
        ["detect", round(stages["detect"], 2)],
        ["align", round(stages["align"], 2)],
        ["embed", round(stages["embed"], 2)],
        ["events (record_faces)", round(stages["record"], 2)],
        ["projections (photos, imports, faces, Milvus; summed over concurrent consumers)", round(project_s[0], 2)],
        ["model waiting for decode", round(idle, 2)],
        ["wall: all photos analysed", round(analysed_s, 2)],
        ["wall: read models caught up", round(total_s, 2)],
    ]
    print(f"{stored} photos ({collages} collages of 4 LFW portraits), {n_faces} faces, {no_faces} without faces; "
          f"1 worker, batch {args.batch}; embedded Milvus: {args.milvus}; {machine()}")
    print_table(["stage", "seconds"], rows)
    out = {
        "benchmark": "ingest", "photos": stored, "faces": n_faces, "vectors": vectors, "no_faces": no_faces,
        "photos_per_s": round(stored / total_s, 2), "faces_per_s": round(n_faces / total_s, 2),
        "total_s": round(total_s, 2), "analysed_s": round(analysed_s, 2), "import_s": round(import_s, 2),
        "stages_s": {k: round(v, 2) for k, v in stages.items()}, "projections_s": round(project_s[0], 2),
        "model_idle_s": round(idle, 2), "batch": args.batch, "gpu": args.gpu, "milvus": args.milvus, "machine": machine(),
    }
    print_json(out)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=int, default=200)
    # The relay republishes to a consumer that made no progress on a partition for this long;
    # under a full-speed ingest on 2 cores the default 5 s misfires (see docs/benchmarks.md).
    parser.add_argument("--redelivery-after", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per worker")
    parser.add_argument("--gpu", action="store_true", help="let the worker use a GPU provider (benchmarks.gpu)")
    parser.add_argument("--data-dir", type=Path, default=get_settings().data_dir)
    parser.add_argument("--milvus", choices=("server", "lite"), default=get_settings().milvus_embedded,
                        help="the embedded vector store (default: the quick start's)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up when analysis takes longer (s)")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
