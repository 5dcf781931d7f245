"""Kafka in: this process's partitions of the input topics, merged by broker timestamp, as `RawRecord`s.

`read_kafka(config)` is the input step (`pipeline.sources.control.Input`)
of a job that reads Kafka. It checks the brokers and topics first
(`pipeline.kafka.preflight`).

Each process of a cluster reads its own partitions: process `i` of `N`
reads partition numbers `p` with `p % N == i` of every input topic, so the
events of one key, which producers send to the same partition number of
each topic (co-partitioned, as Kafka Streams requires), are read by one
process. Within a process one consumer reads its partitions and merges them
by broker timestamp (`KafkaInput`: why, in its docstring). Across
processes the readers keep in step through the control channel: no reader
emits a record more than `[kafka] read_ahead_seconds` of event time past the
slowest reader's position (converted to broker time from the stream's own
pace, `Pace`), so one process catching up on a backlog does not make
another's events late.

Each message becomes a `RawRecord` (origin `topic/partition`, position the
offset, the broker's timestamp); a consumer error about a partition becomes
one too, so the decode step dead-letters it with its
topic/partition/offset like any bad bytes. With `"enable.partition.eof" =
"true"` in `[kafka.consumer]` the job stops at the end of the topics
instead of waiting for more.

Offsets: the snapshot (kept in the recovery store) is the next offset per
topic-partition. With `[kafka] commit_offsets` (the default) the offsets
of the previous snapshot, durable once the next one is taken, are committed
to the consumer group (`group.id`, default `shopguard`), and the final
positions once the dataflow has drained, so lag tools see the job. The
group is never joined (partitions are assigned), and a process without a
snapshot of its partitions (a new recovery store, another process count)
starts from the group's offsets, or from the beginning.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, TopicPartition,
)

from pipeline.config import Config
from pipeline.kafka import (
    CLIENT_TIMEOUT_S, KafkaSetupError, consumer_settings, preflight, quiet, reachability, topic_partitions,
)
from pipeline.logs import event
from pipeline.sources.control import INF, Control, Frontier, Input
from pipeline.sources.raw import RawRecord
from sinks.metrics import Metrics

log = logging.getLogger("shopguard.kafka")


# ---- input --------------------------------------------------------------------------


def read_kafka(config: Config, metrics: Metrics | None = None) -> Input:
    """The input step: this process's partitions of `kafka.input_topics`, merged by time.

    Checks the brokers and topics now, so a bad setup fails before the job starts.
    With `metrics`, the consumer lag per topic is exported
    (`shopguard_kafka_consumer_lag_messages`).
    """
    kafka, cluster = config.kafka, config.cluster
    settings = consumer_settings(kafka)
    preflight(settings, kafka.input_topics)
    source = KafkaInput(settings, list(kafka.input_topics), batch_size=config.job.batch_size, metrics=metrics,
                        process_id=cluster.process_id, processes=cluster.processes,
                        commit=kafka.commit_offsets, read_ahead_ms=int(kafka.read_ahead_seconds * 1000))
    return Input("read_kafka", source, parts=source.cluster_parts(), news=cluster.processes > 1)


def part_key(process_id: int, processes: int) -> str:
    """The Bytewax partition of process `process_id`: its Kafka partitions' offsets live under this key.

    >>> part_key(0, 1), part_key(1, 2)
    ('kafka-input', 'kafka-input-1-of-2')
    """
    return "kafka-input" if processes == 1 else f"kafka-input-{process_id}-of-{processes}"


class KafkaInput(FixedPartitionedSource[RawRecord, dict]):
    """This process's partitions of the input topics as one stream of `RawRecord`s in broker-timestamp order.

    Why one merged stream per process and not Bytewax's `KafkaSource` (a
    Bytewax partition per Kafka partition): partitions read independently
    drift apart in event time by hours while the job catches up on a
    backlog, and the detectors then count one topic's events as late against
    another's (measured: half the violations of a replay missing). Merging
    by the broker timestamp, as Kafka Streams does within a task, gives
    every shard its events in the order they were produced, on any number
    of workers; between processes the control channel keeps the readers
    within `read_ahead_ms` (event time) of each other. Decoding and detection spread over
    all workers (the detect steps are keyed); one reader moves about
    110,000 messages a second on the busy 2-core dev machine, several times
    what the detectors of one process take.

    The snapshot is the next offset to emit per topic-partition (a message
    read but not yet emitted is read again after a restart).
    """

    def __init__(self, settings: dict[str, str], topics: list[str], *, batch_size: int = 1000,
                 metrics: Metrics | None = None, process_id: int = 0, processes: int = 1, commit: bool = True,
                 read_ahead_ms: int = 30_000) -> None:
        self.metrics = metrics
        self.settings = dict(settings)
        self.stop_at_end = str(self.settings.pop("enable.partition.eof", "false")).lower() == "true"
        self.topics = topics
        self.batch_size = batch_size
        self.process_id, self.processes = process_id, processes
        self.commit = commit
        self.read_ahead_ms = read_ahead_ms
        self.control: Control | None = None
        self.positions: dict[str, int] = {}  # the last snapshot, committed once the dataflow has drained

    def attach(self, control: Control, health: Any = None) -> None:
        """Keep in step with the other processes' readers; report broker trouble to `/readyz`."""
        self.control = control
        if health is not None:
            health.add_check("kafka", lambda: reachability.problem)

    def list_parts(self) -> list[str]:
        return [part_key(self.process_id, self.processes)]

    def cluster_parts(self) -> list[str]:
        return [part_key(i, self.processes) for i in range(self.processes)]

    def consumer(self) -> Consumer:
        return Consumer(quiet({
            "auto.offset.reset": "earliest",  # a resume offset gone by retention: read what is left
            **self.settings,
            "group.id": self.group(),  # offsets are committed to it; never joined (partitions are assigned)
            "enable.auto.commit": "false",  # we commit what is durably processed, see the module docstring
            "enable.partition.eof": "true",  # the merge must know when a partition has nothing more
        }))

    def group(self) -> str:
        return self.settings.get("group.id", "shopguard")

    def build_part(self, step_id: str, for_part: str, resume_state: dict | None) -> "_MergedPartition":
        consumer = self.consumer()
        tps = self._my_partitions(consumer)
        start, origin = _start_offsets(consumer, tps, resume_state, self.commit)
        event(log, logging.INFO, "reading Kafka partitions", part=for_part, group=self.group(), start=origin,
              partitions=",".join(f"{t}/{p}" for t, p in tps) or "none")
        return _MergedPartition(consumer, tps, start, self, for_part)

    def _my_partitions(self, consumer: Consumer) -> list[tuple[str, int]]:
        tps = []
        for topic, partitions in topic_partitions(consumer, self.topics, "input").items():
            mine = [p for p in partitions if p % self.processes == self.process_id]
            if not mine:
                event(log, logging.WARNING, f"topic {topic} has {len(partitions)} partitions for "
                      f"{self.processes} processes: this one reads none of it; give it at least "
                      f"{self.processes} partitions", topic=topic, process=self.process_id)
            tps += [(topic, p) for p in mine]
        return tps

    def finish(self) -> None:
        """After the dataflow drained: commit the final positions (all processed, the last snapshot written)."""
        if self.commit and self.positions:
            consumer = self.consumer()
            try:
                _commit(consumer, self.positions, asynchronous=False)
            finally:
                consumer.close()


