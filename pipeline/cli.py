"""The `shopguard` command line: run, replay, simulate, report, diff, console.

Every command explains itself with `--help`. Wrong arguments and bad
configuration end with one line that says what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from pipeline.config import ConfigError, load
from pipeline.job import run_job, summary

PROG = "shopguard"


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line that points at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


# ---- commands ----------------------------------------------------------------------------


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags laid over the configuration file."""
    o: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        if value is None:
            return
        node = o
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    put("output.dir", getattr(args, "out", None))
    put("metrics.port", getattr(args, "metrics_port", None))
    put("source.kind", getattr(args, "source", None))
    put("source.file.path", getattr(args, "events", None))
    put("source.simulator.seed", getattr(args, "seed", None))
    put("source.simulator.hours", getattr(args, "hours", None))
    put("source.simulator.scale", getattr(args, "scale", None))
    put("source.simulator.speedup", getattr(args, "speedup", None))
    put("recovery.dir", getattr(args, "recovery_dir", None))
    put("policy_path", getattr(args, "policy", None))
    return o


def _load_job_code() -> None:
    """Import the dataflow (and river, scipy...) before the clock starts, so events/s measures events."""
    import pipeline.dataflow  # noqa: F401


def cmd_run(args: argparse.Namespace) -> int:
    config = load(args.config, _overrides(args))
    _load_job_code()
    started = time.monotonic()
    metrics = run_job(config, source_kind=config.source.kind, replay=False, workers=args.workers,
                      processes=args.processes, serve_metrics=True, progress=not args.quiet)
    print(summary(metrics, config.output.dir, time.monotonic() - started))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    overrides = {**overrides, "source": {"kind": "file", "file": {"path": args.events}}}
    config = load(args.config, overrides)
    if args.events != "-" and not Path(args.events).is_file():
        return _fail(f"{args.events}: no such events file; give an NDJSON file or - for stdin")
    _load_job_code()
    started = time.monotonic()
    metrics = run_job(config, source_kind="file", replay=True, workers=args.workers,
                      processes=args.processes, serve_metrics=False, progress=args.progress)
    metrics.write_textfile(str(Path(config.output.dir) / "metrics.prom"))
    print(summary(metrics, config.output.dir, time.monotonic() - started), file=sys.stderr)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from pipeline.simulator import SimConfig, write

    if args.to_kafka:
        from pipeline.loadgen import run_loadgen

        return run_loadgen(args)
    cfg = SimConfig(seed=args.seed, hours=args.hours, scale=args.scale)
    started = time.monotonic()
    counts = write(cfg, Path(args.out))
    print(f"wrote {counts['events']:,} events, {counts['labels']:,} labels to {args.out}/ "
          f"in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Stream job that keeps a live-commerce marketplace safe.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

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
    run.add_argument("--hours", type=_positive_float, help="simulated hours")
    run.add_argument("--scale", type=_positive_float, help="simulator population scale")
    run.add_argument("--speedup", type=float, help="pace the simulator: event time x N wall clock (0 = max)")
    run.add_argument("--recovery-dir", metavar="DIR", help="Bytewax recovery snapshots (resume after a crash)")
    run.add_argument("-w", "--workers", type=_positive_int, default=1, help="worker threads per process (default 1)")
    run.add_argument("-p", "--processes", type=_positive_int, default=1,
                     help="processes of one Bytewax cluster (threads share a GIL; processes scale)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="run the job over one NDJSON file to the end",
                            description="Run the same dataflow as `run` over one NDJSON file (any mix of "
                                        "topics; file order is arrival order) and write the outputs to DIR.")
    replay.add_argument("events", metavar="EVENTS", help="NDJSON events file, or - for stdin")
    replay.add_argument("--out", required=True, metavar="DIR", help="output folder")
    replay.add_argument("--config", metavar="FILE", help="TOML laid over config/shopguard.toml")
    replay.add_argument("--policy", metavar="FILE", help="policy TOML (default config/policy.toml)")
    replay.add_argument("-w", "--workers", type=_positive_int, default=1, help="worker threads per process (default 1)")
    replay.add_argument("-p", "--processes", type=_positive_int, default=1,
                        help="processes of one Bytewax cluster (threads share a GIL; processes scale)")
    replay.add_argument("--progress", action="store_true", help="print progress lines")
    replay.set_defaults(func=cmd_replay)

    sim = sub.add_parser("simulate", help="write a simulated event file with ground-truth labels",
                         description="Write DIR/events.jsonl, DIR/labels.jsonl and DIR/hard_negatives.jsonl.")
    sim.add_argument("--out", required=True, metavar="DIR", help="output folder")
    sim.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    sim.add_argument("--hours", type=_positive_float, default=6.0, help="simulated hours (default 6)")
    sim.add_argument("--scale", type=_positive_float, default=1.0, help="population scale (default 1)")
    from pipeline.loadgen import add_to_kafka_args

    add_to_kafka_args(sim)
    sim.set_defaults(func=cmd_simulate)

    from pipeline.diff import add_diff_command
    from pipeline.report import add_report_command
    from pipeline.workbench import add_console_command

    add_diff_command(sub)
    add_report_command(sub)
    add_console_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        return _fail(str(err))
    except FileNotFoundError as err:
        return _fail(str(err))
    except RuntimeError as err:  # a cluster process or the Kafka sink failed; the message says which and why
        if type(err).__name__ not in ("ClusterError", "KafkaDeliveryError"):
            raise
        return _fail(str(err).splitlines()[0])
    except KeyboardInterrupt:
        return _fail("interrupted; outputs written so far are complete lines")


if __name__ == "__main__":
    sys.exit(main())
