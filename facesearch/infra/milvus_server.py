"""Starts and stops a real Milvus standalone server from the PyPI package `milvus` (2.3.x,
`milvus-server --data DIR`), for tests and benchmarks of what Milvus Lite lacks (IVF_PQ).
Production runs Milvus from docker-compose instead."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from facesearch.infra.tansu import free_port


def server_binary() -> str | None:
    found = shutil.which("milvus-server") or str(Path(sys.executable).with_name("milvus-server"))
    return found if Path(found).exists() else None


class MilvusServer:
    """One standalone server with its data under `data_dir`; `uri` is what MilvusClient takes."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> MilvusServer:
        binary = server_binary()
        if binary is None:
            raise RuntimeError("milvus-server not installed (pip install milvus==2.3.5)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")
        self.process = subprocess.Popen(
            [binary, "--data", str(self.data_dir), "--proxy-port", str(self.port), "--etcd-port", str(free_port())],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"milvus-server exited with code {self.process.returncode}; see {self.data_dir / 'server.log'}")
            if self._ready():
                return self
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"milvus-server did not answer on port {self.port} within {timeout} s")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        try:
            from pymilvus import MilvusClient

            client = MilvusClient(self.uri, timeout=5)
            client.list_collections()
            client.close()
            return True
        except Exception:
            return False

    def stop(self) -> None:
        """Stops the launcher and the server it started (they share a process group of their own)."""
        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the server outlives its launcher for a while
            self.process.poll()
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def __enter__(self) -> MilvusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