def _start_offsets(consumer: Consumer, tps: list[tuple[str, int]], resume: dict | None,
                   use_group: bool) -> tuple[dict[str, int], str]:
    """Where each partition starts: its snapshot, else the consumer group's committed offset, else the beginning."""
    names = [f"{t}/{p}" for t, p in tps]
    if resume:
        return {name: resume.get(name, OFFSET_BEGINNING) for name in names}, "snapshot"
    if use_group and tps:
        committed = _committed(consumer, [TopicPartition(t, p) for t, p in tps])
        found = {f"{tp.topic}/{tp.partition}": tp.offset for tp in committed if tp.offset >= 0}
        if found:
            return {name: found.get(name, OFFSET_BEGINNING) for name in names}, "consumer group"
    return dict.fromkeys(names, OFFSET_BEGINNING), "beginning"


def _committed(consumer: Consumer, tps: list[TopicPartition]) -> list[TopicPartition]:
    """The group's committed offsets; retried while the broker sets up the group's coordinator."""
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while True:
        try:
            return consumer.committed(tps, timeout=CLIENT_TIMEOUT_S)
        except KafkaException as err:
            error = err.args[0] if err.args else None
            fatal = hasattr(error, "fatal") and error.fatal()
            if fatal or time.monotonic() > deadline:
                raise KafkaSetupError(f"reading the consumer group's offsets failed ({_text(err)}): check the "
                                      "brokers, and that the job may read its group (ACLs)") from None
            time.sleep(0.5)


