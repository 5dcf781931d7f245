"""Running the job: build source, sinks and flow from configuration, execute, summarise.

`run_job` runs the dataflow as one process (`workers` threads), as one
process of a cluster across hosts (`[cluster]`, from `--process-id` and
`--addresses`: Bytewax's own clustering), or with `processes > 1` as a
cluster of processes on this host (`cluster.py`, the `-p N` shortcut):
worker threads share one GIL, processes do not.

Every process runs the control channel beside the job's steps
(`pipeline.sources.control`): SIGTERM and SIGINT drain the whole cluster
(`stopping.py`), and Kafka readers keep in step. Each process serves
`/metrics`, `/healthz` and `/readyz` (`sinks/health.py`) on
`[metrics] port` (`+ i` for process i of a cluster on this host), keeps its
share of the recovery store, and `run` watches the policy file (`reload.py`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import msgspec
from bytewax.dataflow import Dataflow

from pipeline.config import ClusterConfig, Config
from pipeline.enforce.policy import load_policy
from pipeline.errors import ClusterError, ConfigError
from pipeline.logs import event
from pipeline.sources.control import Control, Input
from sinks.health import Health, serve
from sinks.metrics import Metrics

log = logging.getLogger("shopguard.job")


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


@dataclass
class Outcome:
    """How a run ended, for its closing summary."""

    stopped_by: str = ""  # the signal that stopped it ("SIGTERM to process 1": another's); "" at the end of input
    drained_seconds: float = 0.0  # from the signal to the end of the drain
    process: str = ""  # "process 1 of 2" for one process of a cluster across hosts


def summary(metrics: Metrics, out_dir: str, seconds: float, outcome: Outcome | None = None) -> str:
    """The closing summary of a run: what was read, what was found, where it is."""
    read = metrics.total(metrics.input_records)
    outcome = outcome or Outcome()
    how = f"stopped by {outcome.stopped_by}" if outcome.stopped_by else "finished"
    if outcome.drained_seconds:
        how += f" (drained in {outcome.drained_seconds:.1f} s)"
    lines = [
        f"shopguard {how} in {seconds:.1f} s ({read / max(seconds, 1e-9):,.0f} events/s)"
        + (f", {outcome.process}" if outcome.process else ""),
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
    lines.append(f"  incentives       {int(metrics.total(metrics.incentive_changes)):,}"
                 + _breakdown(metrics.by_label(metrics.incentive_changes, "change")))
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


# A source, as the engine takes it: `(config, metrics) -> Input`, the input step
# (`pipeline.sources.control.Input`). A module-level function, so a cluster's
# processes can each build their own.
Reader = Callable[[Config, Metrics], Input]


def read_file(config: Config, metrics: Metrics) -> Input:
    """`source.kind = "file"`: the NDJSON file (or stdin) at `source.file.path`."""
    from pipeline.engine.dataflow import read_from
    from pipeline.sources.files import FileSource

    return read_from(FileSource(config.source.file.path, config.job.batch_size,
                                max_line_bytes=config.input.max_line_bytes,
                                excerpt_bytes=config.input.dead_letter_raw_bytes))


def read_kafka(config: Config, metrics: Metrics) -> Input:
    """`source.kind = "kafka"`: this process's partitions of `kafka.input_topics` (checked before the job starts)."""
    from pipeline.sources.kafka import read_kafka as read

    return read(config, metrics)


def build_job(config: Config, *, source: Reader, replay: bool, metrics: Metrics, control: Control | None = None,
              health: Health | None = None) -> Dataflow:
    """The dataflow for `config`: its source, the control channel, the shopguard steps, its sinks."""
    from pipeline.engine.dataflow import JobContext, build_flow, write_to
    from sinks.files import JsonlDirSink

    control = control or Control(config.cluster.process_id, config.cluster.processes)
    ctx = JobContext(config=config, policy=load_policy(config.policy_path or None), metrics=metrics, replay=replay)
    metrics.set_policy_version(ctx.policy.version)
    metrics.init_programs(ctx.policy.incentives.programs if ctx.policy.incentives else ())
    read = source(config, metrics)
    read.attach(control, health)
    if config.output.kind == "kafka":
        from sinks.kafka import write_kafka

        write = write_kafka(config, metrics)
    else:
        # The caller prepared the folder (prepare_outputs): a process must not truncate what another wrote.
        write = write_to(JsonlDirSink(config.output.dir, fresh=False))
    return build_flow(ctx, lambda flow: read.add(flow, control), write)


