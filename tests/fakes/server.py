"""Run an ASGI app on 127.0.0.1 in a background thread: real HTTP for fakes of
outside services."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn


class ServerThread:
    """`with ServerThread(app) as server:` serves `app` at `server.base_url` until exit."""

    def __init__(self, app, *, host: str = "127.0.0.1", lifespan: str = "off") -> None:
        self.app = app
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this; without it Nagle + delayed ACK add 40 ms a response.
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, 0))  # a free port, picked by the kernel
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan,
                                timeout_keep_alive=30, backlog=256)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"fake-server-{self.port}", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class CountingApp:
    """Wraps an ASGI app and counts every HTTP request that reaches it, whatever the path."""

    def __init__(self, app) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            with self._lock:
                self.count += 1
        await self.app(scope, receive, send)
