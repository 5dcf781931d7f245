"""Running the job: build source, sinks and flow from configuration, execute, summarise.

`run_job` runs the dataflow in this process (`workers` threads) or, with
`processes > 1`, as a Bytewax cluster of processes (`cluster.py`):
worker threads share one GIL, processes do not. In a cluster each process
serves its own metrics on `metrics.port + process_id` and sends its counter
totals back for the closing summary.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from bytewax.dataflow import Dataflow

from pipeline.config import Config
from pipeline.enforce.policy import load_policy
from sinks.metrics import Metrics


class Progress:
    """Prints a progress line every `every` seconds from the metrics while a job runs."""

    def __init__(self, metrics: Metrics, every: float = 2.0, stream=sys.stderr) -> None:
        self.metrics, self.every, self.stream = metrics, every, stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shopguard-progress", daemon=True)
        self.started = time.monotonic()

    def __enter__(self) -> "Progress":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        last_n, last_t = 0.0, self.started
        while not self._stop.wait(self.every):
            m, now = self.metrics, time.monotonic()
            n = m.total(m.input_records)
            rate = (n - last_n) / max(now - last_t, 1e-9)
            last_n, last_t = n, now
            print(
                f"[{now - self.started:6.1f}s] {int(n):>10,} events read ({rate:,.0f}/s) | "
                f"{int(m.total(m.violations)):,} violations | {int(m.total(m.actions)):,} actions | "
                f"{int(m.total(m.dead_letters)):,} dead letters",
                file=self.stream, flush=True,
            )


def summary(metrics: Metrics, out_dir: str, seconds: float) -> str:
    """The closing summary of a run: what was read, what was found, where it is."""
    read = metrics.total(metrics.input_records)
    lines = [
        f"shopguard finished in {seconds:.1f} s ({read / max(seconds, 1e-9):,.0f} events/s)",
        f"  events read      {int(read):,}",
        f"  blank lines      {int(metrics.total(metrics.blank_records)):,}",
        f"  duplicates       {int(metrics.total(metrics.duplicates)):,}",
        f"  late events      {int(metrics.total(metrics.late_events)):,}",
        f"  dead letters     {int(metrics.total(metrics.dead_letters)):,}"
        + _breakdown(metrics.by_label(metrics.dead_letters, "reason")),
        f"  violations       {int(metrics.total(metrics.violations)):,}",
    ]
    for vtype, n in sorted(metrics.by_label(metrics.violations, "violation_type").items()):
        lines.append(f"    {vtype:<28}{int(n):,}")
    lines.append(f"  actions          {int(metrics.total(metrics.actions)):,}"
                 + _breakdown(metrics.by_label(metrics.actions, "action")))
    lines.append(f"  review queue     {int(metrics.total(metrics.review_queue)):,}")
    lines.append(f"  outputs in       {out_dir}/")
    return "\n".join(lines)


def _breakdown(counts: dict[str, float]) -> str:
    if not counts:
        return ""
    return "  (" + ", ".join(f"{k}: {int(v):,}" for k, v in sorted(counts.items())) + ")"


# ---- building ---------------------------------------------------------------------------


def new_metrics() -> Metrics:
    """The job's metrics, every labelled counter already at zero for the label values it can take."""
    from detectors.models.anomaly import ANOMALY_MODELS
    from detectors.registry import registry
    from pipeline.contract.events import DECODE_REASONS, TOPIC_OF_TYPE
    from pipeline.enforce.ledger import REJECTION_REASONS
    from pipeline.enforce.policy import ACTION_KINDS

    metrics = Metrics()
    detectors = registry().detector_ids()
    models = tuple(ANOMALY_MODELS.values())
    metrics.init_label_values(
        detectors=detectors, event_types=TOPIC_OF_TYPE, actions=ACTION_KINDS,
        dead_letter_reasons=sorted(DECODE_REASONS) + list(REJECTION_REASONS) + ["detector_error"],
        anomaly_models=models,
        drift_signals=[f"violation_rate:{t}" for t in registry().catalog] + [f"anomaly_score:{m}" for m in models],
    )
    return metrics


# A source, as the engine takes it: `(config, metrics) -> read`, where `read(flow)` adds the
# input step. A module-level function, so a cluster's processes can each build their own.
Reader = Callable[[Config, Metrics], Callable[[Dataflow], Any]]


def read_file(config: Config, metrics: Metrics) -> Callable[[Dataflow], Any]:
    """`source.kind = "file"`: the NDJSON file (or stdin) at `source.file.path`."""
    from pipeline.engine.dataflow import read_from
    from pipeline.sources.files import FileSource

    return read_from(FileSource(config.source.file.path, config.job.batch_size,
                                max_line_bytes=config.input.max_line_bytes,
                                excerpt_bytes=config.input.dead_letter_raw_bytes))


