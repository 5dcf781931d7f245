"""`shopguard run`: the long-running job (simulator, file or Kafka, by configuration)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from pipeline.cli.common import (
    add_log_options, address_list, config_overrides, non_negative_int, positive_float, positive_int,
)
from pipeline.config import load
from pipeline.errors import ConfigError
from pipeline.logs import setup_logging


def reader_for(kind: str):
    """The engine's reader for `source.kind` (the simulator's comes from the simulator app)."""
    from pipeline.engine.job import read_file, read_kafka

    if kind == "simulator":
        from simulator.source import read_simulator

        return read_simulator
    readers = {"file": read_file, "kafka": read_kafka}
    if kind not in readers:
        raise ConfigError(f"source.kind = {kind!r} is unknown; use simulator, file or kafka")
    return readers[kind]


def load_job_code() -> None:
    """Import the dataflow (and river...) before the clock starts, so events/s measures events."""
    import pipeline.engine.dataflow  # noqa: F401


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.engine.job import Outcome, run_job, summary

    config = load(args.config, config_overrides(args))
    setup_logging(config.log.format, config.log.level)
    source = reader_for(config.source.kind)
    load_job_code()
    started = time.monotonic()
    outcome = Outcome()
    metrics = run_job(config, source=source, replay=False, workers=args.workers, processes=args.processes,
                      serve_metrics=True, progress=not args.quiet, outcome=outcome)
    print(summary(metrics, config.output.dir, time.monotonic() - started, outcome))
    return 0


def add_run_command(sub: Any) -> argparse.ArgumentParser:
    run = sub.add_parser("run", help="the long-running job (simulator, file or Kafka, by configuration)",
                         description="Run the job. By default the built-in simulator is the source, "
                                     "outputs go to ./out and metrics are served on 127.0.0.1:9464.")
    run.add_argument("--config", metavar="FILE", help="TOML laid over config/shopguard.toml")
    run.add_argument("--policy", metavar="FILE", help="policy TOML (default config/policy.toml)")
    run.add_argument("--source", choices=["simulator", "file", "kafka"], help="override source.kind")
    run.add_argument("--events", metavar="PATH", help="NDJSON file for --source file (- = stdin)")
    run.add_argument("--out", metavar="DIR", help="output folder (default out)")
    run.add_argument("--metrics-port", type=int, metavar="PORT", help="serve /metrics here (0 = off)")
    run.add_argument("--seed", type=int, help="simulator seed")
    run.add_argument("--hours", type=positive_float, help="simulated hours")
    run.add_argument("--scale", type=positive_float, help="simulator population scale")
    run.add_argument("--speedup", type=float, help="pace the simulator: event time x N wall clock (0 = max)")
    run.add_argument("--world", metavar="NAME",
                     help="simulated marketplace: home, harbour, sakura, atelier, pampa or a file")
    run.add_argument("--start", metavar="TIME",
                     help="simulator's first event time: auto (ends now; starts now when paced), now or ISO-8601")
    run.add_argument("--feedback", action=argparse.BooleanOptionalAction, default=None,
                     help="simulator: appeals, decisions and lessons for the run's own violations (file outputs)")
    run.add_argument("--recovery-dir", metavar="DIR", help="Bytewax recovery snapshots (resume after a crash)")
    run.add_argument("-w", "--workers", type=positive_int, default=1, help="worker threads per process (default 1)")
    run.add_argument("-p", "--processes", type=positive_int, default=1,
                     help="processes of one Bytewax cluster on this host (threads share a GIL; processes scale)")
    run.add_argument("-i", "--process-id", type=non_negative_int, metavar="I",
                     help="this process's index in a cluster across hosts (with --addresses)")
    run.add_argument("-a", "--addresses", type=address_list, metavar="HOST:PORT,...",
                     help="every process of the cluster, in process order (Bytewax's cluster traffic)")
    run.add_argument("--stop-grace-seconds", type=positive_float, metavar="S",
                     help="SIGTERM/SIGINT drain the job; after this long it exits at once (default 30)")
    add_log_options(run)
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    run.set_defaults(func=cmd_run)
    return run
