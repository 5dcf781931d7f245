"""Running the job against the session's real Kafka broker: topics, configurations, processes, outputs.

Shared by the Kafka test modules (`test_kafka_pipeline.py`, `test_cluster_kafka.py`,
`test_service_*.py`). Every job run gets its own output topics and its own
consumer group (the job commits its offsets to the group, and a job without
a snapshot starts from the group's offsets).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec

from pipeline.config import load
from pipeline.contract.events import TOPICS
from pipeline.engine.job import read_kafka, run_job
from sinks.kafka import ID_HEADER
from simulator import SimConfig, iter_events
from simulator.loadgen import publish
from tests.conftest import replay
from tests.kafka_fixture import KafkaTestBroker

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_KEYS = {
    "violations": "violations",
    "actions": "enforcement-actions",
    "review_queue": "review-queue",
    "standing": "actor-standing",
    "dead_letter": "dead-letter",
    "incentives": "incentives",
}
SIM = SimConfig(seed=7, hours=2.0, scale=0.5)  # ~50k events, every violation type
BAD_BYTES = [b"\x00\xffnot json", b'{"event_id": "x", "type": "no.such.type", "ts": 1}']
T0 = 1_793_491_200_000
DAY_MS = 86_400_000


def poison_pills() -> list[bytes]:
    """Messages that once crashed or blinded the job (issue 15); each must be one dead letter, nothing more."""
    listing = {"event_id": "p", "type": "listing.created", "ts": T0, "seller_id": "P1", "listing_id": "PL1",
               "title": "Phone case", "category": "phones", "price": 9.5, "currency": "USD", "brand": None,
               "original_price": None, "image_hash": None}
    deep = json.dumps(listing)[:-1].encode() + b', "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    now = int(time.time() * 1000)
    return [
        deep.replace(b'"p"', b'"p-deep"', 1),
        json.dumps({**listing, "event_id": "p-2**70", "ts": 2**70}).encode(),
        json.dumps({**listing, "event_id": "p-future", "ts": now + 2 * DAY_MS}).encode(),
        json.dumps({**listing, "event_id": "p-text", "title": "x" * 200_000}).encode(),
    ]


POISON = poison_pills()
OUTPUT_IDS = {"violations": "violation_id", "actions": "action_id", "review_queue": "review_id",
              "standing": None, "dead_letter": "source"}
# A short stream: the anomaly models warm up sooner, so the review queue has entries to compare.
REVIEWING = {"models": {"anomaly": {"warmup_updates": 300, "threshold_quantile": 0.99}}}
INPUT_PARTITIONS = 4


def input_topics(prefix: str) -> list[str]:
    return [prefix + topic for topic in TOPICS]


def new_outputs(broker: KafkaTestBroker, partitions: int = 2) -> dict[str, str]:
    prefix = broker.unique_topic("out") + "."
    outputs = {key: prefix + topic for key, topic in OUTPUT_KEYS.items()}
    broker.create_topics(list(outputs.values()), partitions=partitions)
    return outputs


def job_overrides(broker: KafkaTestBroker, prefix: str, outputs: dict[str, str], *, group: str | None = None,
                  **job) -> dict:
    """A job reading `prefix`'s input topics to their end, writing `outputs`, in a consumer group of its own."""
    return {
        "source": {"kind": "kafka"},
        "output": {"kind": "kafka"},
        "metrics": {"port": 0},
        "job": {"epoch_interval_seconds": 1.0, **job},
        "recovery": {"snapshot_interval_seconds": 0.0},
        "kafka": {
            "brokers": [broker.bootstrap],
            "input_topics": input_topics(prefix),
            "output_topics": outputs,
            "consumer": {"enable.partition.eof": "true",  # stop at the end of the input
                         "group.id": group or f"test-{uuid.uuid4().hex[:12]}"},
        },
    }


def run_in_process(overrides: dict, workers: int = 1, processes: int = 1):
    config = load(None, overrides)
    return run_job(config, source=read_kafka, replay=False, workers=workers, processes=processes,
                   serve_metrics=False, progress=False)


