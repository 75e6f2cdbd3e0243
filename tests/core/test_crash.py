"""Exactly-once effect across a crash: SIGKILL the running system and the import mid-way,
start again, and every photo is in the read model once, every event applied once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from domain.families import FAMILY_OF_AGGREGATE
from facesearch.infra.tansu import free_port
from tests.conftest import write_images

PHOTOS = 150


def facesearch(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    # Output to a file: a pipe nobody reads fills up and blocks the process.
    log = open(Path(env["FACESEARCH_VAR_DIR"]).parent / f"{args[0]}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "facesearch", *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def stored_events(var_dir: Path) -> int:
    db = var_dir / "events.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM stored_events").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def wait_for_health(env: dict[str, str], timeout: float = 60) -> None:
    url = f"http://127.0.0.1:{env['FACESEARCH_API_PORT']}/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError("facesearch up did not answer on /health")


def status(env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "facesearch", "status", "--json"], env=env, capture_output=True, check=True)
    return json.loads(out.stdout)


def test_sigkill_mid_import_then_restart_applies_every_event_once(tmp_path):
    album = tmp_path / "album"
    write_images(album, PHOTOS, size=(320, 240))
    var_dir = tmp_path / "var"
    env = {**os.environ, "FACESEARCH_VAR_DIR": str(var_dir), "FACESEARCH_REDELIVERY_AFTER_SECONDS": "2", "FACESEARCH_RECONNECT_AFTER_SECONDS": "8",
           "FACESEARCH_API_PORT": str(free_port())}

    server = facesearch(env, "up")
    wait_for_health(env)
    # The CLI imports as the web client's single account.
    subprocess.run([sys.executable, "-m", "api.users", "add", "ann", "--password-stdin"], env=env, input=b"ann-password\n",
                   capture_output=True, check=True, timeout=60)
    importer = facesearch(env, "import", "local", str(album))
    deadline = time.monotonic() + 60
    while stored_events(var_dir) < PHOTOS // 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert importer.poll() is None, "the import finished before it could be killed: make it longer"
    for process in (importer, server):
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = stored_events(var_dir)
    assert 0 < killed_at < 2 * PHOTOS + 2

    # Start again: `up` resumes the unfinished import and the projections catch up.
    server = facesearch(env, "up")
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            state = status(env)
            settled = state["photos"].get("no_faces", 0) + state["photos"].get("analysed", 0)
            if state["imports"] and state["imports"][0]["status"] == "completed" and settled == PHOTOS:
                break
            time.sleep(1)
        time.sleep(3)  # let any redelivery land: it must change nothing
        state = status(env)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(30)

    # Generated photos hold no faces: each was analysed once and filed under "no faces".
    assert state["photos"] == {"no_faces": PHOTOS}
    [job] = state["imports"]
    assert (job["status"], job["discovered"], job["stored"], job["skipped"], job["failed"]) == (
        "completed", PHOTOS, PHOTOS, 0, 0,
    )
    with sqlite3.connect(var_dir / "events.sqlite") as conn:
        topics = [row[0] for row in conn.execute("SELECT topic FROM stored_events")]
    photo_events = sum(t.startswith("domain.photo:") for t in topics)
    job_events = sum(t.startswith("domain.import_job:") for t in topics)
    # PhotoImported and NoFacesFound per photo; ImportRequested, (PhotoDiscovered +
    # PhotoStored) per photo and ImportCompleted for the job: nothing twice, nothing missing.
    assert photo_events == 2 * PHOTOS and job_events == 2 * PHOTOS + 2
    assert topics.count("domain.photo:NoFacesFound") == PHOTOS
    with sqlite3.connect(var_dir / "read_models.sqlite") as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT content_hash) FROM photos").fetchone() == (PHOTOS, PHOTOS)
        applied = dict(conn.execute(
            "SELECT projection || ' ' || topic, sum(applied) FROM projection_checkpoints GROUP BY projection, topic"
        ).fetchall())
    family_of_module = {aggregate.__module__: family for aggregate, family in FAMILY_OF_AGGREGATE.items()}
    events_in_family = Counter(family_of_module[topic.split(":")[0]] for topic in topics)
    for key, count in applied.items():
        family = key.rsplit(".", 1)[1]
        assert count == events_in_family[family], f"{key} applied {count} events, the store holds {events_in_family[family]}"
