"""The server profile's process roles as subprocesses, for tests that kill them the hard way,
and a reader of the event store that says how far an import got.

Each role runs as production runs it (`facesearch run relay|projections|worker`, the API
under uvicorn, the CLI for an import) with its settings as FACESEARCH_* variables, in a
session of its own: a kill -9 hits that session and nothing else, as the death of its
container would (uvicorn's worker processes die with it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from commands.app import FaceSearchApp
from commands.envelopes import to_envelope
from domain.envelope import EventEnvelope

ROOT = Path(__file__).resolve().parents[2]

# `python -m` arguments of the long-running roles (docker-compose.yml runs the same).
ROLE_ARGS = {role: ["facesearch", "run", role] for role in ("relay", "projections", "worker")}


def api_args(port: int, workers: int = 2) -> list[str]:
    return ["uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]
ANALYSIS_EVENTS = ("FacesDetected", "NoFacesFound")


def role_env(settings: dict[str, Any]) -> dict[str, str]:
    env = os.environ | {f"FACESEARCH_{k.upper()}": str(v) for k, v in settings.items()}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's modules first
    return env


def facesearch_cli(env: dict[str, str], *args: str, stdin: bytes | None = None, timeout: float = 120) -> str:
    """Runs `facesearch ARGS` (or `python -m MODULE` when args[0] is "-m") to the end; its stdout."""
    command = [sys.executable, *args] if args[0] == "-m" else [sys.executable, "-m", "facesearch", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, input=stdin, capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited with {done.returncode}: {done.stderr.decode(errors='replace')[-3000:]}")
    return done.stdout.decode()


class RoleProcess:
    """One role (`python -m ARGS`); `start` again after `kill` runs a new one, logging to the same file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> RoleProcess:
        # Output to a file: a pipe nobody reads fills up and blocks the process.
        with open(self.log, "ab") as log:
            log.write(f"\n===== start {self.starts + 1} of {self.name}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", *self.args], cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.starts += 1
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9 of the role's session, and wait for its process to be gone."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then whatever is left of its session gets SIGKILL (teardown)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class EventLedger:
    """Every event of the store, read as it arrives (each `refresh` reads only new ones)."""

    def __init__(self, app: FaceSearchApp) -> None:
        self.app = app
        self.events: list[EventEnvelope] = []
        self.types: Counter[str] = Counter()

    def refresh(self) -> EventLedger:
        after = self.events[-1].notification_id if self.events else 0
        while batch := self.app.recorder.select_notifications(start=after, limit=500, inclusive_of_start=False):
            for notification in batch:
                envelope = to_envelope(self.app, notification)
                self.events.append(envelope)
                self.types[envelope.event_type] += 1
            after = batch[-1].id
        return self

    @property
    def imported(self) -> int:
        return self.types["PhotoImported"]

    @property
    def analysed(self) -> int:
        return sum(self.types[t] for t in ANALYSIS_EVENTS)

    def of_type(self, *types: str) -> list[EventEnvelope]:
        return [e for e in self.events if e.event_type in types]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(poll)