def read_kafka(config: Config, metrics: Metrics) -> Callable[[Dataflow], Any]:
    """`source.kind = "kafka"`: every partition of `kafka.input_topics` (checked before the job starts)."""
    from pipeline.sources.kafka import read_kafka as read

    return read(config, metrics)


def build_job(config: Config, *, source: Reader, replay: bool, metrics: Metrics) -> Dataflow:
    """The dataflow for `config`: its source, the shopguard steps, its sinks."""
    from pipeline.engine.dataflow import JobContext, build_flow, write_to
    from sinks.files import JsonlDirSink

    ctx = JobContext(config=config, policy=load_policy(config.policy_path or None), metrics=metrics, replay=replay)
    read = source(config, metrics)
    if config.output.kind == "kafka":
        from sinks.kafka import write_kafka

        write = write_kafka(config, metrics)
    else:
        # The caller prepared the folder (prepare_outputs): a process must not truncate what another wrote.
        write = write_to(JsonlDirSink(config.output.dir, fresh=False))
    return build_flow(ctx, read, write)


def prepare_outputs(config: Config) -> None:
    """Create the output folder; empty its files unless resuming from recovery."""
    if config.output.kind == "files":
        from sinks.files import JsonlDirSink

        JsonlDirSink(config.output.dir, fresh=not config.recovery.dir)


def _recovery(config: Config, workers: int, processes: int):
    """(RecoveryConfig or None, epoch length): recovery partitions are created once."""
    from bytewax.recovery import RecoveryConfig

    if not config.recovery.dir:
        # Epochs exist to snapshot state; without recovery nobody reads the
        # snapshots, so long epochs save pickling every shard every few seconds.
        return None, timedelta(hours=1)
    from pipeline.engine.recovery import ensure_recovery_store

    ensure_recovery_store(config.recovery.dir, max(8, workers * processes))
    backup = timedelta(seconds=config.recovery.snapshot_interval_seconds)
    return RecoveryConfig(Path(config.recovery.dir), backup), timedelta(seconds=config.job.epoch_interval_seconds)


# ---- running ------------------------------------------------------------------------------


def run_job(config: Config, *, source: Reader, replay: bool, workers: int, serve_metrics: bool,
            progress: bool, metrics: Metrics | None = None, processes: int = 1) -> Metrics:
    """Run the job to completion; return its metrics (summed over processes in a cluster)."""
    metrics = metrics or new_metrics()
    prepare_outputs(config)
    if processes > 1:
        return _run_cluster(config, source, replay, workers, processes, serve_metrics, metrics)
    from bytewax._bytewax import cli_main

    flow = build_job(config, source=source, replay=replay, metrics=metrics)
    recovery, epoch = _recovery(config, workers, 1)
    tune_gc()
    server = _serve(metrics, config, 0) if serve_metrics else None
    try:
        with Progress(metrics) if progress else contextlib.nullcontext():
            cli_main(flow, workers_per_process=workers, epoch_interval=epoch, recovery_config=recovery)
    finally:
        if server is not None:
            server.shutdown()
    return metrics


def tune_gc() -> None:
    """Freeze what start-up built and collect less often.

    Per-entity state is long-lived and acyclic; the default thresholds made
    the cyclic collector rescan it every few hundred allocations (about a
    fifth of the job's CPU in profiles).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _serve(metrics: Metrics, config: Config, process_id: int):
    if not config.metrics.port:
        return None
    port = config.metrics.port + process_id
    server = metrics.serve(port, config.metrics.addr)
    print(f"metrics on http://{config.metrics.addr}:{port}/metrics", file=sys.stderr)
    return server


def _run_cluster(config: Config, source: Reader, replay: bool, workers: int, processes: int,
                 serve_metrics: bool, metrics: Metrics) -> Metrics:
    from pipeline.engine.cluster import run_cluster

    _, epoch = _recovery(config, workers, processes)
    build = functools.partial(_cluster_process, config, source, replay, serve_metrics)
    backup = timedelta(seconds=config.recovery.snapshot_interval_seconds)
    for counts in run_cluster(build, processes, workers, epoch_interval=epoch,
                              recovery_dir=config.recovery.dir or None, backup_interval=backup):
        metrics.absorb(counts)
    return metrics


def _cluster_process(config: Config, source: Reader, replay: bool, serve_metrics: bool, process_id: int):
    """One process of a cluster: its own metrics (served on port + process_id), totals back at the end."""
    metrics = new_metrics()
    flow = build_job(config, source=source, replay=replay, metrics=metrics)
    server = _serve(metrics, config, process_id) if serve_metrics else None
    tune_gc()

    def finish() -> list:
        if server is not None:
            server.shutdown()
        return metrics.counter_values()

    return flow, finish
