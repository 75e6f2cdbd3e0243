"""Soak: the specification's load test on the real system, as a user starts it.

    python -m benchmarks.soak --photos 10000 --clients 20

Starts `facesearch up` (embedded default: SQLite, Milvus Lite, tansu) as a subprocess on a
free 127.0.0.1 port with a var dir of its own, creates the first account, and feeds it
`--photos` distinct photos made from the LFW portraits (beyond the 6,052 originals, mirrored,
cropped and re-encoded variants, written to a temporary folder): most are uploaded through
`POST /api/photos`, a share (`--folder-share`) goes in through a folder import (the
`startImport` mutation on the drop folder), and `--bad-uploads` corrupt files are uploaded too
(they must come back `rejected`: a file the user got wrong, not an error of the system).
Meanwhile `--clients` clients search by example in a loop, as the web client does
(`POST /api/search/examples`, then the `searchByExample` query, with LFW portraits), a probe
asks `/health` every 0.5 s, and the server's RSS (its process and every child: tansu, Milvus
Lite) is sampled every few seconds.

When every photo is analysed (or `--minutes-limit` runs out) it checks exactly once against
the event store (each photo imported once, detected once, each face embedded once), the read
model (one row a photo, one a face) and Milvus (the face ids, each once), then prints a table
(and a few RSS samples) and writes the whole report as JSON to `--out`. It talks to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image, ImageOps

from benchmarks._common import machine, print_table
from facesearch.settings import Settings, get_settings

PASSWORD = "soak-Test-pass-5219"
SEARCH = """query($id: String!) { searchByExample(input: {exampleId: $id, threshold: 85}) {
  candidates photos { photoId similarity } } }"""
START_IMPORT = 'mutation($target: String!) { startImport(input: {source: LOCAL, target: $target}) }'
HEALTH_EVERY_S = 0.5
RSS_EVERY_S = 5.0
HEALTH_WINDOW_S = 60.0  # "/health p99 under 500 ms throughout": its p99 per minute
RSS_SERIES_POINTS = 60  # the JSON keeps this many samples, evenly spread
UPLOAD_BATCH = 5  # files a request, as the web client's drop zone sends a few at once
UPLOADERS = 2
REQUEST_TIMEOUT_S = 120.0
# Below uvicorn's keep-alive (5 s): reusing a connection the server is closing at that very
# moment fails the request ("Server disconnected"), a race of the client's, not a fault.
CLIENT_KEEPALIVE_S = 2.0
# A corrupt JPEG: the signature passes the cheap sniff, decoding fails, so the system
# records it as PhotoRejected.
BAD_JPEG = b"\xff\xd8\xff\xe0" + b"soak: not really a jpeg " * 40


# ----------------------------------------------------------------------------- photos

def lfw_images(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "lfw" / "images").rglob("*.jpg"))


def variant(image: Image.Image, k: int) -> Image.Image:
    """The k-th variant (k ≥ 1) of a portrait: mirrored and/or cropped by a few pixels."""
    if k % 2 == 1:
        image = ImageOps.mirror(image)
    crop = 2 * ((k + 1) // 2)  # 2, 2, 4, 4, 6, ... pixels off each side
    w, h = image.size
    return image.crop((crop, crop, w - crop, h - crop))


def build_photos(sources: list[Path], folder: Path, count: int) -> list[Path]:
    """Writes `count` photos with distinct bytes into `folder`: the portraits as they are,
    then their variants (re-encoded JPEGs), round after round."""
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    out: list[Path] = []
    i = 0
    while len(out) < count:
        source, k = sources[i % len(sources)], i // len(sources)
        i += 1
        if k == 0:
            data = source.read_bytes()
        else:
            buffer = io.BytesIO()
            with Image.open(source) as image:
                variant(image.convert("RGB"), k).save(buffer, "JPEG", quality=92)
            data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:  # LFW holds a few byte-identical files; the store keeps one
            continue
        seen.add(digest)
        path = folder / f"{len(out):05d}.jpg"
        path.write_bytes(data)
        out.append(path)
    return out


# ----------------------------------------------------------------------------- measuring

@dataclass
class Meter:
    """Latencies (s) of one kind of request, and its errors by kind."""

    seconds: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    samples: dict = field(default_factory=dict)  # kind -> (seconds into the run, message) of its first error

    def failed(self, kind: str, message: str = "", at: float = 0.0) -> None:
        self.errors[kind] += 1
        self.samples.setdefault(kind, [round(at, 1), message[:300]])

    def summary(self) -> dict:
        return {"count": len(self.seconds), **percentiles(self.seconds), "errors": dict(self.errors),
                "first_errors": self.samples}


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": round(1000 * ordered[-1], 1)}


def error_kind(error: Exception) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"timeout:{type(error).__name__}"
    if isinstance(error, httpx.TransportError):
        return f"connection:{type(error).__name__}"
    return type(error).__name__


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` and all its descendants, from /proc (MiB)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return round(total_kb / 1024, 1)


# ----------------------------------------------------------------------------- the load

class Soak:
    def __init__(self, args: argparse.Namespace, url: str, token: str, pid: int, server_alive: Callable[[], bool]) -> None:
        self.args = args
        self.server_alive = server_alive
        self.http = httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, headers={"Authorization": f"Bearer {token}"},
                                      limits=httpx.Limits(max_connections=args.clients + UPLOADERS + 4,
                                                          keepalive_expiry=CLIENT_KEEPALIVE_S))
        # /health has its own connection: the probe must never queue behind the load.
        self.probe = httpx.AsyncClient(base_url=url, timeout=10, limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_S))
        self.pid = pid
        self.search, self.upload, self.health = Meter(), Meter(), Meter()
        self.files: Counter = Counter()  # upload answers per file: new, duplicate, rejected, refused
        self.examples_without_face = 0
        self.other_errors: Counter = Counter()
        self.rss: list[tuple[float, float]] = []
        self.health_at: list[float] = []  # when each /health answer came (s since the start)
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()
        self.wall_s = 0.0
        self.feeding_done = asyncio.Event()
        self.stop = asyncio.Event()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 1)

    async def gql(self, query: str, **variables) -> dict:
        r = await self.http.post("/graphql", json={"query": query, "variables": variables})
        if r.status_code != 200:
            raise RuntimeError(f"http_{r.status_code}")
        return r.json()

    async def probe_health(self) -> None:
        while not self.stop.is_set():
            t = time.perf_counter()
            try:
                r = await self.probe.get("/health")
                self.health.seconds.append(time.perf_counter() - t)
                self.health_at.append(time.monotonic() - self.started)
                if r.status_code == 200:
                    self.counts = r.json()["photos"]
                else:
                    self.health.failed(f"http_{r.status_code}", r.text, self.elapsed())
            except httpx.HTTPError as error:
                self.health.failed(error_kind(error), repr(error), self.elapsed())
            await asyncio.sleep(max(0.0, HEALTH_EVERY_S - (time.perf_counter() - t)))

    async def sample_rss(self) -> None:
        while not self.stop.is_set():
            self.rss.append((self.elapsed(), tree_rss_mb(self.pid)))
            await asyncio.sleep(RSS_EVERY_S)

    async def search_loop(self, examples: list[Path], seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            example = rng.choice(examples)
            t = time.perf_counter()
            try:
                r = await self.http.post("/api/search/examples",
                                         files={"file": (example.name, example.read_bytes(), "image/jpeg")})
                if r.status_code == 422 and "no face" in r.text:
                    self.examples_without_face += 1  # the example's fault, not the system's
                elif r.status_code != 201:
                    self.search.failed(f"example_http_{r.status_code}", r.text, self.elapsed())
                else:
                    body = await self.gql(SEARCH, id=r.json()["example_id"])
                    if body.get("errors"):
                        for e in body["errors"]:
                            code = e.get("extensions", {}).get("code", "UNKNOWN")
                            self.search.failed(f"graphql_{code}", e.get("message", ""), self.elapsed())
                    else:
                        self.search.seconds.append(time.perf_counter() - t)
            except (httpx.HTTPError, RuntimeError) as error:
                kind = str(error) if isinstance(error, RuntimeError) else error_kind(error)
                self.search.failed(kind, repr(error), self.elapsed())
            if self.args.search_pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.args.search_pause)

    async def upload_loop(self, queue: asyncio.Queue) -> None:
        while not self.stop.is_set():
            try:
                batch: list[Path] = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            files = [("files", (p.name, BAD_JPEG if p.name.startswith("bad") else p.read_bytes(), "image/jpeg"))
                     for p in batch]
            t = time.perf_counter()
            try:
                r = await self.http.post("/api/photos", files=files)
                self.upload.seconds.append(time.perf_counter() - t)
                if r.status_code in (201, 422):
                    for result in r.json()["results"]:
                        self.files[result["status"]] += 1
                else:
                    self.upload.failed(f"http_{r.status_code}", r.text, self.elapsed())
            except httpx.HTTPError as error:
                self.upload.failed(error_kind(error), repr(error), self.elapsed())

    async def feed(self, uploads: list[Path], folder: Path | None, folder_count: int) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        for i in range(0, len(uploads), UPLOAD_BATCH):
            queue.put_nowait(uploads[i : i + UPLOAD_BATCH])
        tasks = [asyncio.create_task(self.upload_loop(queue)) for _ in range(UPLOADERS)]
        if folder is not None and folder_count:
            try:
                body = await self.gql(START_IMPORT, target=str(folder))
                if body.get("errors"):
                    self.other_errors[f"import_{body['errors'][0].get('extensions', {}).get('code', 'UNKNOWN')}"] += 1
            except (httpx.HTTPError, RuntimeError) as error:
                self.other_errors[f"import_{error_kind(error)}"] += 1
        await asyncio.gather(*tasks)
        self.feeding_done.set()

    def health_windows(self) -> list[dict]:
        """/health percentiles per HEALTH_WINDOW_S of the run."""
        windows: dict[int, list[float]] = {}
        for at, seconds in zip(self.health_at, self.health.seconds):
            windows.setdefault(int(at // HEALTH_WINDOW_S), []).append(seconds)
        return [{"t_s": k * HEALTH_WINDOW_S, **percentiles(v)} for k, v in sorted(windows.items())]

    def settled(self, expected: int) -> bool:
        done = self.counts.get("analysed", 0) + self.counts.get("no_faces", 0)
        return self.counts.get("imported", 0) == 0 and done >= expected


# ----------------------------------------------------------------------------- exactly once

def audit(settings: Settings) -> dict:
    """Exactly-once, counted from the event store, the read model and Milvus."""
    import sqlalchemy as sa

    from commands.envelopes import iter_envelopes
    from facesearch.system import make_app, make_vector_index
    from projections.tables import faces, photos

    app = make_app(settings)
    imported: Counter = Counter()
    rejected: Counter = Counter()
    detected: Counter = Counter()
    expected_faces: set[str] = set()
    embedded: Counter = Counter()
    hashes: dict[str, str] = {}
    dimensions: dict[str, int] = {}
    for e in iter_envelopes(app):
        if e.family != "photos":
            continue
        pid = e.aggregate_id
        if e.event_type == "PhotoImported":
            imported[pid] += 1
            hashes[pid] = e.payload["content_hash"]
        elif e.event_type == "PhotoRejected":
            rejected[pid] += 1
        elif e.event_type in ("FacesDetected", "NoFacesFound"):
            detected[pid] += 1
            if e.event_type == "FacesDetected":
                expected_faces |= {f"{pid}:{i}" for i in range(len(e.payload["faces"]))}
        elif e.event_type == "FaceEmbedded":
            embedded[(f"{pid}:{e.payload['face_index']}", e.payload["model"])] += 1
            dimensions[e.payload["model"]] = e.payload["dimension"]

    engine = sa.create_engine(settings.resolved_read_model_url().replace("+aiosqlite", ""))
    with engine.connect() as conn:
        photo_rows = Counter(r.id for r in conn.execute(sa.select(photos.c.id, photos.c.status))
                             if r.status != "rejected")
        waiting = conn.execute(sa.select(sa.func.count()).where(photos.c.status == "imported")).scalar()
        face_rows = Counter(r.id for r in conn.execute(sa.select(faces.c.id)))
    engine.dispose()

    index = make_vector_index(settings)
    milvus: dict[str, Counter] = {}
    try:
        for model in settings.embedders:
            ids: Counter = Counter()
            photo_ids = sorted(imported)
            if model not in dimensions:
                milvus[model] = ids
                continue
            name = index.ensure_collection(model, dimensions[model])  # loaded, also in a file opened anew
            for i in range(0, len(photo_ids), 200):  # by photo: a query answers at most 16,384 rows
                chunk = json.dumps(photo_ids[i : i + 200])
                rows = index.client.query(name, filter=f"photo_id in {chunk}", output_fields=["id"], limit=16_384)
                ids.update(str(r["id"]) for r in rows)
            milvus[model] = ids
    finally:
        index.close()

    never_detected = [p for p in imported if detected[p] == 0]
    detected_twice = [p for p in detected if detected[p] > 1]
    missing_embeddings = [(f, m) for f in expected_faces for m in settings.embedders if embedded[(f, m)] == 0]
    embedded_twice = [k for k, n in embedded.items() if n > 1]
    report = {
        "photos_imported": len(imported),
        "photos_rejected": len(rejected),
        "imported_twice": sum(1 for n in imported.values() if n > 1),
        "photos_never_detected": len(never_detected),
        "photos_detected_twice": len(detected_twice),
        "faces": len(expected_faces),
        "faces_never_embedded": len(missing_embeddings),
        "faces_embedded_twice": len(embedded_twice),
        "read_model_photos_missing": len(set(imported) - set(photo_rows)),
        "read_model_photos_extra": len(set(photo_rows) - set(imported)),
        "read_model_waiting": waiting,
        "read_model_faces_missing": len(expected_faces - set(face_rows)),
        "read_model_faces_extra": len(set(face_rows) - expected_faces),
        "milvus": {m: {"missing": len(expected_faces - set(ids)), "extra": len(set(ids) - expected_faces),
                       "repeated": sum(n - 1 for n in ids.values() if n > 1)} for m, ids in milvus.items()},
        "content_hashes": sorted(hashes.values()),
    }
    report["lost"] = (report["photos_never_detected"] + report["faces_never_embedded"] + report["read_model_photos_missing"]
                      + report["read_model_faces_missing"] + sum(v["missing"] for v in report["milvus"].values()))
    report["duplicated"] = (report["imported_twice"] + report["photos_detected_twice"] + report["faces_embedded_twice"]
                            + report["read_model_photos_extra"] + report["read_model_faces_extra"]
                            + sum(v["extra"] + v["repeated"] for v in report["milvus"].values()))
    return report


# ----------------------------------------------------------------------------- the run

def sign_up(url: str) -> str:
    r = httpx.post(url + "/api/auth/setup", json={"username": "soak", "password": PASSWORD}, timeout=60)
    if r.status_code != 201:
        raise RuntimeError(f"could not create the account: {r.status_code} {r.text[:200]}")
    return r.json()["token"]


def server_settings(args: argparse.Namespace, var_dir: Path) -> dict:
    settings = {"var_dir": var_dir, "models_dir": Path(get_settings().models_dir).resolve()}
    for item in args.setting:
        key, _, value = item.partition("=")
        settings[key] = value
    return settings


async def drive(args: argparse.Namespace, soak: Soak, uploads: list[Path], folder: Path | None, folder_count: int,
                expected: int, examples: list[Path]) -> str:
    """Runs the load until every photo is analysed; returns how it ended."""
    deadline = time.monotonic() + 60 * args.minutes_limit
    background = [asyncio.create_task(soak.probe_health()), asyncio.create_task(soak.sample_rss())]
    searchers = [asyncio.create_task(soak.search_loop(examples, seed)) for seed in range(args.clients)]
    feeder = asyncio.create_task(soak.feed(uploads, folder, folder_count))
    outcome = "complete"
    last_print = 0.0
    while not (soak.feeding_done.is_set() and soak.settled(expected)):
        if time.monotonic() > deadline:
            outcome = f"stopped: --minutes-limit {args.minutes_limit} reached"
            break
        if not soak.server_alive():
            outcome = "stopped: the server exited"
            break
        if time.monotonic() - last_print > 30:
            last_print = time.monotonic()
            print(f"[{soak.elapsed():7.1f} s] photos {soak.counts}, uploads {dict(soak.files)}, searches "
                  f"{len(soak.search.seconds)}, rss {soak.rss[-1][1] if soak.rss else '?'} MiB", file=sys.stderr, flush=True)
        await asyncio.sleep(0.5)
    soak.wall_s = soak.elapsed()
    soak.stop.set()
    # Requests in flight finish: one cut off would be the benchmark's fault, not the server's.
    await asyncio.wait([feeder, *searchers], timeout=REQUEST_TIMEOUT_S)
    for task in [feeder, *searchers]:
        task.cancel()
    await asyncio.gather(feeder, *searchers, *background, return_exceptions=True)
    return outcome


async def settle_audit(settings: Settings, expected_hashes: set[str], timeout: float) -> dict:
    """The audit, repeated while the faces and vectors projections catch up (bounded)."""
    end = time.monotonic() + timeout
    while True:
        report = await asyncio.to_thread(audit, settings)
        if report["lost"] == 0 or time.monotonic() > end:
            break
        await asyncio.sleep(2.0)
    got = set(report.pop("content_hashes"))
    report["photos_fed_not_imported"] = len(expected_hashes - got)
    report["lost"] += report["photos_fed_not_imported"]
    return report


def wait_for_session_end(process, timeout: float = 15.0) -> None:
    """Until no process of the server's session is left (Milvus Lite writes its files as it
    dies: removing the folder before that leaves some behind)."""
    if process is None:
        return
    with contextlib.suppress(Exception):
        process.wait(timeout)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def run(args: argparse.Namespace) -> dict:
    from tests.reliability.server import UpProcess

    work = Path(tempfile.mkdtemp(prefix="fs-soak-"))
    server = None
    try:
        sources = lfw_images(args.data)
        t = time.perf_counter()
        photos = build_photos(sources, work / "photos", args.photos)
        print(f"{len(photos)} distinct photos from {len(sources)} LFW portraits in {time.perf_counter() - t:.1f} s",
              file=sys.stderr, flush=True)
        folder_count = round(args.folder_share * len(photos))
        var_dir = work / "var"
        folder = var_dir / "import" / "soak"  # the drop folder: allowed for folder imports by default
        folder.mkdir(parents=True)
        for p in photos[:folder_count]:
            shutil.move(p, folder / p.name)
        uploads = photos[folder_count:]
        bad = [work / f"bad{i}.jpg" for i in range(args.bad_uploads)]
        for i, b in enumerate(bad):  # spread among the good ones
            uploads.insert((i + 1) * len(uploads) // (len(bad) + 1), b)
        expected_hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in [*folder.iterdir(), *photos[folder_count:]]}
        examples = random.Random(0).sample(sources, min(200, len(sources)))

        settings_map = server_settings(args, var_dir)
        server = UpProcess(settings_map, work / "up.log").start(timeout=300)
        token = sign_up(server.url)
        rss_start = tree_rss_mb(server.process.pid)

        async def main() -> tuple[Soak, str, dict]:
            soak = Soak(args, server.url, token, server.process.pid, lambda: server.process.poll() is None)
            outcome = await drive(args, soak, uploads, folder, folder_count, len(expected_hashes), examples)
            settings = Settings(**{k: v for k, v in settings_map.items()})
            if soak.server_alive():
                exact = await settle_audit(settings, expected_hashes, timeout=120 if outcome == "complete" else 5)
            else:  # no Milvus to ask; the table says why
                exact = {"lost": None, "duplicated": None, "photos_imported": 0, "read_model_waiting": 0,
                         "read_model_photos_missing": 0, "faces": None}
            await soak.http.aclose()
            await soak.probe.aclose()
            return soak, outcome, exact

        soak, outcome, exact = asyncio.run(main())
        rss_end = tree_rss_mb(server.process.pid) if server.process.poll() is None else 0.0
        log = server.tail(2_000_000)
        server.stop(signal.SIGTERM)
    finally:
        if server is not None:
            server.kill_session()
            wait_for_session_end(server.process)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    errors = Counter()
    for kind, meter in (("search", soak.search), ("upload", soak.upload), ("health", soak.health)):
        for k, n in meter.errors.items():
            errors[f"{kind}:{k}"] += n
    errors.update({f"feed:{k}": n for k, n in soak.other_errors.items()})
    unexpected_files = {k: n for k, n in soak.files.items() if k not in ("new",) and not (k == "rejected" and n == args.bad_uploads)}
    errors.update({f"upload_file:{k}": n for k, n in unexpected_files.items()})
    if soak.files.get("rejected", 0) != args.bad_uploads:
        errors["upload_file:rejected_count_mismatch"] += 1
    tracebacks = log.split("Traceback (most recent call last):")[1:]
    if tracebacks:
        errors["server_log:traceback"] += len(tracebacks)
    series = soak.rss[:: max(1, len(soak.rss) // RSS_SERIES_POINTS)]
    # Throughput counts photos the user can see analysed (read model), not just those in the event store.
    photos_done = exact["photos_imported"] - exact["read_model_waiting"] - exact["read_model_photos_missing"]
    result = {
        "benchmark": "soak", "outcome": outcome, "photos": len(expected_hashes), "clients": args.clients,
        "uploaded": len(uploads) - len(bad), "folder_imported": folder_count, "bad_uploads": len(bad),
        "search_pause_s": args.search_pause, "wall_s": soak.wall_s,
        "photos_per_s": round(photos_done / soak.wall_s, 2) if soak.wall_s else None,
        "errors": dict(errors), "error_count": sum(errors.values()),
        "upload_files": dict(soak.files), "examples_without_face": soak.examples_without_face,
        "search": soak.search.summary(), "upload": soak.upload.summary(), "health": soak.health.summary(),
        "health_per_minute": soak.health_windows(),
        "health_worst_minute_p99_ms": max((w["p99_ms"] for w in soak.health_windows()), default=None),
        "rss_mb": {"start": rss_start, "peak": max([rss_start, rss_end, *(v for _, v in soak.rss)]), "end": rss_end},
        "rss_series": [{"t_s": t, "mb": v} for t, v in series],
        "exactly_once": exact, "lost": exact["lost"], "duplicated": exact["duplicated"],
        "server_log_tracebacks": [exception_line(t) for t in tracebacks[:20]],
        "machine": machine(), **({"work_dir": str(work)} if args.keep else {}),
    }
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True))
    print(f"saved {args.out}", file=sys.stderr)
    return result


def exception_line(traceback: str) -> str:
    """The `Type: message` line that ends a traceback's text (the stack lines are indented)."""
    lines = traceback.splitlines()[1:]
    return next((line[:300] for line in lines if line and not line.startswith(" ")), "?")


