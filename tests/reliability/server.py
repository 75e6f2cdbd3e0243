"""`facesearch up` as a subprocess on 127.0.0.1, for tests that stop it the hard way.

Settings go in as FACESEARCH_* environment variables; the process runs in its own session
so that a kill -9 hits it alone (as a crash would), and its RSS is read from /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from facesearch.infra.tansu import free_port

ROOT = Path(__file__).resolve().parents[2]


class UpProcess:
    def __init__(self, settings: dict[str, Any], log: Path) -> None:
        self.env = os.environ | {f"FACESEARCH_{k.upper()}": str(v) for k, v in settings.items()}
        self.env["PYTHONPATH"] = str(ROOT)  # this checkout's modules first
        self.log = log
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> UpProcess:
        self.port = free_port()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "facesearch", "up", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"facesearch up exited with {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"facesearch up did not answer within {timeout} s: {self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 45.0) -> int:
        """Sends `sig` and waits for the exit; a SIGTERM that hangs becomes a SIGKILL."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"facesearch up ignored signal {sig} for {timeout} s") from None
        return self.process.returncode

    def kill_session(self) -> None:
        """Ends whatever the process left running in its session (at teardown)."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