def prepare_outputs(config: Config) -> None:
    """Create the output folder; empty its files unless resuming from recovery (process 0 of a cluster only)."""
    if config.output.kind == "files":
        from sinks.files import JsonlDirSink

        JsonlDirSink(config.output.dir, fresh=not config.recovery.dir and config.cluster.process_id == 0)


def _recovery(config: Config, workers: int, processes: int = 1):
    """(RecoveryConfig or None, epoch length); this process's recovery partitions are created once."""
    from bytewax.recovery import RecoveryConfig

    epoch = timedelta(seconds=config.job.epoch_interval_seconds)
    if not config.recovery.dir:
        return None, epoch
    from pipeline.engine.recovery import ensure_recovery_store

    cluster = config.cluster
    ensure_recovery_store(config.recovery.dir, max(config.recovery.partitions, workers * processes),
                          cluster.process_id, cluster.processes)
    backup = timedelta(seconds=config.recovery.snapshot_interval_seconds)
    return RecoveryConfig(Path(config.recovery.dir), backup), epoch


def check_cluster(cluster: ClusterConfig) -> None:
    """Fail with one line unless `[cluster]` names this process's place in a list of host:port."""
    if not cluster.addresses:
        if cluster.process_id != 0:
            raise ConfigError(f"--process-id {cluster.process_id} needs --addresses: host:port of every process "
                              "of the cluster, comma-separated, in process order")
        return
    if not 0 <= cluster.process_id < len(cluster.addresses):
        raise ConfigError(f"--process-id {cluster.process_id} is not in 0..{len(cluster.addresses) - 1}: "
                          f"--addresses lists {len(cluster.addresses)} processes, this one's index must be among them")
    for address in cluster.addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--addresses: {address!r} is not host:port (e.g. shopguard-0.shopguard:2101)")
    if len(set(cluster.addresses)) != len(cluster.addresses):
        raise ConfigError("--addresses lists one address twice: give each process its own host:port")


# ---- running ------------------------------------------------------------------------------


def run_job(config: Config, *, source: Reader, replay: bool, workers: int, serve_metrics: bool,
            progress: bool, metrics: Metrics | None = None, processes: int = 1,
            outcome: Outcome | None = None) -> Metrics:
    """Run the job until its input ends or a signal stops it; return its metrics (summed over local processes)."""
    metrics = metrics or new_metrics()
    outcome = outcome if outcome is not None else Outcome()
    check_cluster(config.cluster)
    if processes > 1:
        if config.cluster.addresses:
            raise ConfigError("-p N starts a cluster on this host, --process-id/--addresses joins one across "
                              "hosts: give one or the other")
        prepare_outputs(config)
        _recovery(config, workers, processes)  # one store, shared by the processes of this host
        return _run_local_cluster(config, source, replay, workers, processes, serve_metrics, metrics, outcome)
    prepare_outputs(config)
    if config.cluster.addresses:
        outcome.process = f"process {config.cluster.process_id} of {config.cluster.processes}"
    return run_process(config, source=source, replay=replay, workers=workers, serve_metrics=serve_metrics,
                       progress=progress, metrics=metrics, outcome=outcome)