def report(r: dict) -> None:
    def p(m: dict) -> str:
        return f"{m['p50_ms']} / {m['p95_ms']} / {m['p99_ms']}"

    errors = ", ".join(f"{k} {n}" for k, n in sorted(r["errors"].items())) or "none"
    print(f"soak: {r['outcome']}; {r['machine']}")
    print_table(["measure", "value"], [
        ["photos (uploaded + folder import)", f"{r['photos']} ({r['uploaded']} + {r['folder_imported']})"],
        ["parallel search clients", r["clients"]],
        ["wall time, s", str(r["wall_s"])],
        ["throughput, photos/s", str(r["photos_per_s"])],
        ["errors", f"{r['error_count']} ({errors})"],
        ["bad uploads rejected (expected)", f"{r['upload_files'].get('rejected', 0)} ({r['bad_uploads']})"],
        ["searches", r["search"]["count"]],
        ["search p50 / p95 / p99, ms", p(r["search"])],
        ["upload requests", r["upload"]["count"]],
        ["upload p50 / p95 / p99, ms", p(r["upload"])],
        ["/health p50 / p95 / p99 / max, ms", f"{p(r['health'])} / {r['health']['max_ms']}"],
        ["/health p99 of the worst minute, ms", str(r["health_worst_minute_p99_ms"])],
        ["RSS start / peak / end, MiB", f"{r['rss_mb']['start']} / {r['rss_mb']['peak']} / {r['rss_mb']['end']}"],
        ["faces", r["exactly_once"]["faces"]],
        ["lost", r["lost"]],
        ["duplicated", r["duplicated"]],
    ])
    series = r["rss_series"]
    picked = sorted({*range(0, len(series), max(1, len(series) // 6)), len(series) - 1}) if series else []
    print_table(["t, s", "RSS, MiB"], [[str(series[i]["t_s"]), str(series[i]["mb"])] for i in picked])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=150)
    parser.add_argument("--clients", type=int, default=4, help="parallel search-by-example clients")
    parser.add_argument("--data", type=Path, default=get_settings().data_dir)
    parser.add_argument("--minutes-limit", type=float, default=120.0, help="stop and report after this long")
    parser.add_argument("--out", type=Path, default=Path("var/bench/soak.json"))
    parser.add_argument("--folder-share", type=float, default=0.1, help="share of photos fed by a folder import")
    parser.add_argument("--bad-uploads", type=int, default=1, help="corrupt files uploaded among the photos")
    parser.add_argument("--search-pause", type=float, default=1.0, help="seconds each client waits between searches")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a server setting (FACESEARCH_KEY), e.g. worker_use_gpu=false")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (photos, var, up.log)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
