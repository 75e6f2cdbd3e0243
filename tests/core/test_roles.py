"""The production split: relay and projections as separate processes on PostgreSQL and a
real broker, as docker-compose runs them (`facesearch run relay|projections`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg

from facesearch.settings import Settings
from facesearch.system import make_app
from tests.conftest import write_images


def test_relay_and_projections_in_their_own_processes(pg_database, tansu, tmp_path):
    env = {
        **os.environ,
        "FACESEARCH_PROFILE": "production",
        "FACESEARCH_EVENT_STORE_DSN": pg_database,
        "FACESEARCH_READ_MODEL_URL": pg_database,
        "FACESEARCH_KAFKA_BOOTSTRAP": tansu.bootstrap,
        "FACESEARCH_VAR_DIR": str(tmp_path / "var"),
        "FACESEARCH_TOPIC_PREFIX": f"roles{os.getpid()}",
    }
    logs = {role: tmp_path / f"{role}.log" for role in ("projections", "relay")}
    processes = [
        subprocess.Popen([sys.executable, "-m", "facesearch", "run", role], env=env,
                         stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        for role, log in logs.items()
    ]
    try:
        # The importing side only writes to the event store; the two processes do the rest.
        settings = Settings(event_store_dsn=pg_database, read_model_url=pg_database, var_dir=tmp_path / "var")
        app = make_app(settings)
        for path in write_images(tmp_path / "album", 20):
            app.store_photo(path.read_bytes(), owner="ann", source="local", source_ref=f"local:{path}")
        app.close()

        deadline = time.monotonic() + 90
        count = 0
        while time.monotonic() < deadline:
            with psycopg.connect(pg_database) as conn:
                try:
                    count = conn.execute("SELECT count(*) FROM photos").fetchone()[0]
                except psycopg.errors.UndefinedTable:
                    count = 0
            if count == 20:
                break
            time.sleep(0.5)
        if count != 20:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            tails = {role: log.read_text()[-3000:] for role, log in logs.items()}
            raise AssertionError(f"{count} photos in the read model; logs: {tails}")
        assert all(p.poll() is None for p in processes), "a role process died"
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
