"""Kafka in: every partition of the input topics, merged by broker timestamp, as `RawRecord`s.

`read_kafka(config)` is the `read` argument of `engine.dataflow.build_flow`
for a job that reads Kafka. It checks the brokers and topics first
(`pipeline.kafka.preflight`).

One consumer reads every partition of the input topics and merges them by
broker timestamp (`KafkaInput`: why not Bytewax's `KafkaSource` is in its
docstring). Its snapshot is the next offset per topic-partition, kept in the
recovery store; no consumer group is used. Each message becomes a
`RawRecord` (origin `topic/partition`, position the offset, the broker's
timestamp); a consumer error about a partition becomes one too, so the
decode step dead-letters it with its topic/partition/offset like any bad
bytes. With `"enable.partition.eof" = "true"` in `[kafka.consumer]` the job
stops at the end of the topics instead of waiting for more.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import Any, Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, TopicPartition

from pipeline.config import Config
from pipeline.kafka import CLIENT_TIMEOUT_S, KafkaSetupError, consumer_settings, log, preflight, quiet
from pipeline.sources.raw import RawRecord
from sinks.metrics import Metrics


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
        consumer = Consumer(quiet({
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