def run_process(config: Config, *, source: Reader, replay: bool, workers: int, serve_metrics: bool, progress: bool,
                metrics: Metrics, outcome: Outcome, port_offset: int = 0) -> Metrics:
    """This process's part of the job (all of it, or one process of a cluster), in this process."""
    from bytewax._bytewax import cli_main

    from pipeline.engine.panics import held_rust_panics
    from pipeline.engine.stopping import GracefulStop

    cluster = config.cluster
    control = Control(cluster.process_id, cluster.processes)
    health = Health(config.metrics.stall_seconds)
    health.register(metrics)
    control.on_poll = functools.partial(health.polled, "control", records=0, waiting=False)
    reload = None if replay else _policy_reload(config, control, metrics)
    # Signals are ours from here: one during start-up stops the job as soon as its dataflow runs.
    stop = GracefulStop(control, health, config.job.stop_grace_seconds,
                        on_hangup=reload.check_soon if reload is not None else None)
    with stop:
        flow = build_job(config, source=source, replay=replay, metrics=metrics, control=control, health=health)
        recovery, epoch = _recovery(config, workers)
        event(log, logging.INFO, "job starting", source=config.source.kind, output=config.output.kind,
              workers=workers, process=cluster.process_id, processes=cluster.processes,
              recovery=config.recovery.dir or "off")
        tune_gc()
        server = _serve(metrics, health, config, port_offset) if serve_metrics else None
        cpu, wall = time.process_time(), time.monotonic()
        try:
            with held_rust_panics(), _peer_failures(cluster), \
                    Progress(metrics) if progress else contextlib.nullcontext(), \
                    reload if reload is not None else contextlib.nullcontext():
                cli_main(flow, workers_per_process=workers, epoch_interval=epoch, recovery_config=recovery,
                         **({"process_id": cluster.process_id, "addresses": list(cluster.addresses)}
                            if cluster.addresses else {}))
            control.finish()
        finally:
            if server is not None:
                server.shutdown()
    outcome.stopped_by = stop.signal or (control.stop_reason if control.stop.is_set() else "")
    outcome.drained_seconds = stop.drained_in
    event(log, logging.INFO, "job ended", stopped_by=outcome.stopped_by or "end of input",
          drained_seconds=round(outcome.drained_seconds, 2), events=int(metrics.total(metrics.input_records)),
          run_seconds=round(time.monotonic() - wall, 3), cpu_seconds=round(time.process_time() - cpu, 3))
    return metrics


@contextlib.contextmanager
def _peer_failures(cluster: ClusterConfig):
    """A lost peer is an expected failure of a cluster process: one line that says what to do."""
    try:
        yield
    except BaseException as err:  # Bytewax's communication threads panic (a BaseException) when a peer dies
        if not cluster.addresses or "thread panic" not in str(err):
            raise
        raise ClusterError(f"process {cluster.process_id} of {cluster.processes} lost its connection to another "
                           "process of the cluster (it stopped or died): start every process again; each resumes "
                           "from its last snapshot") from None


def _policy_reload(config: Config, control: Control, metrics: Metrics):
    from pipeline.engine.reload import PolicyReload

    return PolicyReload(config, control, metrics)


def tune_gc() -> None:
    """Freeze what start-up built and collect less often.

    Per-entity state is long-lived and acyclic; the default thresholds made
    the cyclic collector rescan it every few hundred allocations (about a
    fifth of the job's CPU in profiles).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _serve(metrics: Metrics, health: Health, config: Config, port_offset: int):
    if not config.metrics.port:
        return None
    port = config.metrics.port + port_offset
    server = serve(metrics, health, port, config.metrics.addr)
    event(log, logging.INFO, f"metrics on http://{config.metrics.addr}:{port}/metrics (/healthz, /readyz)",
          port=port)
    return server


def _run_local_cluster(config: Config, source: Reader, replay: bool, workers: int, processes: int,
                       serve_metrics: bool, metrics: Metrics, outcome: Outcome) -> Metrics:
    from pipeline.engine.cluster import free_ports, run_cluster

    addresses = [f"127.0.0.1:{port}" for port in free_ports(processes)]
    # Config's detector tables are a class built at import, which pickle cannot name: send plain data.
    member = functools.partial(_local_member, msgspec.to_builtins(config), source, replay, workers, serve_metrics,
                               addresses)
    for counts, stopped_by, drained in run_cluster(member, processes):
        metrics.absorb(counts)
        outcome.stopped_by = outcome.stopped_by or stopped_by
        outcome.drained_seconds = max(outcome.drained_seconds, drained)
    return metrics


def _local_member(config_data: dict, source: Reader, replay: bool, workers: int, serve_metrics: bool,
                  addresses: list[str], process_id: int):
    """Process `process_id` of a cluster on this host (runs in the child): its counter totals come home."""
    config = msgspec.convert({**config_data, "cluster": {"process_id": process_id, "addresses": addresses}}, Config)
    metrics, outcome = new_metrics(), Outcome()
    run_process(config, source=source, replay=replay, workers=workers, serve_metrics=serve_metrics, progress=False,
                metrics=metrics, outcome=outcome, port_offset=process_id)
    return metrics.counter_values(), outcome.stopped_by, outcome.drained_seconds
