"""Kafka in and out: the job's input step, its output step, and the checks before both.

`read_kafka(config)` and `write_kafka(config)` are the `read` and `write`
arguments of `dataflow.build_flow` for a job that runs against Kafka::

    flow = build_flow(ctx, read_kafka(config), write_kafka(config))

Both check the cluster first (`preflight`): an unreachable broker or a
missing topic stops the job with one line that names the address and what
to check, instead of a hang or a page of librdkafka noise.

Settings
--------
librdkafka settings come from `[kafka]` in the configuration (`brokers`,
`security`, `consumer`, `producer`) and then from the environment:
`SHOPGUARD_KAFKA_<NAME>` sets the librdkafka property `<name>` with `_` read
as `.` (`SHOPGUARD_KAFKA_SASL_PASSWORD` -> `sasl.password`), and
`SHOPGUARD_KAFKA_BROKERS` (comma-separated) replaces `kafka.brokers`.
Secrets belong in the environment; whenever settings are printed their
secret values are masked (`masked`).

Input
-----
One consumer reads every partition of the input topics and merges them by
broker timestamp (`KafkaInput`: why not Bytewax's `KafkaSource` is in its
docstring). Its snapshot is the next offset per topic-partition, kept in the
recovery store; no consumer group is used. Each message becomes a
`RawRecord` (origin `topic/partition`, position the offset, the broker's
timestamp); a consumer error about a partition becomes one too, so the
decode step dead-letters it with its topic/partition/offset like any bad
bytes. With `"enable.partition.eof" = "true"` in `[kafka.consumer]` the job
stops at the end of the topics instead of waiting for more.

Output: exactly once, by deterministic ids
------------------------------------------
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
once. `pipeline.recovery.ensure_recovery_store` creates the recovery partitions Bytewax needs.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
import threading
import time
import uuid
import zlib
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.config import Config, ConfigError, KafkaConfig
from pipeline.records import Action, DeadLetter, OutputRecord, ReviewEntry, Standing, Violation, encode, key_of
from pipeline.sources import RawRecord
from sinks.metrics import Metrics

ENV_PREFIX = "SHOPGUARD_KAFKA_"
# SHOPGUARD_KAFKA_CACHE is the jar cache of scripts/kafka_broker.py, not a client setting.
ENV_NOT_SETTINGS = frozenset({"CACHE"})
SECRET_WORDS = ("password", "secret", "jaas", "token", "key.pem", "credential")
PREFLIGHT_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 30.0
ID_HEADER = "shopguard-id"
# Output partitions of the sink: the most workers that can share the writing.
# Fixed for the life of a deployment: each keeps its own recovery state.
SINK_PARTITIONS = 8
# Ids read back after a crash wait at most this many to be skipped.
MAX_PENDING_SKIPS = 1_000_000
# The producer settings exactly-once output depends on.
REQUIRED_PRODUCER = {"acks": "all", "enable.idempotence": "true"}
# Record type -> key of its topic in [kafka.output_topics].
OUTPUT_TOPIC_KEY: dict[type, str] = {
    Violation: "violations",
    Action: "actions",
    ReviewEntry: "review_queue",
    Standing: "standing",
    DeadLetter: "dead_letter",
}

log = logging.getLogger("shopguard.kafka")
# librdkafka's own log lines: errors only (its warnings include harmless
# "property X is a consumer property" notes for shared settings).
client_log = logging.getLogger("shopguard.kafka.client")
client_log.setLevel(logging.ERROR)


class KafkaSetupError(ConfigError):
    """Kafka is unreachable, a topic is missing, or the settings are wrong; the message says what to do."""


class KafkaDeliveryError(RuntimeError):
    """The broker did not take an output record: the job stops rather than lose it."""


# ---- settings ---------------------------------------------------------------------


def env_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """librdkafka settings from `SHOPGUARD_KAFKA_*` variables.

    >>> env_settings({"SHOPGUARD_KAFKA_SASL_PASSWORD": "s3cret", "SHOPGUARD_KAFKA_BROKERS": "a:1,b:2", "HOME": "/"})
    {'sasl.password': 's3cret', 'bootstrap.servers': 'a:1,b:2'}
    """
    settings = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        suffix = name[len(ENV_PREFIX):]
        if suffix in ENV_NOT_SETTINGS:
            continue
        key = "bootstrap.servers" if suffix == "BROKERS" else suffix.lower().replace("_", ".")
        settings[key] = value
    return settings


def client_settings(kafka: KafkaConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings every client shares: brokers and security, then the environment."""
    settings = {"bootstrap.servers": ",".join(kafka.brokers), **kafka.security}
    settings.update(env_settings(os.environ if environ is None else environ))
    return settings