def _text(err: KafkaException) -> str:
    error = err.args[0] if err.args else None
    return error.str() if hasattr(error, "str") else str(err)


def _commit(consumer: Consumer, positions: dict[str, int], *, asynchronous: bool) -> None:
    offsets = [TopicPartition(name.rsplit("/", 1)[0], int(name.rsplit("/", 1)[1]), offset)
               for name, offset in positions.items() if offset >= 0]
    if offsets:
        try:
            consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as err:  # lag tools see stale offsets; processing is not affected
            event(log, logging.WARNING, "committing offsets to the consumer group failed",
                  error=str(err), error_class="KafkaException")


class _MergedPartition(StatefulSourcePartition[RawRecord, dict]):
    MAX_BUFFERED = 20  # batches buffered per topic-partition before it is paused
    # How long to hold everything back for a partition that does not answer (a broker on a busy
    # machine can take more than a second): past this, the merge goes on without it.
    MAX_WAIT_S = 5.0
    FIRST_FETCH_S = 5.0  # ... and for its first answer, when the reader starts
    # How soon a reader that had nothing to emit looks again: at the end of its partitions, or held
    # back (for the other processes' news) or starved. Each look costs a step of the whole dataflow;
    # Bytewax's default (1 ms) kept an idle process of a cluster at 10-20% of a core.
    AT_END_POLL = timedelta(milliseconds=50)
    WAITING_POLL = timedelta(milliseconds=5)
    LAG_EVERY_S = 1.0

    def __init__(self, consumer: Consumer, tps: list[tuple[str, int]], start: dict[str, int], source: KafkaInput,
                 key: str) -> None:
        self._consumer = consumer
        self._source = source
        self._key = key
        self._metrics = source.metrics
        self._lag_at = 0.0
        self._batch = source.batch_size
        self._stop_at_end = source.stop_at_end
        self._names = [f"{t}/{p}" for t, p in tps]
        self._index = {tp: i for i, tp in enumerate(tps)}
        self._next = [start[name] for name in self._names]  # next offset to emit
        self._last_ts = [-INF] * len(tps)  # broker time of the last record emitted, per partition
        self._buffers: list[deque] = [deque() for _ in tps]
        self._heads: list[tuple[int, int]] = []  # (timestamp, partition index) of each non-empty buffer
        self._at_end: set[int] = set()  # partitions read to their end (for now)
        self._paused: set[int] = set()
        self._starved_since: float | None = None
        # When each partition last ran dry (not at its end): past MAX_WAIT_S it no longer holds others back.
        self._dry_since = dict.fromkeys(range(len(tps)), time.monotonic() + self.FIRST_FETCH_S - self.MAX_WAIT_S)
        self._reported = None  # the frontier last posted to the other processes
        self._held_since: float | None = None
        self._held_s = 0.0  # time spent waiting for slower processes (logged at the end)
        self._committable: dict[str, int] = {}  # the previous snapshot: durable once the next is taken
        self._pace = Pace()
        self._idle = False
        self._epochs = 0  # snapshots taken: Bytewax snapshots a source partition at the end of each epoch
        self._errors_logged: set[tuple[str, int]] = set()
        consumer.assign([TopicPartition(t, p, self._next[i]) for i, (t, p) in enumerate(tps)])

    def next_batch(self) -> list[Any]:
        errors = self._fetch()
        out = self._merge(self._limit())
        if self._metrics is not None and time.monotonic() - self._lag_at >= self.LAG_EVERY_S:
            self._report_lag()
        if errors:
            out = errors + out
        self._idle = not out
        news = self._frontier_news()
        if not out and not news and self._stop_at_end and len(self._at_end) == len(self._buffers) and not self._heads:
            if self._metrics is not None:
                self._report_lag()  # the final word: everything read
            raise StopIteration
        return news + out

    def waiting(self) -> bool:
        """Input is waiting to be read: something buffered, or a partition not read to its end."""
        return bool(self._heads) or len(self._at_end) < len(self._buffers)

    # -- keeping in step with the other processes ------------------------------------------------

    def _limit(self) -> int:
        """The newest broker time this reader may emit: the slowest other reader's position + read-ahead."""
        control = self._source.control
        if control is None or control.processes == 1:
            return INF
        others = control.others_frontier(self._key)
        if others is None:
            return -INF
        # Also no more than read-ahead past this reader's own position per batch: a batch in flight
        # to other processes' shards is ahead of what they know, by as much as it spans.
        own = self._heads[0][0] if self._heads else INF
        return min(others, own) + self._pace.broker_ms(self._source.read_ahead_ms)

    def _frontier(self) -> int:
        """Broker time below which this reader has nothing left to emit (INF: at the end of everything)."""
        frontier = INF
        now = time.monotonic()
        for i, buffer in enumerate(self._buffers):
            if buffer:
                frontier = min(frontier, buffer[0].received_ms)
            elif i not in self._at_end and now - self._dry_since.get(i, now) < self.MAX_WAIT_S:
                frontier = min(frontier, self._last_ts[i])  # its next record is not known yet
        return frontier

    def _frontier_news(self) -> list[Frontier]:
        """This reader's new frontier, when it moved: it leaves with the batch, for the control channel."""
        control = self._source.control
        if control is None or control.processes == 1:
            return []
        frontier = self._frontier()
        if frontier == self._reported:
            return []
        self._reported = frontier
        return [Frontier(self._key, frontier)]

    # -- reading and merging -----------------------------------------------------------------------

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
        """Move what the consumer has into the per-partition buffers; errors come back as records.

        While a partition has nothing buffered, what librdkafka has already
        fetched is drained further (up to `MAX_BUFFERED` batches): its records
        may sit behind other partitions' in the client's queue, and it must
        not look silent (see `_merge`) just because they do.
        """
        errors: list[RawRecord] = []
        wait = 0.0 if self._heads and self._starved_since is None else 0.005
        for _ in range(self.MAX_BUFFERED):
            messages = self._consumer.consume(self._batch, wait)
            if messages:
                reachability.reached()
            self._absorb(messages, errors)
            if len(messages) < self._batch or not self._dry():
                break
        return errors

    def _dry(self) -> bool:
        """Some partition has nothing buffered and is not at its end."""
        return any(not b and i not in self._at_end for i, b in enumerate(self._buffers))

    def _absorb(self, messages: list, errors: list[RawRecord]) -> None:
        now = int(time.time() * 1000)
        for message in messages:
            error = message.error()
            i = self._index.get((message.topic(), message.partition()))
            if error is not None:
                if i is None:  # about the client, not a message (e.g. all brokers down): librdkafka retries
                    event(log, logging.WARNING, f"Kafka consumer: {error.str()}", error_class=error.name())
                elif error.code() == KafkaError._PARTITION_EOF:
                    self._at_end.add(i)
                    self._dry_since.pop(i, None)
                else:
                    errors.append(self._error(message, error, now))
                continue
            kind, ts = message.timestamp()
            record = RawRecord(message.value() or b"", self._names[i], message.offset(),
                               ts if kind != TIMESTAMP_NOT_AVAILABLE else now)
            buffer = self._buffers[i]
            if not buffer:
                heapq.heappush(self._heads, (record.received_ms, i))
            buffer.append(record)
            self._pace.see(record)  # as fetched: the pace is known before the first batch leaves
            self._at_end.discard(i)
            self._dry_since.pop(i, None)
            if len(buffer) > self.MAX_BUFFERED * self._batch and i not in self._paused:
                self._consumer.pause([TopicPartition(message.topic(), message.partition())])
                self._paused.add(i)

    def _merge(self, limit: int) -> list[RawRecord]:
        """Up to a batch of buffered records no newer than `limit`, oldest broker timestamp first.

        A partition that has nothing buffered but is not at its end is
        "starved": its next record may be the oldest, so nothing is emitted
        until it answers, or until it has been silent for `MAX_WAIT_S`.
        """
        buffers, heads, at_end = self._buffers, self._heads, self._at_end
        if not heads or self._starved(self._dry()):
            return []
        out: list[RawRecord] = []
        while heads and len(out) < self._batch and heads[0][0] <= limit:
            _, i = heapq.heappop(heads)
            buffer = buffers[i]
            record = buffer.popleft()
            out.append(record)
            self._next[i] = record.position + 1
            self._last_ts[i] = record.received_ms
            if i in self._paused and len(buffer) < self._batch:
                topic, partition = self._names[i].rsplit("/", 1)
                self._consumer.resume([TopicPartition(topic, int(partition))])
                self._paused.discard(i)
            if buffer:
                heapq.heappush(heads, (buffer[0].received_ms, i))
                continue
            self._dry_since[i] = time.monotonic()
            if i not in at_end and self._starved_since is None:
                break  # newly starved: fetch before going on
        self._held(bool(heads) and heads[0][0] > limit)
        return out

    def _held(self, held: bool) -> None:
        now = time.monotonic()
        if held and self._held_since is None:
            self._held_since = now
        elif not held and self._held_since is not None:
            self._held_s += now - self._held_since
            self._held_since = None

    def next_awake(self) -> datetime | None:
        if not self._idle:
            return None
        at_end = not self._heads and len(self._at_end) == len(self._buffers)
        return datetime.now(timezone.utc) + (self.AT_END_POLL if at_end else self.WAITING_POLL)

    def _starved(self, starved: bool) -> bool:
        """Whether to hold back: a partition is starved and has not been silent for long."""
        if not starved:
            self._starved_since = None
            return False
        now = time.monotonic()
        if self._starved_since is None:
            self._starved_since = now
        return now - self._starved_since < self.MAX_WAIT_S

    def _error(self, message: Any, error: KafkaError, now: int) -> RawRecord:
        """A consumer error about a partition: a dead letter, logged once per partition and kind."""
        record = _error_record(message, error, now)
        if (record.origin, error.code()) not in self._errors_logged:
            self._errors_logged.add((record.origin, error.code()))
            event(log, logging.WARNING, f"Kafka consumer error, dead-lettered: {error.str()} (further ones of this "
                  "partition are counted, not logged)", source=record.origin, offset=record.position,
                  error_class=error.name())
        return record

    # -- snapshots and the consumer group ----------------------------------------------------------

    def snapshot(self) -> dict[str, int]:
        positions = dict(zip(self._names, self._next))
        self._epochs += 1
        if self._source.commit and self._committable:
            _commit(self._consumer, self._committable, asynchronous=True)  # the previous snapshot is durable now
            event(log, logging.DEBUG, "offsets of the previous snapshot committed to the consumer group",
                  part=self._key, epoch=self._epochs, group=self._source.group())
        self._committable = self._source.positions = positions
        return positions

    def close(self) -> None:
        self._held(False)
        if self._held_s >= 1.0:
            event(log, logging.INFO, "waited for slower processes of the cluster", part=self._key,
                  seconds=round(self._held_s, 1), read_ahead_seconds=self._source.read_ahead_ms / 1000)
        self._consumer.close()


