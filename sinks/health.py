"""Health and readiness on the metrics port: `/healthz`, `/readyz` beside `/metrics`.

`/healthz` (liveness) answers 200 while the process is alive and its
dataflow is not wedged: its inputs are polled, and input that is waiting
gets read. It answers 503 with the reason when no input was polled for
`[metrics] stall_seconds` (a worker stuck in a step) or input was waiting
that long with nothing read. Before the dataflow has started (loading
recovery snapshots can take minutes) it answers 200 `starting`: that is
what Kubernetes' startup probe waits through.

`/readyz` answers 200 once the dataflow runs (recovery loaded, inputs
built) and every readiness check passes (the Kafka clients reach their
brokers), and 503 with the reason otherwise, also while the job drains
after SIGTERM.

The same facts are gauges: `shopguard_up` (1 while the dataflow runs),
`shopguard_ready`, `shopguard_input_progress_timestamp_seconds`, and
`shopguard_build_info` (the versions this process runs).

>>> clock = [100.0]
>>> health = Health(stall_seconds=60, clock=lambda: clock[0])
>>> health.alive(), health.ready()
((True, 'starting'), (False, 'starting: loading recovery and building inputs'))
>>> health.polled("kafka-input", records=500, waiting=True); clock[0] += 61; health.alive()
(False, 'input kafka-input: nothing polled for 61 s (a step is stuck)')
>>> health.polled("kafka-input", records=0, waiting=True); health.alive()
(False, 'input kafka-input: waiting but nothing read for 61 s')
>>> health.polled("kafka-input", records=0, waiting=False); health.alive(), health.ready()
((True, 'ok'), (True, 'ok'))
"""

from __future__ import annotations

import platform
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from pipeline.errors import SetupError
from sinks.metrics import NAMESPACE, Metrics

# A readiness check: None when ready, else the reason in a few words.
Check = Callable[[], "str | None"]


class _Input:
    __slots__ = ("polled", "progressed", "waiting")

    def __init__(self, now: float) -> None:
        self.polled = self.progressed = now
        self.waiting = False


class Health:
    """What `/healthz` and `/readyz` answer, fed by the job's inputs as the dataflow runs."""

    def __init__(self, stall_seconds: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.running = False  # the dataflow polls its inputs (recovery loaded, inputs built)
        self.stopping = ""  # why the job drains (a signal), once it does
        self.progress_wall = 0.0  # Unix time of the last input batch with records (for the gauge)
        self.inputs: dict[str, _Input] = {}
        self.checks: dict[str, Check] = {}
        self._lock = threading.Lock()

    def polled(self, part: str, *, records: int, waiting: bool) -> None:
        """Input `part` was polled: `records` read now, `waiting` whether it has more than it gave."""
        now = self.clock()
        with self._lock:
            self.running = True
            state = self.inputs.get(part)
            if state is None:
                state = self.inputs[part] = _Input(now)
            state.polled, state.waiting = now, waiting
            if records:
                state.progressed, self.progress_wall = now, time.time()

    def ended(self, part: str) -> None:
        """Input `part` ended: it is no longer watched."""
        with self._lock:
            self.inputs.pop(part, None)

    def add_check(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def alive(self) -> tuple[bool, str]:
        """(alive, why): not alive when an input is stuck or waits unread for `stall_seconds`."""
        if not self.running:
            return True, "starting"
        now = self.clock()
        with self._lock:
            for part, state in sorted(self.inputs.items()):
                if now - state.polled > self.stall_seconds:
                    return False, f"input {part}: nothing polled for {now - state.polled:.0f} s (a step is stuck)"
                if state.waiting and now - state.progressed > self.stall_seconds:
                    return False, f"input {part}: waiting but nothing read for {now - state.progressed:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """(ready, why): the dataflow runs and every check passes."""
        if self.stopping:
            return False, f"stopping: {self.stopping}"
        if not self.running:
            return False, "starting: loading recovery and building inputs"
        for name, check in self.checks.items():
            reason = check()
            if reason:
                return False, f"{name}: {reason}"
        return True, "ok"

    def register(self, metrics: Metrics) -> None:
        """Export these facts as gauges of `metrics` (computed at each scrape)."""
        r = metrics.registry
        Gauge("up", "1 while the dataflow runs (recovery loaded, inputs polled), 0 before and while stopping.",
              namespace=NAMESPACE, registry=r).set_function(lambda: float(self.running and not self.stopping))
        Gauge("ready", "1 when /readyz answers 200: running, connected to its source and sink.",
              namespace=NAMESPACE, registry=r).set_function(lambda: float(self.ready()[0]))
        Gauge("input_progress_timestamp_seconds", "Unix time an input batch last carried records.",
              namespace=NAMESPACE, registry=r).set_function(lambda: self.progress_wall)
        if getattr(metrics, "build_info", None) is None:  # sinks/metrics.py may define it itself
            metrics.build_info = Gauge(
                "build_info", "Always 1: the versions this process runs (shopguard, Bytewax, Python).",
                ["version", "bytewax_version", "python_version"], namespace=NAMESPACE, registry=r)
            metrics.build_info.labels(_version("shopguard"), _version("bytewax"), platform.python_version()).set(1)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def serve(metrics: Metrics, health: Health, port: int, addr: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve `/metrics`, `/healthz` and `/readyz` on `addr:port` from a daemon thread; returns the server."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, why = health.alive() if path == "/healthz" else health.ready()
                self._answer(200 if ok else 503, f"{why}\n".encode(), "text/plain; charset=utf-8")
            else:
                self._answer(404, b"/metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # probes every few seconds would flood the log
            pass

    try:
        server = ThreadingHTTPServer((addr, port), Handler)
    except OSError as err:
        raise SetupError(f"cannot serve metrics on {addr}:{port} ({err.strerror}): stop whatever uses the port, "
                         "or pass --metrics-port (0 turns the endpoint off)") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="shopguard-http", daemon=True).start()
    return server
