"""A 60 MB input over real HTTP, against the default 50 MB upload limit: a clean coded refusal,
never the file in memory (the multipart parser spools to disk; the endpoints stop at the
limit), /health fast meanwhile; and a body declared larger than the server's cap is refused
from its header before a byte of it is read.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from api.app import create_app
from facesearch.settings import Settings
from tests.fakes.server import ServerThread
from tests.reliability.hostile import SIXTY_MB, sixty_mb_chunks
from tests.reliability.imports import HEALTH_WITHIN_S, MiB, reset_peak, second_worst, vm

BOUNDARY = "hostile-boundary-7f3a"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, str, Settings]]:
    """The API with default limits on 127.0.0.1 (no broker: uploads need only the event store)."""
    settings = Settings(var_dir=tmp_path_factory.mktemp("large") / "var", kafka_bootstrap="127.0.0.1:9",
                        run_workers=False)
    assert settings.max_upload_bytes < SIXTY_MB
    with ServerThread(create_app(settings, run_system=False), lifespan="on") as served:
        r = httpx.post(served.base_url + "/api/auth/setup", json={"username": "ann", "password": "ann-password"})
        assert r.status_code == 201, r.text
        yield served.base_url, r.json()["token"], settings


def multipart_sixty_mb(field: str, filename: str) -> Iterator[bytes]:
    """One file part of 60 MB, streamed: the client never holds it (sent chunked)."""
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
           "Content-Type: image/jpeg\r\n\r\n").encode()
    yield from sixty_mb_chunks()
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def post_sixty_mb(base: str, token: str, path: str, field: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return httpx.post(base + path, content=multipart_sixty_mb(field, "huge.jpg"), headers=headers, timeout=120)


def health_during(base: str, job) -> list[float]:
    latencies = []
    with httpx.Client(base_url=base, timeout=5) as client:
        while not job.done() and len(latencies) < 3000:
            r = client.get("/health")
            assert r.status_code == 200
            latencies.append(r.elapsed.total_seconds())
            threading.Event().wait(0.02)
    return sorted(latencies)


@pytest.mark.parametrize(("path", "field"), [("/api/photos", "files"), ("/api/search/examples", "file")])
def test_sixty_mb_is_refused_with_a_code_without_being_held_in_memory(server, path, field):
    base, token, settings = server
    reset_peak()
    rss_before = vm("VmRSS")
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(post_sixty_mb, base, token, path, field)
        latencies = health_during(base, sent)
        r = sent.result(timeout=120)
    peak = (vm("VmHWM") - rss_before) / MiB

    assert r.status_code == 413, r.text
    if path == "/api/photos":
        [result] = r.json()["results"]
        assert (result["status"], result["code"], result["filename"]) == ("refused", "TOO_LARGE", "huge.jpg")
    else:
        assert r.json()["code"] == "TOO_LARGE", r.text
    assert second_worst(latencies) < HEALTH_WITHIN_S, f"worst /health {latencies[-1] * 1000:.0f} ms"
    # Client and server share this process: held once, the 60 MB alone would show.
    assert peak < 30, f"peak grew {peak:.0f} MiB"


def test_a_body_declared_over_the_cap_is_refused_from_its_header(server):
    base, token, settings = server
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall((f"POST /api/photos HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                      f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                      "Content-Length: 4000000000\r\n\r\n").encode())  # and not one byte of it
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["code"] == "REQUEST_TOO_LARGE"
