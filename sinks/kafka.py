"""Kafka out: every output record to its topic, keyed by actor, exactly once by deterministic ids.

`write_kafka(config)` is the `write` argument of `engine.dataflow.build_flow`
for a job that writes Kafka. It checks the brokers and output topics first
(`pipeline.kafka.preflight`).

Every record goes to its type's topic (`[kafka.output_topics]`), keyed by
actor so one actor's records stay in order, with a header `shopguard-id`
holding its deterministic id (`record_id`). The sink is a Bytewax
fixed-partitioned sink with an idempotent producer (`acks=all`,
`enable.idempotence=true`). Each sink partition snapshots, per output
topic-partition, the offset after its last acknowledged message.

A delivery that fails is handled on the writing thread, by what failed
(`failure_kind`): a record the broker *refuses* (its size or content) is
tried once more alone (a batch is refused whole, so its other records may be
innocent), then written to the dead-letter topic instead (reason
`output_refused`, the record's beginning and size) and the job goes on; a
dead letter the dead-letter topic refuses is shrunk to its error and size
once, and if even that is refused the job stops (no loop). A *transient*
failure (timeouts, leaders moving, brokers down) is retried with backoff for
`RETRY_FOR_S`; anything else is *fatal*: the job stops with one line
(`KafkaDeliveryError`) rather than lose a record. After a
crash Bytewax resumes from the last snapshot and emits that epoch's outputs
again; the partition first reads back what it had written after its
snapshot and skips those ids once, so a topic holds every record exactly
once. `pipeline.engine.recovery.ensure_recovery_store` creates the recovery
partitions Bytewax needs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any, Callable, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from pipeline.config import Config, KafkaConfig
from pipeline.contract.records import (
    Action, DeadLetter, Incentive, OutputRecord, ReviewEntry, Standing, Violation, encode, key_of,
)
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
# What the broker can say about a record it did not take, by what to do about it.
REFUSED = frozenset({  # the record's own size or content: it goes to the dead letters
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG, KafkaError.INVALID_TIMESTAMP, KafkaError.POLICY_VIOLATION,
})
TRANSIENT = frozenset({  # the cluster, for now: tried again after a pause
    KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
    KafkaError.REQUEST_TIMED_OUT, KafkaError.NOT_ENOUGH_REPLICAS, KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.KAFKA_STORAGE_ERROR,
})
RETRY_FOR_S = 300.0  # a record that keeps failing transiently this long (wall clock) stops the job
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
DELIVERY_WAIT_S = 330.0  # librdkafka settles every message within message.timeout.ms (300 s by default)
# Record type -> key of its topic in [kafka.output_topics].
OUTPUT_TOPIC_KEY: dict[type, str] = {
    Violation: "violations",
    Action: "actions",
    ReviewEntry: "review_queue",
    Standing: "standing",
    DeadLetter: "dead_letter",
    Incentive: "incentives",
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

    Violations, actions and review entries carry theirs; a dead letter is
    named by its source; standings by a hash of their bytes, which are stable
    across runs.
    """
    if isinstance(record, Violation):
        return record.violation_id
    if isinstance(record, Action):
        return record.action_id
    if isinstance(record, ReviewEntry) and record.review_id:
        return record.review_id
    if isinstance(record, DeadLetter):
        return f"dead-letter:{record.source}"
    return f"{type(record).__name__.lower()}:{hashlib.blake2b(encode(record), digest_size=12).hexdigest()}"


def write_kafka(config: Config, metrics: Any = None) -> Callable[[Stream[OutputRecord]], None]:
    """The output step(s) for `build_flow`: each record to its topic, keyed by actor, exactly once.

    Checks the brokers and output topics now, so a bad setup fails before the job starts.
    `metrics` (a `sinks.metrics.Metrics`) counts records Kafka refused as dead letters.
    """
    kafka = config.kafka
    topics = output_topics(kafka)
    sink = KafkaOutputSink(producer_settings(kafka), consumer_settings(kafka), sorted(set(topics.values())),
                           recovery_dir=config.recovery.dir or None, dead_letter_topic=topics[DeadLetter],
                           excerpt_bytes=config.input.dead_letter_raw_bytes, metrics=metrics)
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
                 *, recovery_dir: str | None = None, partitions: int = SINK_PARTITIONS,
                 dead_letter_topic: str | None = None, excerpt_bytes: int = 16_384, metrics: Any = None) -> None:
        self.producer_settings = producer_settings
        self.consumer_settings = consumer_settings
        self.topics = topics
        self.recovery_dir = Path(recovery_dir) if recovery_dir else None
        self.partitions = partitions
        self.dead_letter_topic = dead_letter_topic
        self.excerpt_bytes = excerpt_bytes
        self.metrics = metrics
        self._producer: Producer | None = None
        self._alone: Producer | None = None
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
        return _KafkaOutputPartition(self, resume_state["offsets"] or {}, skip)

    def producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = Producer(quiet(self.producer_settings))
            return self._producer

    def producer_alone(self) -> Producer:
        """A producer that sends every record in a batch of its own: a refusal is then about that record."""
        with self._lock:
            if self._alone is None:
                self._alone = Producer(quiet({**self.producer_settings, "batch.num.messages": "1", "linger.ms": "0"}))
            return self._alone

    def producers(self) -> list[Producer]:
        with self._lock:
            return [p for p in (self._producer, self._alone) if p is not None]

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


