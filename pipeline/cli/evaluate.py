"""`shopguard evaluate`: detection quality per simulated world (the README's held-out tables)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.cli.common import positive_float, positive_int


def cmd_evaluate(args: argparse.Namespace) -> int:
    from analysis.evaluate import evaluate, markdown, weaknesses

    from simulator.world import WORLDS

    results = []
    for world in args.world or WORLDS:
        for seed in args.seed or [7]:
            work = Path(args.keep) / f"{world}-{seed}" if args.keep else None
            result = evaluate(world, seed, hours=args.hours, scale=args.scale, work=work, workers=args.workers)
            results.append(result)
            print(f"{world} seed {seed}: " + ("; ".join(weaknesses(result)) or "meets the quality bar"),
                  file=sys.stderr)
    print(markdown(results))
    return 0


def add_evaluate_command(sub: Any) -> argparse.ArgumentParser:
    from simulator.world import WORLDS

    p = sub.add_parser("evaluate", help="detection quality per simulated world: precision, recall, time to detect",
                       description="Simulate each world, replay it through the job and score the outputs against "
                                   "the ground truth; prints one markdown table per world and seed. `home` is the "
                                   "tuning world; the others are held out (no threshold was set on them).")
    p.add_argument("--world", action="append", choices=sorted(WORLDS), metavar="NAME",
                   help=f"world to evaluate, repeatable (default: all of {', '.join(sorted(WORLDS))})")
    p.add_argument("--seed", action="append", type=int, metavar="N", help="seed, repeatable (default 7)")
    p.add_argument("--hours", type=positive_float, default=6.0, help="simulated hours (default 6)")
    p.add_argument("--scale", type=positive_float, default=1.0, help="population scale (default 1)")
    p.add_argument("-w", "--workers", type=positive_int, default=1, help="worker threads (default 1)")
    p.add_argument("--keep", metavar="DIR", help="keep each simulation and its outputs in DIR/WORLD-SEED")
    p.set_defaults(func=cmd_evaluate, world=None, seed=None)
    return p
