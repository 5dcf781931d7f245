"""Several processes of one Bytewax cluster on this host: the `-p N` shortcut.

Worker threads of one process share one GIL, so real scale-out needs
processes. Bytewax joins processes into a cluster when each is started with
its index and the addresses of all (`--process-id`, `--addresses`: its
runner's `-i`/`-a`); processes started separately, each with `-w`, are
not a cluster and each would do all the work. Across hosts each process is
started on its own (`shopguard run --process-id I --addresses ...`); on one
host `run_cluster` starts them for you: with `spawn` (a fresh interpreter
each, no forked librdkafka or Bytewax threads), on free loopback ports,
and waits for all. If one fails the others are stopped and `ClusterError`
says which one and why.

`member(process_id)` runs in each process and returns a picklable result,
which `run_cluster` returns in process order. It must be picklable: a
module-level function or a `functools.partial` of one.

Signals: the children run in their own process group, so a Ctrl-C at the
terminal reaches only this process, which passes every SIGTERM and SIGINT
on to each child once: the first drains the cluster, a second ends it at
once (`stopping.py`). A child whose parent dies gets SIGTERM (Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from typing import Any, Callable

from pipeline.errors import ClusterError, ShopguardError, find_error
from pipeline.logs import current_setup, event

log = logging.getLogger("shopguard.cluster")
POLL_S = 0.2
STOP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports picked by the OS (held open until all are picked)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def run_cluster(member: Callable[[int], Any], processes: int) -> list[Any]:
    """Run `member(i)` in `processes` child processes; wait for all; their results in process order."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    context = multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    log_setup = current_setup()
    children = [context.Process(target=_run_member, args=(member, i, results, log_setup),
                                name=f"shopguard-process-{i}") for i in range(processes)]
    for child in children:
        child.start()
    try:
        with _forward_signals(children):
            return _wait(children, results)
    finally:
        _stop(children)


@contextlib.contextmanager
def _forward_signals(children: list):
    """SIGTERM and SIGINT to this process go on to every child (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait(children: list, results) -> list[Any]:
    """Wait for every child; the first failure stops the rest and raises."""
    collected: dict[int, Any] = {}
    errors: dict[int, str] = {}
    running = list(children)
    while running:
        for child in list(running):
            child.join(POLL_S / len(running))
            if child.exitcode is None:
                continue
            running.remove(child)
            _drain(results, collected, errors)
            index = children.index(child)
            if child.exitcode != 0 or index in errors:
                reason = errors.get(index) or f"exit code {child.exitcode}"
                raise ClusterError(f"process {index} of {len(children)} failed: {reason}")
    _drain(results, collected, errors)
    if errors:
        index = min(errors)
        raise ClusterError(f"process {index} of {len(children)} failed: {errors[index]}")
    return [collected.get(i) for i in range(len(children))]


def _drain(results, collected: dict, errors: dict) -> None:
    while not results.empty():
        index, ok, value = results.get()
        (collected if ok else errors)[index] = value


def _stop(children: list) -> None:
    for child in children:
        if child.is_alive():
            child.terminate()
    for child in children:
        child.join(STOP_TIMEOUT_S)
        if child.is_alive():
            child.kill()
            child.join()


def _run_member(member, process_id, results, log_setup) -> None:
    """One process of the cluster (runs in the child)."""
    from pipeline.logs import setup_logging

    os.setpgrp()  # a terminal's Ctrl-C reaches the parent only; it passes signals on
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    setup_logging(*log_setup)
    try:
        results.put((process_id, True, member(process_id)))
    except BaseException as err:  # reported to the parent, which names the process
        expected = err if isinstance(err, ShopguardError) else find_error(err)
        if expected is None:  # a bug: keep its traceback
            logging.getLogger("shopguard.cluster").exception("process %d failed", process_id)
        message = str(expected).splitlines()[0] if expected is not None else f"{type(err).__name__}: {err}"
        event(log, logging.ERROR, message, process=process_id, error_class=type(expected or err).__name__)
        results.put((process_id, False, message))
        raise SystemExit(1) from None
