"""A running embedded system (API, broker, relay, projections, workers) with photos
processed, shared by the ops tests, and Debian's prometheus scraping it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"


def TOKEN_FILE(base: Path) -> Path:  # noqa: N802
    return base.parent / "metrics-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def sample_value(text: str, name: str) -> float:
    """Sum of every sample called exactly `name` in an exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} | ({"time": at} if at is not None else {})
        body = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        params = {"query": expr, "start": start, "end": end, "step": step}
        body = httpx.get(f"{self.url}/api/v1/query_range", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]


@pytest.fixture(scope="session")
def prometheus(system_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus | None]:
    """Debian's prometheus scraping the system every second; None (and a loud line) when
    the binary is missing, so tests that need it skip and the others still run."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = "PROMETHEUS BINARY MISSING: apt-get install -y prometheus  (the Prometheus tests did NOT run)"
        print("\n" + "!" * 80 + "\n" + message + "\n" + "!" * 80, file=sys.stderr)
        yield None
        return
    base = tmp_path_factory.mktemp("prometheus")
    target = f"127.0.0.1:{system_port}"
    (base / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: facesearch\n"
        f"    authorization:\n      credentials_file: {TOKEN_FILE(base)}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    with (base / "prometheus.log").open("w") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={base / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/-/ready", 30, proc)
        yield Prometheus(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class RunningSystem:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self.headers: dict[str, str] = {}

    def sign_in(self, token_file: Path) -> None:
        """Makes the first (admin) account; its session token authorises /metrics and the series."""
        answer = httpx.post(f"{self.url}/api/auth/setup", json={"username": "ops", "password": "ops-test-password-1"}, timeout=10)
        answer.raise_for_status()
        token = answer.json()["token"]
        self.headers = {"Authorization": f"Bearer {token}"}
        token_file.write_text(token)

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=10)

    def upload(self, files: dict[str, bytes]) -> httpx.Response:
        """Uploads photos as the signed-in account (one upload job)."""
        parts = [("files", (name, data, "image/jpeg")) for name, data in files.items()]
        return httpx.post(f"{self.url}/api/photos", files=parts, headers=self.headers, timeout=60)

    def metrics(self) -> str:
        answer = self.get("/metrics")
        answer.raise_for_status()
        return answer.text


@pytest.fixture(scope="session")
def system_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def running_system(
    tmp_path_factory: pytest.TempPathFactory, system_port: int, prometheus: Prometheus | None
) -> Iterator[RunningSystem]:
    """Started after Prometheus, so its scrapes see the counters rise."""
    base = tmp_path_factory.mktemp("ops-system")
    photos = base / "photos"
    photos.mkdir()
    for path in sorted(PHOTOS.glob("*")):
        if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
            shutil.copy(path, photos / path.name)
    if not any(photos.iterdir()):
        pytest.fail(f"no photos in {PHOTOS}: the ops tests need ../shared/data/photos")
    port = system_port
    env = dict(os.environ, FACESEARCH_VAR_DIR=str(base / "var"), FACESEARCH_METRICS_SAMPLE_SECONDS="1")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = base / "system.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "ops" / "run_system.py"), "--port", str(port), "--photos", str(photos),
             "--delay", "3"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    system = RunningSystem(f"http://127.0.0.1:{port}", log)
    try:
        wait_for(f"{system.url}/health", 90, proc)
        system.sign_in(TOKEN_FILE(base))
        # Processed: every photo projected, and analysed where the worker reports photos.
        deadline = time.monotonic() + 90
        wanted = len(list(photos.iterdir()))
        while time.monotonic() < deadline:
            text = system.metrics()
            projected = sample_value(text, 'facesearch_projection_events_total{outcome="applied",projection="photos"}')
            analysed = sample_value(text, "facesearch_photos_processed_total")
            if projected >= wanted and (analysed >= wanted or time.monotonic() > deadline - 75):
                break
            time.sleep(0.5)
        yield system
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()




@pytest.fixture(scope="session")
def live_prometheus(prometheus: Prometheus | None, running_system: RunningSystem) -> Prometheus:
    if prometheus is None:
        pytest.skip("PROMETHEUS BINARY MISSING: apt-get install -y prometheus  (this test did NOT run)")
    return prometheus
