"""Serving the workbench with uvicorn: in the foreground (`shopguard console`) or in a thread (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Iterator

import uvicorn


def bind(addr: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with `getsockname`)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP, and with
    # Nagle on every keep-alive response waits 40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def server(app: Any, log_level: str = "warning") -> uvicorn.Server:
    # No proxy headers: the client address is the peer's, and nothing is trusted from X-Forwarded-*.
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, loop="asyncio", access_log=False,
                                         proxy_headers=False, server_header=False, lifespan="off"))


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def serve_in_thread(app: Any, addr: str = "127.0.0.1", port: int = 0, timeout_s: float = 20.0) -> Iterator[str]:
    """Serve `app` in a background thread; yields its base URL and stops it afterwards."""
    sock = bind(addr, port)
    srv = server(app)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, name="shopguard-workbench-http",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the workbench server did not start")
        time.sleep(0.02)
    try:
        yield base_url(sock)
    finally:
        srv.should_exit = True
        thread.join(timeout_s)
        sock.close()