class _EventTime(msgspec.Struct):
    ts: int


class Pace:
    """How much event time a millisecond of this stream's broker time holds, from a sample of its records.

    Live, producers stamp events as they happen (about 1 ms per ms); a
    backlog produced in bulk can hold minutes of event time in one ms.
    Medians at both ends of a window of samples keep a hostile `ts` from
    moving it.

    >>> pace = Pace()
    >>> for i in range(600):  # 100 ms of event time per ms of broker time
    ...     pace.see(RawRecord(b'{"ts": %d}' % (i * 1000), "t/0", i, i * 10))
    >>> pace.broker_ms(30_000), Pace().broker_ms(30_000)
    (300, 1)
    """

    EVERY = 8  # sample one record in this many
    WINDOW = 64
    ENDS = 8  # samples whose medians mark each end of the window

    def __init__(self) -> None:
        self.samples: deque[tuple[int, int]] = deque(maxlen=self.WINDOW)
        self.seen = 0

    def see(self, record: RawRecord) -> None:
        self.seen += 1
        if self.seen % self.EVERY:
            return
        try:
            self.samples.append((record.received_ms, _event_time(record.raw).ts))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            pass  # not an event (or a poison pill nested too deep): the decode step dead-letters it

    def broker_ms(self, event_ms: int) -> int:
        """`event_ms` of event time as broker time (at least 1 ms; 1 ms until the stream's pace is known)."""
        if len(self.samples) < 2 * self.ENDS:
            return 1
        samples = list(self.samples)
        first, last = samples[: self.ENDS], samples[-self.ENDS:]
        broker = _median(s[0] for s in last) - _median(s[0] for s in first)
        event = _median(s[1] for s in last) - _median(s[1] for s in first)
        if broker <= 0:
            return 1
        if event <= 0:
            return event_ms
        return max(1, min(event_ms, event_ms * broker // event))


def _median(values) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


_event_time = msgspec.json.Decoder(_EventTime).decode


def _error_record(message: Any, error: KafkaError, now: int) -> RawRecord:
    """A consumer error as a record that the decode step dead-letters with its topic/partition/offset."""
    offset = message.offset()
    return RawRecord(
        f"kafka consumer error: {error.str()} ({error.name()})".encode(),
        f"{message.topic() or '?'}/{'?' if message.partition() is None else message.partition()}",
        -1 if offset is None else offset,
        now,
    )


