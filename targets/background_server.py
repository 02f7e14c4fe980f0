"""An ASGI app served by uvicorn in a daemon thread of this process, on a port it binds first (0: a free one)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

START_TIMEOUT_S = 20.0


class BackgroundServer:
    """``BackgroundServer(app, host, port).start()``; ``.port`` is the bound port, ``.close()`` stops it."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, name: str = "server") -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> BackgroundServer:
        """Bind, then serve; a port already taken is a RuntimeError that says so."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it; without it each reply waits ~40 ms on delayed ACKs
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise RuntimeError(f"{self.name}: cannot listen on {self.host}:{self.port} ({exc.strerror}); use port 0 for a free one") from None
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
