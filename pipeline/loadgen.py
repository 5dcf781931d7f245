"""Load generator: `shopguard simulate --to-kafka BOOTSTRAP` publishes simulator events to Kafka.

Each event goes to its contract topic (`listing-events`, `live-events`,
`order-events`, `account-events`, `governance-events`; `--topic-prefix` is
put in front), keyed by its actor so one actor's events stay in order, in
the simulator's arrival order, at `--rate` events per second or as fast as
the broker takes them. The ground truth (`labels.jsonl`,
`hard_negatives.jsonl`) is written to `--out` as by a plain `simulate`, so a
run of the job against those topics can be scored.

Security settings come from the environment as for the job
(`SHOPGUARD_KAFKA_SASL_PASSWORD`, ... see `pipeline.kafka`).

Wiring (in `pipeline/cli.py`)::

    add_to_kafka_args(simulate_parser)
    # in cmd_simulate: if args.to_kafka: return run_loadgen(args)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Iterable

import msgspec
from confluent_kafka import Producer

from pipeline.events import TOPIC_OF_TYPE, TOPICS
from pipeline.kafka import KafkaDeliveryError, KafkaSetupError, _quiet, env_settings, preflight

PACE_EVERY = 64  # check the clock every this many events when pacing


def add_to_kafka_args(simulate: argparse.ArgumentParser) -> None:
    """Add `--to-kafka`, `--rate` and `--topic-prefix` to the `simulate` command."""
    group = simulate.add_argument_group("publish to Kafka (load generator)")
    group.add_argument("--to-kafka", metavar="BOOTSTRAP",
                       help="publish the events to the Kafka brokers BOOTSTRAP (host:port[,host:port]) instead "
                            "of writing events.jsonl; labels still go to --out. TLS/SASL settings come from "
                            "SHOPGUARD_KAFKA_* variables")
    group.add_argument("--rate", type=_non_negative, default=0.0, metavar="N",
                       help="events per second (default 0 = as fast as the broker takes them)")
    group.add_argument("--topic-prefix", default="", metavar="PREFIX",
                       help="put PREFIX before each input topic name (default none)")


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def run_loadgen(args: argparse.Namespace) -> int:
    """`simulate --to-kafka`: publish the simulated events and write the labels; prints a summary."""
    from pipeline.simulator import SimConfig, hard_negatives, iter_events, labels

    cfg = SimConfig(seed=args.seed, hours=args.hours, scale=args.scale)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "labels.jsonl", labels(cfg))
    _write_jsonl(out / "hard_negatives.jsonl", hard_negatives(cfg))
    settings = {**env_settings(os.environ), "bootstrap.servers": args.to_kafka}
    started = time.monotonic()
    sent = publish(iter_events(cfg), settings, rate=args.rate, topic_prefix=args.topic_prefix)
    seconds = time.monotonic() - started
    print(f"published {sent:,} events to {args.to_kafka} in {seconds:.1f} s ({sent / max(seconds, 1e-9):,.0f}/s); "
          f"labels in {out}/", file=sys.stderr)
    return 0


def publish(events: Iterable[dict], settings: dict[str, str], *, rate: float = 0.0, topic_prefix: str = "") -> int:
    """Publish contract events (dicts) to their topics, keyed by actor; returns how many.

    Raises `KafkaSetupError` if the brokers or a topic are missing, and
    `KafkaDeliveryError` unless every event was acknowledged.
    """
    topic_of = {event_type: topic_prefix + topic for event_type, topic in TOPIC_OF_TYPE.items()}
    preflight(settings, [topic_prefix + t for t in TOPICS])
    producer = Producer(_quiet({**settings, "acks": "all", "enable.idempotence": "true", "linger.ms": "20"}))
    failures: list[str] = []

    def delivered(err, message) -> None:
        if err is not None:
            failures.append(f"{message.topic()}: {err.str()}")

    encode = msgspec.json.Encoder().encode
    produce, poll = producer.produce, producer.poll
    started = time.monotonic()
    sent = 0
    for event in events:
        if rate and sent % PACE_EVERY == 0:
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        topic = topic_of[event["type"]]
        while True:
            try:
                produce(topic, encode(event), actor_key(event), on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain it
                poll(0.05)
        sent += 1
        if sent % 1000 == 0:
            poll(0)
    unsent = producer.flush(60)
    if unsent or failures:
        raise KafkaDeliveryError(f"{unsent} events unsent, {len(failures)} failed (first: {failures[:1]})")
    return sent


def actor_key(event: dict) -> bytes | None:
    """The Kafka key of an input event: its actor, as `pipeline.events.actor_of` names it.

    >>> actor_key({"type": "live.ended", "creator_id": "C7"}), actor_key({"type": "order.placed", "seller_id": "S1"})
    (b'creator:C7', b'seller:S1')
    """
    actor = event.get("actor")
    if actor is None:
        if event["type"].startswith("live."):
            actor = f"creator:{event.get('creator_id')}"
        elif event.get("seller_id") is not None:
            actor = f"seller:{event['seller_id']}"
    return actor.encode() if actor else None


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    encode = msgspec.json.Encoder().encode
    with path.open("wb") as f:
        for row in rows:
            f.write(encode(row) + b"\n")


__all__ = ["add_to_kafka_args", "run_loadgen", "publish", "actor_key", "KafkaSetupError"]
