"""Starts and stops a real Milvus standalone server from the PyPI package `milvus` (2.3.x,
`milvus-server --data DIR`): the embedded profile's vector store (SharedMilvusServer), and
what tests and benchmarks of Milvus Lite's gaps (IVF_PQ) run on. Production runs Milvus
from docker-compose instead."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from loguru import logger

from facesearch.infra.tansu import free_port

# Milvus reads settings from the environment too (key "queryNode.gracefulStopTimeout" is
# QUERYNODE_GRACEFULSTOPTIMEOUT). On 2.3.5 a stopping query node waits for another node to
# take its segments (a standalone server has none) until the server's 1,800 s graceful-stop
# limit, and a restarted server answers its first query only once the previous run's etcd
# sessions expire (30 s TTL). `python -m benchmarks.embedded_milvus` measures both, with
# these settings and without (docs/benchmarks.md, "The embedded Milvus server").
SERVER_ENVIRONMENT = {
    "QUERYNODE_GRACEFULSTOPTIMEOUT": "3",
    "COMMON_GRACEFULSTOPTIMEOUT": "5",
    "COMMON_SESSION_TTL": "10",
}


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
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ | SERVER_ENVIRONMENT,
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


# The embedded profile's server, shared by the processes of one var_dir (see SharedMilvusServer).
LOCK_FILE = "milvus-server.lock"
ADVERTISEMENT = "milvus-server.json"
JOIN_PATIENCE_S = 120.0


class SharedMilvusServer:
    """The embedded profile's Milvus server, with its data in `var_dir/milvus-server`.

    The first process that needs it starts it and holds `var_dir/milvus-server.lock` (an
    flock, released by the kernel however the process ends) while it runs; the others
    connect to the address it advertises in `var_dir/milvus-server.json`. Two servers on one
    data folder would corrupt it, so a server left running by an owner that was killed is
    stopped by the next owner before it starts its own. A long-running process (`service`)
    does not lean on a one-off command's server, which stops when the command ends: it
    waits for that command to finish and starts its own.
    """

    def __init__(self, var_dir: Path, *, patience_s: float = JOIN_PATIENCE_S) -> None:
        self.var_dir = Path(var_dir)
        self.data_dir = self.var_dir / "milvus-server"
        self.service = False
        self.patience_s = patience_s
        self._server: MilvusServer | None = None
        self._lock: Any = None
        self._mutex = threading.Lock()

    @property
    def owned(self) -> bool:
        return self._server is not None

    def uri(self) -> str:
        """The server's address: this process's own, another's, or one started now."""
        with self._mutex:
            if self._server is not None:
                if self._server.process is not None and self._server.process.poll() is None:
                    return self._server.uri
                logger.error("the embedded Milvus server exited (see {}): starting it again", self.data_dir / "server.log")
                self._server = None
                return self._start()
            deadline = time.monotonic() + self.patience_s
            while True:
                if self._take_lock():
                    return self._start()
                entry = self._advertised()
                if entry and (entry.get("service") or not self.service) and answers(entry["uri"]):
                    return str(entry["uri"])
                if time.monotonic() >= deadline:
                    owner = entry.get("pid") if entry else "another process"
                    raise RuntimeError(
                        f"the embedded Milvus server of {self.var_dir} is held by process {owner} and did not "
                        f"become available within {self.patience_s:.0f} s; try again when that command ends"
                    )
                time.sleep(0.5)

    def _take_lock(self) -> bool:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.var_dir / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock = handle
        return True

    def _start(self) -> str:
        try:
            left = self._advertised()
            if left:  # the lock was free, so whoever advertised this is gone
                _stop_orphan(left, self.data_dir)
            logger.info("starting the embedded Milvus server ({})", self.data_dir)
            began = time.monotonic()
            server = MilvusServer(self.data_dir).start()
        except BaseException:
            self._unlock()
            raise
        self._server = server
        assert server.process is not None
        entry = {"pid": os.getpid(), "service": self.service, "uri": server.uri, "server_pid": server.process.pid}
        path = self.var_dir / ADVERTISEMENT
        path.with_suffix(".tmp").write_text(json.dumps(entry))
        path.with_suffix(".tmp").replace(path)
        atexit.register(self.release)
        logger.info("embedded Milvus server answers on {} after {:.1f} s", server.uri, time.monotonic() - began)
        return server.uri

    def _advertised(self) -> dict[str, Any] | None:
        try:
            entry = json.loads((self.var_dir / ADVERTISEMENT).read_text())
            return entry if isinstance(entry, dict) and "uri" in entry else None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        """Stops this process's server (waiting for it to write what it holds); idempotent."""
        with self._mutex:
            if self._server is None:
                return
            self._server.stop()
            self._server = None
            with contextlib.suppress(OSError):
                (self.var_dir / ADVERTISEMENT).unlink()
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases its flock
            self._lock = None


def answers(uri: str) -> bool:
    """Whether something accepts connections at `uri`'s host and port."""
    address = urlparse(uri)
    try:
        with socket.create_connection((address.hostname or "127.0.0.1", address.port or 0), timeout=1.0):
            return True
    except OSError:
        return False


def _stop_orphan(entry: dict[str, Any], data_dir: Path) -> None:
    """Stops the server group an earlier owner started, if it still runs on `data_dir` (a
    pid can be reused: only a milvus-server launched on this folder is stopped)."""
    try:
        group = int(entry["server_pid"])
        command = Path(f"/proc/{group}/cmdline").read_bytes().split(b"\0")
    except (KeyError, ValueError, TypeError, OSError):
        return
    if not any(part.endswith(b"milvus-server") for part in command) or str(data_dir).encode() not in command:
        return
    logger.warning("stopping the embedded Milvus server (process {}) a killed process left running", group)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
