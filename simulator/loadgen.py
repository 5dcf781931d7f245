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
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import msgspec
from confluent_kafka import Producer

from pipeline.contract.events import TOPIC_OF_TYPE, TOPICS
from pipeline.kafka import KafkaDeliveryError, KafkaSetupError, env_settings, quiet, preflight

if TYPE_CHECKING:
    from simulator import SimConfig

PACE_EVERY = 64  # check the clock every this many events when pacing


def run_loadgen(cfg: "SimConfig", out: Path, bootstrap: str, *, rate: float = 0.0, topic_prefix: str = "") -> int:
    """`simulate --to-kafka`: publish the simulated events and write the labels; prints a summary."""
    from simulator import hard_negatives, iter_events, labels

    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "labels.jsonl", labels(cfg))
    _write_jsonl(out / "hard_negatives.jsonl", hard_negatives(cfg))
    settings = {**env_settings(os.environ), "bootstrap.servers": bootstrap}
    started = time.monotonic()
    sent = publish(iter_events(cfg), settings, rate=rate, topic_prefix=topic_prefix)
    seconds = time.monotonic() - started
    print(f"published {sent:,} events to {bootstrap} in {seconds:.1f} s ({sent / max(seconds, 1e-9):,.0f}/s); "
          f"labels in {out}/", file=sys.stderr)
    return 0


def publish(events: Iterable[dict], settings: dict[str, str], *, rate: float = 0.0, topic_prefix: str = "") -> int:
    """Publish contract events (dicts) to their topics, keyed by actor; returns how many.

    Raises `KafkaSetupError` if the brokers or a topic are missing, and
    `KafkaDeliveryError` unless every event was acknowledged.
    """
    # The brand registry rides the listings topic (CONTRACT.md), also before the contract decodes it.
    topics = {"brand.registered": "listing-events", **TOPIC_OF_TYPE}
    topic_of = {event_type: topic_prefix + topic for event_type, topic in topics.items()}
    preflight(settings, [topic_prefix + t for t in TOPICS])
    producer = Producer(quiet({**settings, "acks": "all", "enable.idempotence": "true", "linger.ms": "20"}))
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
    """The Kafka key of an input event: its actor, as `pipeline.contract.events.actor_of` names it.

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


__all__ = ["run_loadgen", "publish", "actor_key", "KafkaSetupError"]