def failure_kind(err: KafkaError) -> str:
    """`refused` (the record's size or content), `transient` (worth another try) or `fatal`.

    >>> failure_kind(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), failure_kind(KafkaError(KafkaError._MSG_TIMED_OUT))
    ('refused', 'transient')
    >>> failure_kind(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    'fatal'
    """
    if err.fatal():
        return "fatal"
    if err.code() in REFUSED:
        return "refused"
    return "transient" if err.code() in TRANSIENT or err.retriable() else "fatal"


class _Out(NamedTuple):
    """One record on its way out, and how far handling its failures has gone."""

    key: str
    topic: str
    value: bytes
    rid: str
    stage: int = 0  # 0 sent, 1 sent alone, 2 its dead letter sent, 3 a dead letter shrunk to its error
    attempt: int = 0
    failing_since: float | None = None
    refused: "tuple[_Out, KafkaError] | None" = None  # for a dead letter this sink made: what Kafka refused, why


SENT, ALONE, DEAD_LETTERED, SHRUNK = range(4)


class _KafkaOutputPartition(StatefulSinkPartition[tuple[str, str, bytes, str], dict]):
    def __init__(self, sink: KafkaOutputSink, offsets: dict[tuple[str, int], int], skip: dict[str, None]) -> None:
        self._sink = sink
        self._producer = sink.producer()
        self._offsets = dict(offsets)  # per topic-partition: the offset after this partition's last delivery
        self._skip = skip  # ids already in Kafka from before a restart
        self._failed: list[tuple[_Out, KafkaError]] = []  # filled by delivery callbacks, handled by `_recover`
        self._logged: set[str] = set()

    def write_batch(self, items: list[tuple[str, str, bytes, str]]) -> None:
        self._recover()
        skip = self._skip
        for key, topic, value, rid in items:
            if skip and rid in skip:
                del skip[rid]
                continue
            self._send(_Out(key, topic, value, rid))
        self._producer.poll(0)
        self._recover()

    def _send(self, out: _Out) -> None:
        producer = self._producer if out.stage == SENT else self._sink.producer_alone()
        while True:
            try:
                producer.produce(out.topic, out.value, out.key.encode(), headers=[(ID_HEADER, out.rid.encode())],
                                 on_delivery=functools.partial(self._delivered, out))
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
            except KafkaException as err:  # refused before it left (e.g. over the producer's message.max.bytes)
                self._failed.append((out, err.args[0]))
                return

    def _delivered(self, out: _Out, err, message) -> None:
        if err is not None:
            self._failed.append((out, err))  # handled on the writing thread, never raised in librdkafka's callback
            return
        tp = (message.topic(), message.partition())
        after = message.offset() + 1
        if after > self._offsets.get(tp, -1):
            self._offsets[tp] = after

    # -- when a delivery fails ------------------------------------------------------------

    def _recover(self) -> None:
        """Handle every failed delivery; raises `KafkaDeliveryError` for one that must stop the job."""
        while self._failed:
            failed, self._failed = self._failed, []
            for out, err in failed:
                kind = failure_kind(err)
                if kind == "refused":
                    self._refused(out, err)
                elif kind == "transient":
                    self._retry(out, err)
                else:
                    raise KafkaDeliveryError(f"Kafka did not take an output record for {out.topic} ({err.str()}, "
                                             f"{err.name()}); stopping so it is not lost: fix the cause (topic, "
                                             "ACLs, producer settings) and restart, the job resumes from its last "
                                             "snapshot")
            if not self._failed and any(out.stage != SENT or failure_kind(err) == "refused" for out, err in failed):
                # What was sent alone comes back now (refusals are rare): a refusal never waits for a snapshot.
                self._sink.producer_alone().flush(CLIENT_TIMEOUT_S)

    def _refused(self, out: _Out, err: KafkaError) -> None:
        if out.stage == SENT:  # a batch is refused whole: this record may be an innocent batch-mate
            self._send(out._replace(stage=ALONE))
            return
        dead_letter_topic = self._sink.dead_letter_topic
        if dead_letter_topic is None:
            raise KafkaDeliveryError(f"Kafka refused a {len(out.value):,}-byte output record for {out.topic} "
                                     f"({err.str()}) and no dead-letter topic is configured: raise the topic's "
                                     "max.message.bytes (or lower [output] max_record_bytes) and restart")
        if out.stage == SHRUNK:
            raise KafkaDeliveryError(f"the dead-letter topic {dead_letter_topic} refused even a "
                                     f"{len(out.value):,}-byte dead letter holding only the error and size of a "
                                     f"record Kafka refused ({err.str()}): raise max.message.bytes of "
                                     f"{dead_letter_topic} and restart")
        self._log_refusal(out, err)
        if out.stage == DEAD_LETTERED:  # the dead letter of a refused record: the same, with its error and size only
            self._send(out._replace(value=self._dead_letter(*out.refused, keep=0), stage=SHRUNK, attempt=0))
            return
        if self._sink.metrics is not None:
            self._sink.metrics.dead_letters_child("output_refused").inc()
        shrink = out.topic == dead_letter_topic  # one of the job's dead letters: its error and size only
        value = self._dead_letter(out, err, keep=0 if shrink else self._sink.excerpt_bytes)
        self._send(_Out(out.key, dead_letter_topic, value, f"output-refused:{out.rid}",
                        SHRUNK if shrink else DEAD_LETTERED, refused=(out, err)))

    def _dead_letter(self, out: _Out, err: KafkaError, keep: int) -> bytes:
        """The refused record as a dead letter: its beginning, its size, why."""
        return encode(DeadLetter(
            raw=out.value[:keep].decode("utf-8", errors="replace"),
            error=(f"Kafka refused this {len(out.value):,}-byte output record for topic {out.topic} ({err.str()}, "
                   f"{err.name()}), so it was not written there; raise the topic's max.message.bytes or lower "
                   "[output] max_record_bytes"),
            source=f"{out.topic}:{out.rid}",
            ts=int(time.time() * 1000),
            reason="output_refused",
            raw_bytes=len(out.value) if len(out.value) > keep else None,
        ))

    def _log_refusal(self, out: _Out, err: KafkaError) -> None:
        if out.topic not in self._logged:  # one line per topic: a flood of refusals must not flood the log
            self._logged.add(out.topic)
            log.warning("Kafka refused a %d-byte record for %s (%s); it goes to the dead letters instead "
                        "(further refusals for this topic are not logged)", len(out.value), out.topic, err.str())

    def _retry(self, out: _Out, err: KafkaError) -> None:
        now = time.monotonic()
        since = out.failing_since if out.failing_since is not None else now
        if now - since > RETRY_FOR_S:
            raise KafkaDeliveryError(f"Kafka did not take output records for {out.topic} for {RETRY_FOR_S:g} s "
                                     f"(last error: {err.str()}); stopping so they are not lost: check the brokers "
                                     "and restart, the job resumes from its last snapshot")
        time.sleep(BACKOFF_S[min(out.attempt, len(BACKOFF_S) - 1)])
        self._send(out._replace(attempt=out.attempt + 1, failing_since=since))

    def _flush(self) -> None:
        """Wait until every record sent is in Kafka or dead-lettered (failures handled on the way)."""
        started = time.monotonic()
        while True:
            left = sum(producer.flush(5.0) for producer in self._sink.producers())
            if self._failed:
                self._recover()
                continue
            if not left:
                return
            if time.monotonic() - started > DELIVERY_WAIT_S:
                raise KafkaDeliveryError(f"{left} output records not acknowledged by Kafka within "
                                         f"{DELIVERY_WAIT_S:g} s; stopping so they are not lost: check the brokers "
                                         "and restart, the job resumes from its last snapshot")

    def snapshot(self) -> dict:
        self._flush()  # everything before the snapshot is in Kafka: a resume never needs it again
        if len(self._skip) > MAX_PENDING_SKIPS:
            self._skip = dict.fromkeys(list(self._skip)[-MAX_PENDING_SKIPS:])
        return {"offsets": dict(self._offsets), "skip": list(self._skip)}

    def close(self) -> None:
        self._flush()
