"""`shopguard simulate`: write a simulated marketplace with its ground truth, or publish it to Kafka."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.cli.common import positive_float


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator import DEFAULT_START_TS, SimConfig, load_world, write
    from simulator.source import start_ts

    load_world(args.world)  # an unknown world or a bad file fails here, in one line
    first = DEFAULT_START_TS if args.start is None else start_ts(
        args.start, hours=args.hours, paced=False, now_ms=int(time.time() * 1000))
    cfg = SimConfig(seed=args.seed, hours=args.hours, scale=args.scale, world=args.world, start_ts=first)
    if args.to_kafka:
        from simulator.loadgen import run_loadgen

        return run_loadgen(cfg, Path(args.out), args.to_kafka, rate=args.rate, topic_prefix=args.topic_prefix)
    started = time.monotonic()
    counts = write(cfg, Path(args.out))
    print(f"wrote {counts['events']:,} events, {counts['labels']:,} labels to {args.out}/ "
          f"in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_to_kafka_args(simulate: argparse.ArgumentParser) -> None:
    """`--to-kafka`, `--rate` and `--topic-prefix`: `simulate` as a load generator."""
    group = simulate.add_argument_group("publish to Kafka (load generator)")
    group.add_argument("--to-kafka", metavar="BOOTSTRAP",
                       help="publish the events to the Kafka brokers BOOTSTRAP (host:port[,host:port]) instead "
                            "of writing events.jsonl; labels still go to --out. TLS/SASL settings come from "
                            "SHOPGUARD_KAFKA_* variables")
    group.add_argument("--rate", type=non_negative, default=0.0, metavar="N",
                       help="events per second (default 0 = as fast as the broker takes them)")
    group.add_argument("--topic-prefix", default="", metavar="PREFIX",
                       help="put PREFIX before each input topic name (default none)")


def add_simulate_command(sub: Any) -> argparse.ArgumentParser:
    sim = sub.add_parser("simulate", help="write a simulated event file with ground-truth labels",
                         description="Write DIR/events.jsonl, DIR/labels.jsonl and DIR/hard_negatives.jsonl.")
    sim.add_argument("--out", required=True, metavar="DIR", help="output folder")
    sim.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    sim.add_argument("--hours", type=positive_float, default=6.0, help="simulated hours (default 6)")
    sim.add_argument("--scale", type=positive_float, default=1.0, help="population scale (default 1)")
    sim.add_argument("--world", default="home", metavar="NAME",
                     help="marketplace: home (default; detectors are tuned on it), held-out harbour, sakura, "
                          "atelier, pampa, or a world file (simulator/worlds/)")
    sim.add_argument("--start", metavar="TIME",
                     help="first event time: ISO-8601, now, or auto (the stream ends now); default "
                          "2026-11-01T00:00:00Z so files are reproducible")
    add_to_kafka_args(sim)
    sim.set_defaults(func=cmd_simulate)
    return sim
