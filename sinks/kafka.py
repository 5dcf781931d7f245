"""Kafka out: every output record to its topic, keyed by actor, exactly once by deterministic ids.

`write_kafka(config)` is the `write` argument of `engine.dataflow.build_flow`
for a job that writes Kafka. It checks the brokers and output topics first
(`pipeline.kafka.preflight`).

Every record goes to its type's topic (`[kafka.output_topics]`), keyed by
actor so one actor's records stay in order, with a header `shopguard-id`
holding its deterministic id (`record_id`). The sink is a Bytewax
fixed-partitioned sink with an idempotent producer (`acks=all`,
`enable.idempotence=true`); a delivery failure or a message `flush()` could
not deliver stops the job. Each sink partition snapshots, per output
topic-partition, the offset after its last acknowledged message. After a
crash Bytewax resumes from the last snapshot and emits that epoch's outputs
again; the partition first reads back what it had written after its
snapshot and skips those ids once, so a topic holds every record exactly
once. `pipeline.engine.recovery.ensure_recovery_store` creates the recovery
partitions Bytewax needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Callable

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from pipeline.config import Config, KafkaConfig
from pipeline.contract.records import Action, DeadLetter, OutputRecord, ReviewEntry, Standing, Violation, encode, key_of
from pipeline.kafka import (
    CLIENT_TIMEOUT_S, KafkaDeliveryError, KafkaSetupError, consumer_settings, log, preflight, producer_settings, quiet,
    topic_partitions,
)

ID_HEADER = "shopguard-id"
# Output partitions of the sink: the most workers that can share the writing.
# Fixed for the life of a deployment: each keeps its own recovery state.
SINK_PARTITIONS = 8
# Ids read back after a crash wait at most this many to be skipped.
MAX_PENDING_SKIPS = 1_000_000
# Record type -> key of its topic in [kafka.output_topics].
OUTPUT_TOPIC_KEY: dict[type, str] = {
    Violation: "violations",
    Action: "actions",
    ReviewEntry: "review_queue",
    Standing: "standing",
    DeadLetter: "dead_letter",
}


# ---- output -------------------------------------------------------------------------


def output_topics(kafka: KafkaConfig) -> dict[type, str]:
    """Record type -> topic, from `[kafka.output_topics]`."""
    missing = [key for key in OUTPUT_TOPIC_KEY.values() if key not in kafka.output_topics]
    if missing:
        raise KafkaSetupError(f"[kafka.output_topics] needs a topic for {', '.join(missing)}")
    return {kind: kafka.output_topics[key] for kind, key in OUTPUT_TOPIC_KEY.items()}


def record_id(record: OutputRecord) -> str:
    """A record's deterministic id: the same finding always has the same id.

    Violations and actions carry theirs; a dead letter is named by its source;
    other records by a hash of their bytes, which are stable across runs.
    """
    if isinstance(record, Violation):
        return record.violation_id
    if isinstance(record, Action):
        return record.action_id
    if isinstance(record, DeadLetter):
        return f"dead-letter:{record.source}"
    return f"{type(record).__name__.lower()}:{hashlib.blake2b(encode(record), digest_size=12).hexdigest()}"


def write_kafka(config: Config) -> Callable[[Stream[OutputRecord]], None]:
    """The output step(s) for `build_flow`: each record to its topic, keyed by actor, exactly once.

    Checks the brokers and output topics now, so a bad setup fails before the job starts.
    """
    kafka = config.kafka
    topics = output_topics(kafka)
    sink = KafkaOutputSink(producer_settings(kafka), consumer_settings(kafka), sorted(set(topics.values())),
                           recovery_dir=config.recovery.dir or None)
    preflight(sink.producer_settings, sink.topics)

    def to_message(record: OutputRecord) -> tuple[str, tuple[str, str, bytes, str]]:
        key = key_of(record)
        return key, (key, topics[type(record)], encode(record), record_id(record))

    def write(records: Stream[OutputRecord]) -> None:
        op.output("write_kafka", op.map("to_kafka_messages", records, to_message), sink)

    return write


def sink_partition_of(key: str, partitions: int = SINK_PARTITIONS) -> int:
    """The sink partition that writes a key's records: stable across processes and runs.

    >>> sink_partition_of("seller:S1") == sink_partition_of("seller:S1")
    True
    """
    return zlib.crc32(key.encode()) % partitions


class KafkaOutputSink(FixedPartitionedSink[tuple[str, str, bytes, str], dict]):
    """Items are `(key, (key, topic, value, id))`; see the module docstring for the exactly-once path.

    One producer per process is shared by the partitions it writes (librdkafka
    producers are thread-safe); each partition tracks its own deliveries.
    """

    def __init__(self, producer_settings: dict[str, str], consumer_settings: dict[str, str], topics: list[str],
                 *, recovery_dir: str | None = None, partitions: int = SINK_PARTITIONS) -> None:
        self.producer_settings = producer_settings
        self.consumer_settings = consumer_settings
        self.topics = topics
        self.recovery_dir = Path(recovery_dir) if recovery_dir else None
        self.partitions = partitions
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def list_parts(self) -> list[str]:
        return [f"kafka-out-{i:03d}" for i in range(self.partitions)]  # sorted order = index order

    def part_fn(self, item_key: str) -> int:
        return sink_partition_of(item_key, self.partitions)

    def build_part(self, step_id: str, for_part: str, resume_state: dict | None) -> "_KafkaOutputPartition":
        index = int(for_part.rsplit("-", 1)[1])
        if resume_state is None:
            resume_state = self._state_before_first_snapshot()
        skip = self._written_after(resume_state, index) if resume_state["offsets"] is not None else {}
        skip.update(dict.fromkeys(resume_state["skip"]))
        return _KafkaOutputPartition(self.producer(), resume_state["offsets"] or {}, skip)

    def producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = Producer(quiet(self.producer_settings))
            return self._producer

    # -- recovery ----------------------------------------------------------------------

    def _state_before_first_snapshot(self) -> dict:
        """A partition without a snapshot: a new job, or one that crashed before its first snapshot.

        The end offsets of the output topics when the job first started are
        kept next to the recovery store, so a job that crashed before its
        first snapshot can still read back what it wrote.
        """
        if self.recovery_dir is None:
            return {"offsets": None, "skip": []}
        marker = self.recovery_dir / "kafka-output-start.json"
        if not marker.exists():
            offsets = self._end_offsets()
            scratch = marker.with_name(f"{marker.name}.{uuid.uuid4().hex}")
            scratch.write_text(json.dumps([[t, p, o] for (t, p), o in offsets.items()]))
            try:
                os.link(scratch, marker)  # atomic, and the first process to start wins
            except FileExistsError:
                pass
            finally:
                scratch.unlink()
        offsets = {(t, p): o for t, p, o in json.loads(marker.read_text())}
        return {"offsets": offsets, "skip": []}

    def _end_offsets(self) -> dict[tuple[str, int], int]:
        consumer = self._consumer()
        try:
            return {tp: consumer.get_watermark_offsets(TopicPartition(*tp), timeout=CLIENT_TIMEOUT_S)[1]
                    for tp in self._topic_partitions(consumer)}
        finally:
            consumer.close()

    def _consumer(self) -> Consumer:
        return Consumer(quiet({
            **self.consumer_settings,
            "group.id": "shopguard-output-readback",  # required by librdkafka, never joined
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "fetch.wait.max.ms": "10",
        }))

    def _topic_partitions(self, consumer: Consumer) -> list[tuple[str, int]]:
        return [(t, p) for t, partitions in topic_partitions(consumer, self.topics, "output").items()
                for p in partitions]

    def _written_after(self, resume_state: dict, index: int) -> dict[str, None]:
        """Ids this partition wrote after its snapshot: they are in Kafka and will be emitted again."""
        started = time.monotonic()
        consumer = self._consumer()
        try:
            starts = resume_state["offsets"]
            pending = {}
            for tp in self._topic_partitions(consumer):
                end = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=CLIENT_TIMEOUT_S)[1]
                start = starts.get(tp, 0)
                if start < end:
                    pending[tp] = (start, end)
            ids = _read_ids(consumer, pending, lambda key: sink_partition_of(key, self.partitions) == index)
        finally:
            consumer.close()
        if ids:
            log.warning("kafka-out-%03d: %d records written before the restart will not be written again "
                        "(read back in %.1f s)", index, len(ids), time.monotonic() - started)
        return ids


def _read_ids(consumer: Consumer, ranges: dict[tuple[str, int], tuple[int, int]],
              mine: Callable[[str], bool]) -> dict[str, None]:
    """The `shopguard-id` headers of the records in `[start, end)` of each topic-partition whose key is `mine`."""
    ids: dict[str, None] = {}
    if not ranges:
        return ids
    consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in ranges.items()])
    left = set(ranges)
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while left:
        if time.monotonic() > deadline:
            raise KafkaSetupError(f"reading back the output topics timed out ({sorted(left)} unfinished)")
        message = consumer.poll(0.5)
        if message is None:
            continue
        tp = (message.topic(), message.partition())
        if message.error() is not None:
            if message.error().code() == KafkaError._PARTITION_EOF:
                left.discard(tp)
                continue
            raise KafkaException(message.error())
        key = (message.key() or b"").decode()
        if mine(key):
            for name, value in message.headers() or ():
                if name == ID_HEADER:
                    ids[value.decode()] = None
        if message.offset() + 1 >= ranges[tp][1]:
            left.discard(tp)
    return ids


class _KafkaOutputPartition(StatefulSinkPartition[tuple[str, str, bytes, str], dict]):
    def __init__(self, producer: Producer, offsets: dict[tuple[str, int], int], skip: dict[str, None]) -> None:
        self._producer = producer
        self._offsets = dict(offsets)  # per topic-partition: the offset after this partition's last delivery
        self._skip = skip  # ids already in Kafka from before a restart
        self._failures: list[str] = []

    def write_batch(self, items: list[tuple[str, str, bytes, str]]) -> None:
        self._check_failures()
        produce, poll, skip = self._producer.produce, self._producer.poll, self._skip
        for key, topic, value, rid in items:
            if skip and rid in skip:
                del skip[rid]
                continue
            while True:
                try:
                    produce(topic, value, key.encode(), headers=[(ID_HEADER, rid.encode())],
                            on_delivery=self._delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    poll(0.05)
        poll(0)

    def _delivered(self, err, message) -> None:
        if err is not None:
            text = f"{message.topic()}: {err.str()}"
            self._failures.append(text)
            raise KafkaDeliveryError(f"Kafka did not take an output record ({text}); stopping so it is not lost")
        tp = (message.topic(), message.partition())
        after = message.offset() + 1
        if after > self._offsets.get(tp, -1):
            self._offsets[tp] = after

    def _check_failures(self) -> None:
        if self._failures:
            raise KafkaDeliveryError(f"Kafka did not take {len(self._failures)} output records "
                                     f"(first: {self._failures[0]}); stopping so they are not lost")

    def _flush(self) -> None:
        left = self._producer.flush(CLIENT_TIMEOUT_S)
        self._check_failures()
        if left:
            raise KafkaDeliveryError(f"{left} output records not acknowledged by Kafka within "
                                     f"{CLIENT_TIMEOUT_S:g} s; stopping so they are not lost")

    def snapshot(self) -> dict:
        self._flush()  # everything before the snapshot is in Kafka: a resume never needs it again
        if len(self._skip) > MAX_PENDING_SKIPS:
            self._skip = dict.fromkeys(list(self._skip)[-MAX_PENDING_SKIPS:])
        return {"offsets": dict(self._offsets), "skip": list(self._skip)}

    def close(self) -> None:
        self._flush()
