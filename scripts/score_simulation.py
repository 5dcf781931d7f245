"""Simulate, replay and score: per-type precision, recall and time to detect.

    .venv/bin/python scripts/score_simulation.py --seed 7 --hours 6 --scale 1 [--world home] [--types listing_spam,...]

Prints the score table, false positives and misses, and hard negatives that
received any violation (by scenario). Used while tuning detectors, on `home`
only: the held-out worlds (harbour, sakura, atelier, pampa) are for scoring, never
for choosing a threshold. The test suite asserts the same numbers in
tests/test_detection_quality.py.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.scoring import format_scores, score  # noqa: E402
from tests.conftest import read_jsonl, replay  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--world", default="home", help="simulated marketplace (default home, the tuning world)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--types", default="", help="comma-separated types to show (default all)")
    p.add_argument("--keep", metavar="DIR", help="keep the simulation and outputs here")
    args = p.parse_args()

    from simulator import SimConfig, label_variants, write

    work = Path(args.keep or tempfile.mkdtemp(prefix="shopguard-score-"))
    t0 = time.monotonic()
    sim = SimConfig(seed=args.seed, hours=args.hours, scale=args.scale, world=args.world)
    counts = write(sim, work / "sim")
    variants = label_variants(sim)
    t1 = time.monotonic()
    metrics, out = replay(work / "sim" / "events.jsonl", work / "out", workers=args.workers)
    t2 = time.monotonic()
    labels = read_jsonl(work / "sim" / "labels.jsonl")
    negatives = read_jsonl(work / "sim" / "hard_negatives.jsonl")
    wanted = set(filter(None, args.types.split(",")))
    violations = [v for v in out["violations.jsonl"] if not wanted or v["violation_type"] in wanted]
    labels = [l for l in labels if not wanted or l["violation_type"] in wanted]
    scores = score(violations, labels)
    print(f"{counts['events']:,} events simulated in {t1 - t0:.1f} s; replay {t2 - t1:.1f} s "
          f"({counts['events'] / (t2 - t1):,.0f} events/s, {args.workers} worker(s))")
    print(format_scores(scores))
    for s in scores.values():
        if s.false_positive_actors:
            print(f"  {s.violation_type}: false positives {s.false_positive_actors[:10]}")
        if s.missed_actors:
            by_variant = collections.Counter(variants.get((a, s.violation_type), "?") for a in s.missed_actors)
            print(f"  {s.violation_type}: missed {s.missed_actors[:10]} (by variant: "
                  + ", ".join(f"{v} {n}" for v, n in by_variant.most_common()) + ")")
    flagged = {v["actor"] for v in out["violations.jsonl"]}
    hit = [n for n in negatives if n["actor"] in flagged]
    print(f"hard negatives flagged: {len(hit)} of {len(negatives)} {json.dumps(hit[:10])}")
    by_scenario = collections.Counter(n["scenario"] for n in hit)
    if by_scenario:
        print("  by scenario: " + ", ".join(f"{name} {count}" for name, count in by_scenario.most_common()))
    print(f"outputs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