def consumer_settings(kafka: KafkaConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**client_settings(kafka, environ), **kafka.consumer}


def producer_settings(kafka: KafkaConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Producer settings; `acks=all` and idempotence are required, not defaults."""
    settings = {**client_settings(kafka, environ), **kafka.producer}
    for key, value in REQUIRED_PRODUCER.items():
        given = str(settings.get(key, value)).lower()
        if given != value and not (key == "acks" and given == "-1"):
            raise KafkaSetupError(
                f"[kafka.producer] {key} = {settings[key]!r}: exactly-once output needs {key}={value}; remove the key"
            )
        settings[key] = value
    return settings


def is_secret(key: str) -> bool:
    """Whether a setting's value must never be printed.

    >>> is_secret("sasl.password"), is_secret("ssl.key.pem"), is_secret("security.protocol")
    (True, True, False)
    """
    return any(word in key.lower() for word in SECRET_WORDS)


def masked(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings safe to print: secret values replaced by `****`.

    >>> masked({"bootstrap.servers": "k:9092", "sasl.password": "s3cret"})
    {'bootstrap.servers': 'k:9092', 'sasl.password': '****'}
    """
    return {key: "****" if is_secret(key) else value for key, value in settings.items()}


def describe(settings: Mapping[str, Any]) -> str:
    """One line for logs: `key=value` pairs, secrets masked."""
    return ", ".join(f"{key}={value}" for key, value in sorted(masked(settings).items()) if key != "logger")


def _quiet(settings: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka logs through Python logging (`shopguard.kafka.client`) instead of raw stderr lines."""
    return {**settings, "logger": client_log}


def _silent(settings: Mapping[str, Any]) -> dict[str, Any]:
    """No librdkafka logs at all: for checks whose failure we report ourselves."""
    silent = logging.getLogger("shopguard.kafka.preflight")
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    return {**settings, "logger": silent}


# ---- pre-flight ---------------------------------------------------------------------


def preflight(settings: Mapping[str, str], topics: Iterable[str], timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Fail with one clear line unless the brokers answer and every topic exists."""
    bootstrap = settings.get("bootstrap.servers", "")
    admin = AdminClient(_silent(settings))
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as err:
        raise KafkaSetupError(
            f"cannot reach Kafka at {bootstrap} within {timeout_s:g} s ({_short(err)}): check that the broker "
            "is running and reachable from here, kafka.brokers (or SHOPGUARD_KAFKA_BROKERS), and the TLS/SASL "
            "settings ([kafka.security], SHOPGUARD_KAFKA_*)"
        ) from None
    missing = [t for t in dict.fromkeys(topics) if t not in metadata.topics or metadata.topics[t].error is not None]
    if missing:
        raise KafkaSetupError(
            f"Kafka at {bootstrap} has no topic {', '.join(missing)}: create "
            f"{'it' if len(missing) == 1 else 'them'} (kafka-topics.sh --bootstrap-server {bootstrap} --create "
            "--topic NAME --partitions N), or name existing ones in [kafka] input_topics / output_topics"
        )


def _short(err: KafkaException) -> str:
    error = err.args[0] if err.args else None
    return error.str() if hasattr(error, "str") else str(err)


# ---- input --------------------------------------------------------------------------


def read_kafka(config: Config, metrics: Metrics | None = None) -> Callable[[Dataflow], Stream[RawRecord]]:
    """The input step for `build_flow`: every partition of `kafka.input_topics`, merged by time.

    Checks the brokers and topics now, so a bad setup fails before the job starts.
    With `metrics`, the consumer lag per topic is exported
    (`shopguard_kafka_consumer_lag_messages`).
    """
    kafka = config.kafka
    settings = consumer_settings(kafka)
    preflight(settings, kafka.input_topics)
    source = KafkaInput(settings, list(kafka.input_topics), batch_size=config.job.batch_size, metrics=metrics)
    return lambda flow: op.input("read_kafka", flow, source)


class KafkaInput(FixedPartitionedSource[RawRecord, dict]):
    """Every partition of the input topics as one stream of `RawRecord`s in broker-timestamp order.

    Why one merged stream and not Bytewax's `KafkaSource` (a Bytewax
    partition per Kafka partition): partitions read independently drift
    apart in event time by hours while the job catches up on a backlog, and
    the detectors then count one topic's events as late against another's
    (measured: half the violations of a replay missing). Merging by the
    broker timestamp, as Kafka Streams does within a task, gives every
    shard its events in the order they were produced, on any number of
    workers. Decoding and detection still spread over all workers (the
    detect steps are keyed); the reader alone moves about 110,000 messages
    a second on the busy 2-core dev machine, several times what the
    detectors take.

    The snapshot is the next offset to emit per topic-partition (a message
    read but not yet emitted is read again after a restart). With
    `"enable.partition.eof" = "true"` in `[kafka.consumer]` the job stops
    when every partition is read to its end; otherwise it waits for more.
    """

    def __init__(self, settings: dict[str, str], topics: list[str], *, batch_size: int = 1000,
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.settings = dict(settings)
        self.stop_at_end = str(self.settings.pop("enable.partition.eof", "false")).lower() == "true"
        self.topics = topics
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return ["kafka-input"]

    def build_part(self, step_id: str, for_part: str, resume_state: dict | None) -> "_MergedPartition":
        consumer = Consumer(_quiet({
            "auto.offset.reset": "earliest",  # a resume offset gone by retention: read what is left
            **self.settings,
            "group.id": self.settings.get("group.id", "shopguard"),  # required by librdkafka, never joined
            "enable.auto.commit": "false",  # offsets live in the recovery store
            "enable.partition.eof": "true",  # the merge must know when a partition has nothing more
        }))
        return _MergedPartition(consumer, self.topics, self.batch_size, self.stop_at_end, resume_state or {},
                                self.metrics)


class _MergedPartition(StatefulSourcePartition[RawRecord, dict]):
    MAX_BUFFERED = 20  # batches buffered per topic-partition before it is paused
    MAX_WAIT_S = 0.5  # how long to hold everything back for a partition that does not answer

    LAG_EVERY_S = 1.0

    def __init__(self, consumer: Consumer, topics: list[str], batch_size: int, stop_at_end: bool,
                 resume: dict[str, int], metrics: Metrics | None = None) -> None:
        self._consumer = consumer
        self._metrics = metrics
        self._lag_at = 0.0
        self._batch = batch_size
        self._stop_at_end = stop_at_end
        tps = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=CLIENT_TIMEOUT_S).topics[topic]
            if metadata.error is not None:
                raise KafkaSetupError(f"input topic {topic}: {metadata.error.str()}")
            tps += [(topic, p) for p in sorted(metadata.partitions)]
        self._names = [f"{t}/{p}" for t, p in tps]
        self._index = {tp: i for i, tp in enumerate(tps)}
        self._next = [resume.get(name, OFFSET_BEGINNING) for name in self._names]  # next offset to emit
        self._buffers: list[deque] = [deque() for _ in tps]
        self._heads: list[tuple[int, int]] = []  # (timestamp, partition index) of each non-empty buffer
        self._at_end: set[int] = set()  # partitions read to their end (for now)
        self._paused: set[int] = set()
        self._starved_since: float | None = None
        consumer.assign([TopicPartition(t, p, self._next[i]) for i, (t, p) in enumerate(tps)])

    def next_batch(self) -> list[RawRecord]:
        errors = self._fetch()
        out = self._merge()
        if self._metrics is not None and time.monotonic() - self._lag_at >= self.LAG_EVERY_S:
            self._report_lag()
        if errors:
            out = errors + out
        if not out and self._stop_at_end and len(self._at_end) == len(self._buffers) and not self._heads:
            if self._metrics is not None:
                self._report_lag()  # the final word: everything read
            raise StopIteration
        return out

    def _report_lag(self) -> None:
        """Messages behind each topic's high watermarks (cached from fetches: no broker round trip)."""
        self._lag_at = time.monotonic()
        lag: dict[str, int] = {}
        for i, name in enumerate(self._names):
            topic, partition = name.rsplit("/", 1)
            low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, int(partition)), cached=True)
            if high < 0:
                continue  # not fetched yet: unknown
            position = self._next[i] if self._next[i] >= 0 else max(low, 0)  # nothing emitted yet: from the start
            lag[topic] = lag.get(topic, 0) + max(0, high - position)
        for topic, behind in lag.items():
            self._metrics.kafka_consumer_lag.labels(topic).set(behind)

    def _fetch(self) -> list[RawRecord]:
        """Move what the consumer has into the per-partition buffers; errors come back as records."""
        errors = []
        now = int(time.time() * 1000)
        wait = 0.0 if self._heads and self._starved_since is None else 0.005
        for message in self._consumer.consume(self._batch, wait):
            error = message.error()
            i = self._index.get((message.topic(), message.partition()))
            if error is not None:
                if i is None:  # about the client, not a message (e.g. all brokers down): librdkafka retries
                    log.warning("Kafka consumer: %s", error.str())
                elif error.code() == KafkaError._PARTITION_EOF:
                    self._at_end.add(i)
                else:
                    errors.append(_error_record(message, error, now))
                continue
            kind, ts = message.timestamp()
            record = RawRecord(message.value() or b"", self._names[i], message.offset(),
                               ts if kind != TIMESTAMP_NOT_AVAILABLE else now)
            buffer = self._buffers[i]
            if not buffer:
                heapq.heappush(self._heads, (record.received_ms, i))
            buffer.append(record)
            self._at_end.discard(i)
            if len(buffer) > self.MAX_BUFFERED * self._batch and i not in self._paused:
                self._consumer.pause([TopicPartition(message.topic(), message.partition())])
                self._paused.add(i)
        return errors

    def _merge(self) -> list[RawRecord]:
        """Up to a batch of buffered records, oldest broker timestamp first.

        A partition that has nothing buffered but is not at its end is
        "starved": its next record may be the oldest, so nothing is emitted
        until it answers, or until it has been silent for `MAX_WAIT_S`.
        """
        buffers, heads, at_end = self._buffers, self._heads, self._at_end
        if not heads or self._starved(any(not b and i not in at_end for i, b in enumerate(buffers))):
            return []
        out: list[RawRecord] = []
        while heads and len(out) < self._batch:
            _, i = heapq.heappop(heads)
            buffer = buffers[i]
            record = buffer.popleft()
            out.append(record)
            self._next[i] = record.position + 1
            if i in self._paused and len(buffer) < self._batch:
                topic, partition = self._names[i].rsplit("/", 1)
                self._consumer.resume([TopicPartition(topic, int(partition))])
                self._paused.discard(i)
            if buffer:
                heapq.heappush(heads, (buffer[0].received_ms, i))
            elif i not in at_end and self._starved_since is None:
                break  # newly starved: fetch before going on
        return out

    def _starved(self, starved: bool) -> bool:
        """Whether to hold back: a partition is starved and has not been silent for long."""
        if not starved:
            self._starved_since = None
            return False
        now = time.monotonic()
        if self._starved_since is None:
            self._starved_since = now
        return now - self._starved_since < self.MAX_WAIT_S

    def snapshot(self) -> dict[str, int]:
        return dict(zip(self._names, self._next))

    def close(self) -> None:
        self._consumer.close()


def _error_record(message: Any, error: KafkaError, now: int) -> RawRecord:
    """A consumer error as a record that the decode step dead-letters with its topic/partition/offset."""
    offset = message.offset()
    return RawRecord(
        f"kafka consumer error: {error.str()} ({error.name()})".encode(),
        f"{message.topic() or '?'}/{'?' if message.partition() is None else message.partition()}",
        -1 if offset is None else offset,
        now,
    )


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
                self._producer = Producer(_quiet(self.producer_settings))
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
        return Consumer(_quiet({
            **self.consumer_settings,
            "group.id": "shopguard-output-readback",  # required by librdkafka, never joined
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "fetch.wait.max.ms": "10",
        }))

    def _topic_partitions(self, consumer: Consumer) -> list[tuple[str, int]]:
        tps = []
        for topic in self.topics:
            metadata = consumer.list_topics(topic, timeout=CLIENT_TIMEOUT_S).topics[topic]
            if metadata.error is not None:
                raise KafkaSetupError(f"output topic {topic}: {metadata.error.str()}")
            tps += [(topic, p) for p in sorted(metadata.partitions)]
        return tps

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
