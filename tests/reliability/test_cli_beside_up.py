"""The CLI beside the running system (issue 11): while `facesearch up` holds the embedded
profile's Milvus Lite file, `facesearch search`, `verify`, `cluster` and `people list` answer
(they use its Milvus Lite server), and a user error ends in a message, not a traceback.
Before, `search` failed with a Milvus Lite lock traceback while `up` ran.

A real `facesearch up` (real models, its own tansu) on 127.0.0.1; every wait is bounded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from facesearch.settings import PROJECT_ROOT, get_settings
from tests.pipeline.conftest import lfw_identities
from tests.reliability.server import UpProcess


@pytest.fixture(scope="module")
def models_dir() -> Path:
    from facesearch.cli.models import pull_models

    pull_models(get_settings())
    return Path(get_settings().models_dir)


def cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facesearch", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_search_verify_cluster_and_people_answer_while_up_runs(tmp_path, models_dir):
    data_dir = get_settings().data_dir
    if not (data_dir / "lfw" / "clusters.csv").is_file():
        pytest.skip(f"evaluation photos not found under {data_dir}")
    people = lfw_identities(data_dir, 2, 5)
    album = tmp_path / "album"
    album.mkdir()
    for paths in people.values():
        for path in paths[:4]:
            shutil.copy(path, album / path.name)
    held_out = next(iter(people.values()))[4]
    other = list(people.values())[1][4]

    up = UpProcess({"var_dir": tmp_path / "var", "models_dir": models_dir, "reconcile_after_seconds": 10}, tmp_path / "up.log")
    env = up.env
    up.start(timeout=180)
    try:
        account = subprocess.run([sys.executable, "-m", "api.users", "add", "ann", "--password-stdin"], cwd=PROJECT_ROOT,
                                 env=env, input="ann-password\n", capture_output=True, text=True, timeout=60)
        assert account.returncode == 0, account.stderr[-2000:]  # the CLI acts as an account of the web client
        imported = cli(env, "import", "local", str(album), "--owner", "ann")
        assert imported.returncode == 0, imported.stderr[-2000:]
        deadline = time.monotonic() + 240
        while True:  # the running system analyses what the CLI imported
            status = json.loads(cli(env, "status", "--json").stdout)
            progress = status["embeddings"]["facenet512"]
            if status["photos"].get("analysed", 0) == 8 and progress["embedded"] == progress["faces"] >= 8:
                break
            assert time.monotonic() < deadline, status
            time.sleep(2)

        found = cli(env, "search", str(held_out), "--owner", "ann", "--json")
        assert found.returncode == 0, found.stderr[-3000:]
        result = json.loads(found.stdout)
        refs = {Path(p["source_ref"]).name for p in result["photos"]}
        assert refs == {p.name for p in next(iter(people.values()))[:4]}, refs
        assert result["archive_faces"] == progress["faces"]

        same = cli(env, "verify", str(held_out), str(next(iter(people.values()))[0]), "--json")
        different = cli(env, "verify", str(held_out), str(other), "--json")
        assert json.loads(same.stdout)["same"] is True and json.loads(different.stdout)["same"] is False

        clustered = cli(env, "cluster", "--owner", "ann", "--json")
        assert clustered.returncode == 0, clustered.stderr[-3000:]
        assert json.loads(clustered.stdout)["people"] == 2
        listed = cli(env, "people", "list", "--owner", "ann", "--json")
        assert listed.returncode == 0, listed.stderr[-3000:]

        # User errors: a clear message and exit code 2, no traceback.
        not_image = tmp_path / "notes.jpg"
        not_image.write_text("not a photo")
        for args in (("search", str(not_image), "--owner", "ann"), ("search", str(held_out), "--threshold", "99"),
                     ("verify", str(not_image), str(held_out))):
            answer = cli(env, *args)
            assert answer.returncode == 2 and "Traceback" not in answer.stderr + answer.stdout, (args, answer.stderr)
            assert answer.stderr.startswith("error: "), answer.stderr
        # The system kept running throughout.
        assert httpx.get(f"{up.url}/health", timeout=5).status_code == 200
    finally:
        up.stop()
        up.kill_session()
