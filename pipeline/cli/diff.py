"""`shopguard diff EVENTS --policy A --policy B`: who would gain or lose violations, actions and levels."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.cli.common import positive_int


def cmd_diff(args: argparse.Namespace) -> int:
    if len(args.policy) != 2:
        args.diff_parser.error(f"give exactly two policies (--policy A.toml --policy B.toml), got {len(args.policy)}")
    if args.events != "-" and not Path(args.events).is_file():
        args.diff_parser.error(f"{args.events}: no such events file; give an NDJSON file or - for stdin")
    from analysis.diff import diff, render

    report = diff(args.events, args.policy[0], args.policy[1], config_path=args.config, workers=args.workers,
                  keep=Path(args.out) if args.out else None)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def add_diff_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `shopguard diff` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "diff", help="compare two policies on the same events: who gains or loses violations, actions, levels",
        description="Replay EVENTS once under each policy and print which actors would gain or lose "
                    "violations, enforcement actions and levels under policy B compared with policy A.")
    p.add_argument("events", metavar="EVENTS", help="NDJSON events file, or - for stdin")
    p.add_argument("--policy", action="append", required=True, metavar="FILE",
                   help="policy TOML; give it twice: A (the baseline), then B")
    p.add_argument("--config", metavar="FILE", help="TOML laid over config/shopguard.toml (used for both runs)")
    p.add_argument("--out", metavar="DIR", help="keep both runs' outputs in DIR/a and DIR/b (default: discard)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("-w", "--workers", type=positive_int, default=1, help="worker threads (default 1)")
    p.set_defaults(func=cmd_diff, diff_parser=p)
    return p
