"""Every error a Russian user can provoke, read in Chromium, is Russian (errors_ru.mjs): a bad
file, a 0-byte file, one over the size limit, a pixel bomb (quoting our limit, not Pillow's),
a dead Yandex.Disk link (through the fake Yandex.Disk) and a bad search example; the upload is
an import job under Imports with its stored, duplicate and rejected counts.

The server runs without analysis workers (nothing here needs faces) and with a 2 MB upload
limit, so "too large" costs a 3 MB file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.browser.test_browser import ARTIFACTS, CHROMIUM, running_server
from tests.conftest import huge_png_header, make_image
from tests.fakes import yadisk_server

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (apt-get install chromium)")

LIMIT_MB = 2


@pytest.fixture(scope="module")
def yadisk():
    with yadisk_server.running() as (fake, base):
        fake.public["aliveKey1"] = {"one.jpg": make_image(7)}  # a live share beside the dead link
        yield base


@pytest.fixture(scope="module")
def server(tmp_path_factory, yadisk):
    extra = {"FACESEARCH_RUN_WORKERS": "false", "FACESEARCH_MAX_UPLOAD_BYTES": str(LIMIT_MB * 2**20),
             "FACESEARCH_YADISK_API_BASE": yadisk, "FACESEARCH_IMPORT_ALLOW_LOOPBACK_HTTP": "true"}
    yield from running_server(tmp_path_factory.mktemp("errors-ru") / "var",
                              tmp_path_factory.getbasetemp() / "errors-ru-server.log", extra)


def write_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    good = make_image(11, size=(320, 240))
    files = {"good.jpg": good, "again.jpg": good, "bad.jpg": b"just some text, named like a photo\n", "empty.jpg": b"",
             "big.jpg": b"\xff\xd8\xff" + os.urandom(LIMIT_MB * 2**20 + 2**20), "bomb.png": huge_png_header(30_000, 30_000)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_every_error_is_russian(server, tmp_path):
    user, password = "archivist", "archive-password"
    r = httpx.post(f"{server}/api/auth/setup", json={"username": user, "password": password}, timeout=30)
    assert r.status_code == 201, r.text
    env = {**os.environ, "BASE_URL": server, "FS_USER": user, "FS_PASSWORD": password, "ARTIFACTS": str(ARTIFACTS),
           "FILES_DIR": str(write_files(tmp_path / "files")), "DEAD_LINK": "https://disk.yandex.ru/d/deadLink42",
           "CHROMIUM": str(CHROMIUM)}
    run = subprocess.run(["node", str(Path(__file__).with_name("errors_ru.mjs"))], env=env, capture_output=True, text=True,
                         timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"ok": False, "error": run.stderr[-3000:]}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    assert run.returncode == 0 and report["ok"], report