def read_topic(broker: KafkaTestBroker, topic: str) -> list[tuple[bytes, dict, str]]:
    """(key, record, shopguard-id header) of every message in a topic."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(broker.client_config(**{
        "group.id": f"read-{uuid.uuid4().hex}", "enable.partition.eof": True, "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 10,
    }))
    partitions = broker.partitions(topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    out, left, deadline = [], set(partitions), time.monotonic() + 30
    try:
        while left and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                left.discard(message.partition())
                continue
            headers = dict(message.headers() or [])
            out.append((message.key(), json.loads(message.value()), headers.get(ID_HEADER, b"").decode()))
    finally:
        consumer.close()
    assert not left, f"{topic}: partitions {left} not read to the end"
    return out


def ids(broker: KafkaTestBroker, topic: str, field: str) -> collections.Counter:
    return collections.Counter(record[field] for _, record, _ in read_topic(broker, topic))


def toml(table: dict, path: str = "") -> str:
    """Just enough TOML for a job config: nested tables of strings, numbers and lists."""
    scalars = [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items() if not isinstance(v, dict)]
    text = (f"[{path}]\n" if path and scalars else "") + "".join(line + "\n" for line in scalars)
    for key, value in table.items():
        if isinstance(value, dict):
            text += toml(value, f"{path}.{json.dumps(key)}" if path else json.dumps(key))
    return text


def start_job(config_file: Path, log_path: Path, *args: str) -> subprocess.Popen:
    """`shopguard run --config FILE -q ARGS...` as a subprocess; its output (both streams) goes to `log_path`."""
    with open(log_path, "wb") as log:
        job = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "run", "--config", str(config_file), "-q",
                                *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    job.log_path = log_path
    return job


def wait_for(broker: KafkaTestBroker, topic: str, at_least: int, job: subprocess.Popen, timeout: float = 90) -> int:
    """Wait until `topic` holds `at_least` records (while the job runs); returns how many it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and job.poll() is None:
        seen = len(broker.consume_all(topic))
        if seen >= at_least:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{topic}: fewer than {at_least} records; job log:\n{job.log_path.read_text()[-3000:]}")


def publish_marketplace(broker: KafkaTestBroker, folder: Path) -> dict:
    """The simulator's events on five input topics (4 partitions each) plus bad bytes, and a file replay of them."""
    prefix = broker.unique_topic("in") + "."
    broker.create_topics(input_topics(prefix), partitions=INPUT_PARTITIONS)
    broker.produce(prefix + "listing-events", BAD_BYTES, keys=[b"seller:BAD", b"seller:BAD"])
    broker.produce(prefix + "order-events", POISON, keys=[b"seller:P1"] * len(POISON))
    published = publish(iter_events(SIM), broker.client_config(), topic_prefix=prefix)
    with open(folder / "events.jsonl", "wb") as f:
        for event in iter_events(SIM):
            f.write(msgspec.json.encode(event) + b"\n")
    _, replayed = replay(folder / "events.jsonl", folder / "replay")
    # "records": everything on the topics, the bad bytes and poison pills (one dead letter each) included
    return {"prefix": prefix, "published": published, "records": published + len(BAD_BYTES) + len(POISON),
            "replayed": replayed, "events": folder / "events.jsonl"}


# What a violation decides about an actor. Its evidence and confidence describe what the detector knew
# when it judged: a category's listings from other sellers, read from other partitions (by another process
# of a cluster), may have arrived a moment earlier or later, so the comparable items it cites can differ.
VERDICT = ("violation_id", "actor", "violation_type", "policy_id", "severity", "points", "enforced",
           "detected_at", "window_start", "window_end")


def every_output(broker: KafkaTestBroker, outputs: dict[str, str], *,
                 verdicts: bool = False) -> dict[str, collections.Counter]:
    """Each output topic's records (as sorted JSON), counted: a record written twice counts 2.

    `verdicts`: violations as their `VERDICT` fields only (comparing runs whose arrival order differs)."""
    def shown(kind: str, record: dict) -> str:
        if verdicts and kind == "violations":
            record = {key: record[key] for key in VERDICT}
        return json.dumps(record, sort_keys=True)

    return {kind: collections.Counter(shown(kind, record) for _, record, _ in read_topic(broker, outputs[kind]))
            for kind in OUTPUT_IDS}


def assert_same_outputs(got: dict[str, collections.Counter], expected: dict[str, collections.Counter],
                        what: str) -> None:
    for kind, records in got.items():
        twice = [r for r, n in records.items() if n > 1]
        assert not twice, f"{what}: {kind} written twice: {twice[:3]}"
        missing, extra = set(expected[kind]) - set(records), set(records) - set(expected[kind])
        assert not missing and not extra, f"{what}: {kind}: missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}"
