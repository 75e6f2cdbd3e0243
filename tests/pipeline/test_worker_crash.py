"""A worker process killed (SIGKILL) in the middle of a batch: another worker of the group
gets the batch again, and every photo ends analysed exactly once."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import sqlalchemy as sa

from facesearch.services.imports import import_local
from facesearch.settings import PROJECT_ROOT
from facesearch.system import System
from projections.tables import faces, photos
from tests.pipeline.conftest import lfw_identities, wait_until_analysed


def spawn_worker(settings, log_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "FACESEARCH_VAR_DIR": str(settings.var_dir),
        "FACESEARCH_MODELS_DIR": str(settings.models_dir),
        "FACESEARCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FACESEARCH_TOPIC_PREFIX": settings.topic_prefix,
        "FACESEARCH_WORKER_BATCH_SIZE": "16",
        "FACESEARCH_WORKER_MAX_WAIT_MS": "500",
        "FACESEARCH_WORKER_SESSION_TIMEOUT_MS": str(settings.worker_session_timeout_ms),
        "FACESEARCH_WORKER_USE_GPU": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "facesearch.worker_process"], cwd=PROJECT_ROOT, env=env,
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
    )


def analyses(system: System) -> Counter:
    """Photo id -> how many analysis events (FacesDetected / NoFacesFound) the store holds."""
    return Counter(
        e.aggregate_id for e in system.read_page(0, 100_000) if e.event_type in ("FacesDetected", "NoFacesFound")
    )


async def test_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(pipeline_settings, data_dir, tmp_path):
    album = tmp_path / "album"
    album.mkdir()
    for paths in lfw_identities(data_dir, 4, 4).values():
        for path in paths:
            shutil.copy(path, album / path.name)
    clean = sorted((data_dir / "no_faces" / "clean").iterdir())[:2]
    for path in clean:
        shutil.copy(path, album / f"noface_{path.name}")
    expected = 16 + len(clean)

    system = System(pipeline_settings)
    await system.start(workers=False)  # relay and projections here; the workers are processes
    first = second = None
    try:
        await asyncio.to_thread(import_local, system.app, pipeline_settings, str(album), owner="ann", operator=True)
        first = spawn_worker(pipeline_settings, tmp_path / "first.log")
        # Kill it as soon as it has recorded one photo: its batch (up to 16) is half done
        # and not acknowledged.
        deadline = time.monotonic() + 90
        while not analyses(system) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        recorded_by_first = set(analyses(system))
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert 1 <= len(recorded_by_first) < expected, "the first worker must die mid-batch"

        second = spawn_worker(pipeline_settings, tmp_path / "second.log")
        await wait_until_analysed(system, expected, timeout=150)

        counts = analyses(system)
        assert len(counts) == expected and set(counts.values()) == {1}  # every photo, once
        failures = [e for e in system.read_page(0, 100_000) if e.event_type == "PhotoAnalysisFailed"]
        assert failures == []
        async with system.engine.connect() as conn:
            statuses = Counter((await conn.execute(sa.select(photos.c.status))).scalars())
            face_rows = (await conn.execute(sa.select(faces.c.id))).scalars().all()
        assert statuses == {"analysed": 16, "no_faces": len(clean)}
        assert len(face_rows) == len(set(face_rows)) >= 16
        assert await asyncio.to_thread(system.vectors.count, "facenet512") == len(face_rows)
        # The second worker got the dead worker's batch again, and skipped what it had recorded.
        log = (tmp_path / "second.log").read_text()
        assert any(f"photo {photo_id} was already analysed" in log for photo_id in recorded_by_first), log[-3000:]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
        await system.stop()
