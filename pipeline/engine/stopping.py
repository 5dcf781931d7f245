"""Stopping like a service: SIGTERM and SIGINT drain the job, a second signal ends it at once.

Bytewax turns SIGINT into a panic and exits 1, and SIGTERM kills at once,
so `GracefulStop` takes both signals over while the dataflow runs. The
first one asks the control channel to stop (`Control.request_stop`): every
process of the cluster stops reading, its input partitions end, and the
dataflow drains as at the end of a file: the batch in flight is finished,
held ledger items applied, sinks flushed, a last recovery snapshot taken;
the command then prints its closing summary and exits 0. A second signal,
or a drain longer than `[job] stop_grace_seconds`, exits at once with one
line (the next start resumes from the last snapshot, as after a crash).
SIGHUP, when a handler for it is given, asks for a policy reload.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any, Callable

from pipeline.logs import event

log = logging.getLogger("shopguard.job")
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """Installs the handlers for the life of a `with` block (main thread only; elsewhere it does nothing)."""

    def __init__(self, control: Any, health: Any, grace_seconds: float, *,
                 on_hangup: Callable[[], None] | None = None, exit_now: Callable[[int], None] = os._exit) -> None:
        self.control, self.health = control, health
        self.grace_seconds = grace_seconds
        self.on_hangup = on_hangup
        self.exit_now = exit_now
        self.signal = ""  # the first signal received
        self.started = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
            if self.on_hangup is not None and hasattr(signal, "SIGHUP"):
                self._previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: self.on_hangup())
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signal:
            self._exit(f"{name} again while stopping: exiting at once; the next start resumes from the last "
                       "snapshot", 128 + signum)
            return
        self.signal, self.started = name, time.monotonic()
        self.health.stopping = f"{name} received, draining"
        event(log, logging.INFO, "stopping: finishing the batch in flight, flushing sinks, taking a last snapshot "
              "(send the signal again to exit at once)", signal=name, grace_seconds=self.grace_seconds)
        self.control.request_stop(name)
        timer = threading.Timer(self.grace_seconds, self._exit, args=(
            f"did not drain within {self.grace_seconds:g} s of {name} ([job] stop_grace_seconds): exiting at once; "
            "the next start resumes from the last snapshot", 1))
        timer.daemon = True
        timer.start()

    def _exit(self, message: str, code: int) -> None:
        event(log, logging.WARNING, message, exit_code=code)
        for handler in logging.getLogger("shopguard").handlers:
            handler.flush()
        self.exit_now(code)

    @property
    def drained_in(self) -> float:
        return time.monotonic() - self.started if self.signal else 0.0
