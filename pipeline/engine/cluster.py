"""Several processes running one dataflow as one Bytewax cluster.

Worker threads of one process share one GIL, so real scale-out needs
processes. Bytewax joins processes into a cluster when each is started with
its index and the addresses of all (`cli_main(..., process_id=i,
addresses=[...])`); processes started separately, each with `-w`, are not a
cluster and each would do all the work. `run_cluster` starts the processes
(with `spawn`: a fresh interpreter each, no forked librdkafka or Bytewax
threads), gives them free loopback ports, and waits for all of them. If
one fails the others are stopped and `ClusterError` says which one and why.

`build(process_id)` runs in each process and returns the dataflow, or
`(dataflow, finish)`, where `finish()` runs after the dataflow completes and
its picklable result is returned by `run_cluster` (e.g. metric totals for
the closing summary). It must be picklable: a module-level function or a
`functools.partial` of one.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from pipeline.errors import ClusterError

POLL_S = 0.2
STOP_TIMEOUT_S = 10.0


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports picked by the OS (held open until all are picked)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def run_cluster(
    build: Callable[[int], Any],
    processes: int,
    workers: int,
    *,
    epoch_interval: timedelta | None = None,
    recovery_dir: str | Path | None = None,
    backup_interval: timedelta | None = None,
    addresses: list[str] | None = None,
) -> list[Any]:
    """Run `build(i)`'s dataflow in `processes` processes of `workers` threads each; wait for all.

    Returns each process's `finish()` result (None where `build` gave no
    `finish`), in process order. `recovery_dir` must already hold the
    recovery partitions (`pipeline.engine.recovery.ensure_recovery_store`).
    """
    if processes < 1 or workers < 1:
        raise ValueError(f"processes and workers must be >= 1, got {processes} and {workers}")
    addresses = addresses or [f"127.0.0.1:{port}" for port in free_ports(processes)]
    context = multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    children = [
        context.Process(
            target=_run_process,
            args=(build, i, addresses, workers, epoch_interval, recovery_dir, backup_interval, results),
            name=f"shopguard-process-{i}",
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    try:
        return _wait(children, results)
    finally:
        _stop(children)


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
            while not results.empty():
                index, ok, value = results.get()
                (collected if ok else errors)[index] = value
            index = children.index(child)
            if child.exitcode != 0 or index in errors:
                reason = errors.get(index) or f"exit code {child.exitcode}"
                raise ClusterError(f"process {index} of {len(children)} failed: {reason}")
    while not results.empty():
        index, ok, value = results.get()
        (collected if ok else errors)[index] = value
    if errors:
        index = min(errors)
        raise ClusterError(f"process {index} of {len(children)} failed: {errors[index]}")
    return [collected.get(i) for i in range(len(children))]


def _stop(children: list) -> None:
    for child in children:
        if child.is_alive():
            child.terminate()
    for child in children:
        child.join(STOP_TIMEOUT_S)
        if child.is_alive():
            child.kill()
            child.join()


def _run_process(build, process_id, addresses, workers, epoch_interval, recovery_dir, backup_interval, results):
    """One process of the cluster (runs in the child)."""
    from bytewax._bytewax import cli_main
    from bytewax.recovery import RecoveryConfig

    try:
        built = build(process_id)
        flow, finish = built if isinstance(built, tuple) else (built, None)
        recovery = RecoveryConfig(Path(recovery_dir), backup_interval) if recovery_dir else None
        cli_main(flow, workers_per_process=workers, process_id=process_id, addresses=addresses,
                 epoch_interval=epoch_interval, recovery_config=recovery)
        results.put((process_id, True, finish() if finish else None))
    except BaseException as err:  # reported to the parent, which names the process
        traceback.print_exc()
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        results.put((process_id, False, last))
        raise SystemExit(1) from None
