"""CSRF in Chromium (issue 16, item 5): a page on another port of the API's host tries to
act for a signed-in user (a no-cors fetch upload, logout and credential revocation, and a
multipart form posting a photo). The API refuses each with 403; the user's own page still
signs in, uploads and queries. Before the Origin check the form and the fetch each planted
a photo and the fetch signed the user out.

A real server (`facesearch up`, no analysis workers) on one loopback port, the hostile
page on another, both on 127.0.0.1 only."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from facesearch.settings import PROJECT_ROOT

HERE = Path(__file__).resolve().parent
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PLAYWRIGHT = PROJECT_ROOT / "frontend" / "node_modules" / "playwright-core"
USER, PASSWORD = "archivist", "archive-password"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or not PLAYWRIGHT.exists(),
                                reason="Chromium or frontend/node_modules missing (apt-get install chromium; npm ci)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), colour).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (PROJECT_ROOT / "frontend" / "dist" / "index.html").exists():
        subprocess.run(["npm", "run", "build"], cwd=PROJECT_ROOT / "frontend", check=True, timeout=300)
    base = tmp_path_factory.mktemp("csrf")
    port = free_port()
    env = {**os.environ, "FACESEARCH_VAR_DIR": str(base / "var"), "FACESEARCH_API_PORT": str(port),
           "FACESEARCH_RUN_WORKERS": "false"}
    log = open(base / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "facesearch", "up", "--port", str(port)], cwd=PROJECT_ROOT,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {(base / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("server did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    """attack.html and a JPEG, served from another port of the same host."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "attack.html").write_bytes((HERE / "attack.html").read_bytes())
    (root / "planted.jpg").write_bytes(jpeg((250, 0, 250)))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def test_another_origin_on_the_same_host_cannot_act_for_a_signed_in_user(server, hostile_site):
    r = httpx.post(f"{server}/api/auth/setup", json={"username": USER, "password": PASSWORD}, timeout=30)
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    env = {**os.environ, "BASE_URL": server, "EVIL_URL": hostile_site, "FS_USER": USER, "FS_PASSWORD": PASSWORD,
           "JPEG_B64": base64.b64encode(jpeg((20, 120, 220))).decode(), "CHROMIUM": str(CHROMIUM)}
    run = subprocess.run(["node", str(HERE / "csrf.mjs")], env=env, capture_output=True, text=True, timeout=180)
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"ok": False, "error": run.stderr[-3000:]}
    print(json.dumps(report, indent=2))
    assert run.returncode == 0 and report["ok"], report

    assert report["own"] == {"login": 200, "upload": 201, "uploaded": "new"}, report["own"]
    # The form's answer shows in its iframe; the fetches' are blocked from the page's view
    # (Cross-Origin-Resource-Policy), but they reached the server with the cookie: their
    # effects (a photo, a signed-out session) are what is checked below.
    form = [a for a in report["answers"] if a["frame"] == "iframe"]
    assert form == [{"url": "/api/photos", "status": 403, "frame": "iframe"}], report["answers"]
    assert len(report["attack"]) == 4, report["attack"]
    assert report["after"]["me"] == 200, "the hostile page signed the user out"
    assert report["after"]["graphql"] == 200

    def photos() -> int:
        body = httpx.post(f"{server}/graphql", json={"query": "{ stats { photos } }"}, headers=headers, timeout=30).json()
        return body["data"]["stats"]["photos"]

    deadline = time.monotonic() + 30
    while photos() < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # anything planted would be projected by now too
    assert photos() == 1, "photos were planted from another origin"
