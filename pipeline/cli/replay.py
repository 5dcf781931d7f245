"""`shopguard replay EVENTS --out DIR`: the same dataflow as `run`, over one NDJSON file, to its end."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.cli.common import add_log_options, config_overrides, fail, positive_int
from pipeline.cli.run import load_job_code
from pipeline.config import load
from pipeline.logs import setup_logging


def cmd_replay(args: argparse.Namespace) -> int:
    from pipeline.engine.job import Outcome, read_file, run_job, summary

    overrides = {**config_overrides(args), "source": {"kind": "file", "file": {"path": args.events}}}
    config = load(args.config, overrides)
    setup_logging(config.log.format, config.log.level)
    if args.events != "-" and not Path(args.events).is_file():
        return fail(f"{args.events}: no such events file; give an NDJSON file or - for stdin")
    load_job_code()
    started = time.monotonic()
    outcome = Outcome()
    metrics = run_job(config, source=read_file, replay=True, workers=args.workers, processes=args.processes,
                      serve_metrics=False, progress=args.progress, outcome=outcome)
    metrics.write_textfile(str(Path(config.output.dir) / "metrics.prom"))
    print(summary(metrics, config.output.dir, time.monotonic() - started, outcome), file=sys.stderr)
    return 0


def add_replay_command(sub: Any) -> argparse.ArgumentParser:
    replay = sub.add_parser("replay", help="run the job over one NDJSON file to the end",
                            description="Run the same dataflow as `run` over one NDJSON file (any mix of "
                                        "topics; file order is arrival order) and write the outputs to DIR.")
    replay.add_argument("events", metavar="EVENTS", help="NDJSON events file, or - for stdin")
    replay.add_argument("--out", required=True, metavar="DIR", help="output folder")
    replay.add_argument("--config", metavar="FILE", help="TOML laid over config/shopguard.toml")
    replay.add_argument("--policy", metavar="FILE", help="policy TOML (default config/policy.toml)")
    replay.add_argument("-w", "--workers", type=positive_int, default=1, help="worker threads per process (default 1)")
    replay.add_argument("-p", "--processes", type=positive_int, default=1,
                        help="processes of one Bytewax cluster (threads share a GIL; processes scale)")
    replay.add_argument("--progress", action="store_true", help="print progress lines")
    add_log_options(replay)
    replay.set_defaults(func=cmd_replay)
    return replay
