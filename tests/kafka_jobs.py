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
}
SIM = SimConfig(seed=7, hours=2.0, scale=0.5)  # ~50k events, every violation type
BAD_BYTES = [b"\x00\xffnot json", b'{"event_id": "x", "type": "no.such.type", "ts": 1}']
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
    published = publish(iter_events(SIM), broker.client_config(), topic_prefix=prefix)
    with open(folder / "events.jsonl", "wb") as f:
        for event in iter_events(SIM):
            f.write(msgspec.json.encode(event) + b"\n")
    _, replayed = replay(folder / "events.jsonl", folder / "replay")
    return {"prefix": prefix, "published": published, "replayed": replayed, "events": folder / "events.jsonl"}
