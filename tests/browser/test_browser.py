"""The web client in Chromium against a real server (`facesearch up`: broker, relay,
projections, analysis workers with the real models), driven by e2e.mjs through playwright-core.

Seeds photos of LFW people through the API, then the browser signs in, drops t1.jpg and sees
six boxes, searches with an unseen photo of one person, moves the slider, exports CSV,
opens monitoring, groups faces into people and names the person seeded in six photos. Screenshots go to test-artifacts/browser/, the main ones to docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from facesearch.settings import PROJECT_ROOT, Settings

FRONTEND = PROJECT_ROOT / "frontend"
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PERSON = "Colin_Powell"
OTHERS = ["George_W_Bush", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Guillermo_Coria",
          "Jacques_Chirac", "Jean_Chretien", "John_Ashcroft", "Junichiro_Koizumi", "Serena_Williams", "Vladimir_Putin"]
MAIN_SCREENS = ["01-sign-in-ru", "03-gallery", "04-photo-faces", "05-search", "02-imports", "07-export", "08-monitoring",
                "people", "09-people-ru"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_client_built() -> None:
    if not (FRONTEND / "node_modules" / "playwright-core").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
    if not (FRONTEND / "dist" / "index.html").exists():
        subprocess.run(["npm", "run", "build"], cwd=FRONTEND, check=True)


def lfw(person: str) -> list[Path]:
    return sorted((Settings().data_dir / "lfw" / "images" / person).glob("*.jpg"))


def server_env(var: Path, port: int = 0) -> dict[str, str]:
    """The environment of the test server (and of a CLI beside it: the same var_dir)."""
    return {**os.environ, "FACESEARCH_VAR_DIR": str(var), "FACESEARCH_API_PORT": str(port),
            "FACESEARCH_MODELS_DIR": str(Settings().models_dir), "FACESEARCH_WORKER_USE_GPU": "false"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from running_server(tmp_path_factory.mktemp("browser") / "var", tmp_path_factory.getbasetemp() / "server.log")


def running_server(var: Path, log_path: Path, extra_env: dict[str, str] | None = None):
    """`facesearch up` on a free port with its state in `var` (and `extra_env` settings);
    yields its base URL."""
    ensure_client_built()
    port = free_port()
    env = {**server_env(var, port), **(extra_env or {})}
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "-m", "facesearch", "up", "--port", str(port)], cwd=PROJECT_ROOT,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {Path(log.name).read_text()[-3000:]}")
            time.sleep(0.5)
        else:
            raise RuntimeError("server did not start")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_browser_flows(server):
    user, password = "archivist", "archive-password"
    with httpx.Client(base_url=server, timeout=120) as api:
        r = api.post("/api/auth/setup", json={"username": user, "password": password})
        assert r.status_code == 201, r.text
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        person = lfw(PERSON)
        example, seeded = person[0], person[1:7]
        seeded += [lfw(other)[0] for other in OTHERS]
        no_face = sorted((Settings().data_dir / "no_faces").rglob("*.jpg"))[:1]
        for path in seeded + no_face:
            r = api.post("/api/photos", files={"files": (path.name, path.read_bytes(), "image/jpeg")}, headers=headers)
            assert r.status_code == 201, r.text
        deadline = time.monotonic() + 300
        query = {"query": "{ stats { photos waiting } }"}
        while time.monotonic() < deadline:
            stats = api.post("/graphql", json=query, headers=headers).json()["data"]["stats"]
            if stats["waiting"] == 0 and stats["photos"] >= len(seeded):
                break
            time.sleep(1)
        else:
            pytest.fail(f"photos were not analysed in time: {stats}")

    env = {**os.environ, "BASE_URL": server, "FS_USER": user, "FS_PASSWORD": password, "ARTIFACTS": str(ARTIFACTS),
           "T1_JPG": str(Settings().data_dir / "photos" / "insightface" / "t1.jpg"), "EXAMPLE_JPG": str(example),
           "EXAMPLE_PERSON": PERSON, "CHROMIUM": str(CHROMIUM)}
    run = subprocess.run(["node", str(Path(__file__).with_name("e2e.mjs"))], env=env, capture_output=True, text=True,
                         timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"ok": False, "error": run.stderr[-3000:]}
    print(json.dumps(report, indent=2))
    assert run.returncode == 0 and report["ok"], report

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name in MAIN_SCREENS:
        shutil.copy(ARTIFACTS / f"{name}.png", SCREENSHOTS / f"{name}.png")
