"""Events per second through append → relay → broker → projections, on SQLite and on
PostgreSQL, and the per-photo overhead of the event pipeline.

    python -m benchmarks.events [--photos 500] [--pg postgresql://postgres@127.0.0.1:5432/test]

Photos are tiny generated PNGs, stored through the application service (the same call an
import makes), so the numbers are the event machinery's, not decoding's or the models'.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from PIL import Image

from facesearch.settings import Settings
from facesearch.system import System


def tiny_png(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (index % 256, index // 256 % 256, 7)).save(buffer, "PNG")
    return buffer.getvalue()


async def measure(settings: Settings, photos: int) -> dict[str, float]:
    system = System(settings)
    await system.start(workers=False)
    try:
        payloads = [tiny_png(i) for i in range(photos)]
        started = time.perf_counter()
        for i, data in enumerate(payloads):
            await asyncio.to_thread(system.app.store_photo, data, owner="bench", source="upload", source_ref=f"upload:{i}")
        appended = time.perf_counter()
        await system.wait_until_caught_up(600)
        done = time.perf_counter()
        events = await asyncio.to_thread(lambda: system.app.recorder.max_notification_id() or 0)
    finally:
        await system.stop()
    return {
        "photos": photos,
        "events": events,
        "append_s": round(appended - started, 3),
        "end_to_end_s": round(done - started, 3),
        "events_per_s": round(events / (done - started), 1),
        "append_events_per_s": round(events / (appended - started), 1),
        "ms_per_photo": round(1000 * (done - started) / photos, 2),
    }


def postgres_settings(admin_dsn: str, var_dir: Path) -> tuple[Settings, str]:
    name = f"fs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    return Settings(var_dir=var_dir, event_store_dsn=dsn, read_model_url=dsn), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test", help="admin DSN ('' to skip)")
    args = parser.parse_args()

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows["sqlite"] = asyncio.run(measure(Settings(var_dir=Path(tmp) / "sqlite"), args.photos))
        if args.pg:
            settings, name = postgres_settings(args.pg, Path(tmp) / "pg")
            try:
                rows["postgresql"] = asyncio.run(measure(settings, args.photos))
            finally:
                with psycopg.connect(args.pg, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    columns = ["photos", "events", "append_s", "end_to_end_s", "events_per_s", "append_events_per_s", "ms_per_photo"]
    print("| store | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for store, row in rows.items():
        print(f"| {store} | " + " | ".join(str(row[c]) for c in columns) + " |")
    print(json.dumps({"benchmark": "events", **rows}))


if __name__ == "__main__":
    main()
