"""`shopguard report DIR`: summarise an output folder (Polars), with precision and recall given labels."""

from __future__ import annotations

import argparse
import sys
import json
import os
from pathlib import Path
from typing import Any, Sequence

from pipeline.cli.common import fail, standalone


def add_report_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `report` to the `shopguard` command line's subparsers."""
    p = subparsers.add_parser(
        "report", help="summarise an output folder (Polars); precision and recall with --labels",
        description="Summarise an output folder: violations, actions, top actors, standing, dead letters, "
                    "review queue; with --labels also per-type precision, recall, time to detect and honest "
                    "actors wrongly flagged per 10,000. Reads KIND*.parquet instead of KIND.jsonl when newer.")
    p.add_argument("dir", metavar="DIR", help="output folder of `shopguard replay` or `shopguard run`")
    p.add_argument("--labels", metavar="FILE", help="ground truth labels.jsonl {actor, violation_type, evidence_ts}")
    p.add_argument("--events", metavar="FILE",
                   help="events.jsonl: count honest actors over all actors in it (default: outputs + labels)")
    p.add_argument("--json", action="store_true", help="one JSON object with stable keys, for machines")
    p.add_argument("--html", metavar="FILE",
                   help="write the report with its plots as one self-contained HTML page to FILE")
    p.add_argument("--top", type=int, default=10, metavar="N", help="top actors to list (default 10)")
    p.add_argument("--to-parquet", action="store_true",
                   help="first write KIND.parquet beside each output file (timestamps, evidence as a struct)")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    import polars as pl

    from analysis.report import RUN_FIRST, build_report, format_report

    out_dir = Path(args.dir)
    if not out_dir.is_dir():
        return fail(f"no outputs in {out_dir}: no such folder; {RUN_FIRST}")
    for flag, path in (("--labels", args.labels), ("--events", args.events)):
        if path is not None and not Path(path).is_file():
            return fail(f"{path}: no such file for {flag}")
    if args.top < 0:
        return fail(f"--top must be 0 or more, got {args.top}")
    if args.html is not None and not Path(args.html).resolve().parent.is_dir():
        return fail(f"{args.html}: its folder does not exist; create it or write the page elsewhere")
    try:
        if args.to_parquet:
            from sinks.parquet import convert_dir

            written = convert_dir(out_dir)
            for name, n in written.items():
                print(f"wrote {out_dir / name} ({n:,} rows)", file=sys.stderr)
            if not written:
                print(f"nothing to convert: no violations.jsonl or actions.jsonl in {out_dir}", file=sys.stderr)
        report = build_report(out_dir, args.labels, args.events, args.top)
        if args.html is not None:
            from analysis.report_html import violations_over_time, write_html

            print(f"wrote {write_html(report, violations_over_time(out_dir), args.html)}", file=sys.stderr)
            if not args.json:
                return 0
    except pl.exceptions.PolarsError as err:
        return fail(f"cannot read {out_dir}: {str(err).splitlines()[0]}")
    text = json.dumps(report, indent=2) + "\n" if args.json else format_report(report)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `shopguard report DIR | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`shopguard report ...` on its own: `main(["out/", "--json"])`."""
    return standalone(add_report_command, "report", argv)


if __name__ == "__main__":
    sys.exit(main())
