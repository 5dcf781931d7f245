"""The control channel of a Bytewax cluster: stop together, and read in step.

Bytewax's clustering is the only link between the processes of a job, so
the channel is a small part of the dataflow itself, beside the job's steps::

    control_source (one part per process) -> one copy per process -> control_sink (one part per process)

Each process has one `Control`. Its source part emits what the process
`post`s; every process's sink part hands what arrives to its `Control`
(`receive`). A part is listed only by its own process, and Bytewax builds
a partition on a worker that lists it, so each part lives on its process.

What travels on it:

- `Stop`: the process got SIGTERM or SIGINT. Every process stops reading:
  its input partitions end (`Stoppable`), so the dataflow drains as at
  the end of a file: held items are applied, sinks flushed, a last
  snapshot taken.
- `PartDone(part)`: an input partition ended (end of a file, a Kafka
  source told to stop at the end, or a stop). The channel's own parts end
  once every input partition of the cluster has, so a bounded input still
  ends the job.
- `Frontier(part, ts)`: how far (broker time) a Kafka reader has read, so
  that no reader runs ahead of the slowest (`pipeline.sources.kafka`).
  Readers emit these in their own output (`Input.news`), so they leave at
  once rather than at the channel's next poll.

Raw records `inject`ed (a `policy.changed` event) go into the job's input
stream instead, decoded like any input. The channel also carries the state
the job keeps across restarts besides its steps (`state`, snapshotted by
process 0's part): the last policy version announced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from pipeline.logs import event
from pipeline.sources.raw import RawRecord

log = logging.getLogger("shopguard.control")

INF = 2**62  # a frontier beyond any time: the reader has nothing older left
POLL = timedelta(milliseconds=50)  # how often an idle control part looks for something to send
STOP_POLL = timedelta(milliseconds=100)  # how late an input partition may notice a stop


class Stop(NamedTuple):
    process_id: int
    reason: str


class PartDone(NamedTuple):
    part: str


class Frontier(NamedTuple):
    part: str
    ts: int


def part_name(process_id: int) -> str:
    """The control part of a process (sorted order is process order, as Bytewax indexes sink parts)."""
    return f"control-{process_id:04d}"


class Control:
    """One process's end of the control channel (thread-safe: workers and the signal handler use it)."""

    def __init__(self, process_id: int = 0, processes: int = 1) -> None:
        self.process_id = process_id
        self.processes = processes
        self.stop = threading.Event()  # this process stops reading
        self.started = threading.Event()  # the dataflow runs: the channel's part is built (`state` resumed)
        self.stop_reason = ""
        self.inputs: set[str] = set()  # every input partition of the cluster
        self.done: set[str] = set()  # input partitions that ended, cluster-wide
        self.frontiers: dict[str, int] = {}
        self.state: dict[str, Any] = {}  # kept across restarts in process 0's snapshot
        self.on_poll: Callable[[], None] = lambda: None  # health: the dataflow turns
        self.at_end: list[Callable[[], None]] = []  # run once the dataflow has drained (`finish`)
        self._outbox: deque = deque()
        self._lock = threading.Lock()

    # -- this process --------------------------------------------------------------------------

    def expect(self, parts: list[str]) -> None:
        """Input partitions (of the whole cluster) the channel waits for before it ends."""
        self.inputs.update(parts)

    def post(self, message: Any) -> None:
        """Send to every process (this one included)."""
        self._outbox.append(message)

    def inject(self, record: RawRecord) -> None:
        """Put a raw record into the job's input stream (this process's)."""
        self._outbox.append(record)

    def request_stop(self, reason: str) -> None:
        """Stop reading here and tell every other process to (safe in a signal handler)."""
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()
            self.post(Stop(self.process_id, reason))

    def finish(self) -> None:
        """The dataflow has drained (its input ended or it was stopped): run the `at_end` hooks."""
        for hook in self.at_end:
            hook()

    def take(self) -> list[Any]:
        out = []
        while self._outbox:
            out.append(self._outbox.popleft())
        return out

    def finished(self) -> bool:
        """Every input partition of the cluster ended and nothing is left to send."""
        with self._lock:
            return bool(self.inputs) and self.inputs <= self.done and not self._outbox

    def others_frontier(self, part: str) -> int | None:
        """The slowest other reader's frontier (None until every reader has reported)."""
        with self._lock:
            others = [p for p in self.inputs if p != part]
            if any(p not in self.frontiers for p in others):
                return None
            return min((self.frontiers[p] for p in others), default=INF)

    # -- from every process --------------------------------------------------------------------

    def receive(self, message: Any) -> None:
        with self._lock:
            if isinstance(message, Frontier):
                if message.part not in self.done:
                    self.frontiers[message.part] = message.ts
            elif isinstance(message, PartDone):
                self.done.add(message.part)
                self.frontiers[message.part] = INF
            elif isinstance(message, Stop) and not self.stop.is_set():
                self.stop_reason = f"{message.reason} to process {message.process_id}"
                self.stop.set()
                event(log, logging.INFO, "stopping: another process of the cluster stopped",
                      process=message.process_id, reason=message.reason)


# ---- the channel as Bytewax steps ---------------------------------------------------------------


class _ControlPartition(StatefulSourcePartition[Any, dict]):
    def __init__(self, control: Control, resume: dict | None) -> None:
        self.control = control
        if resume:
            control.state.update(resume)
        control.started.set()

    def next_batch(self) -> list[Any]:
        control = self.control
        control.on_poll()
        out = control.take()
        if not out and control.finished():
            raise StopIteration
        return out

    def next_awake(self) -> datetime | None:
        return datetime.now(timezone.utc) + POLL

    def snapshot(self) -> dict:
        return dict(self.control.state)


class ControlSource(FixedPartitionedSource[Any, dict]):
    def __init__(self, control: Control) -> None:
        self.control = control

    def list_parts(self) -> list[str]:
        return [part_name(self.control.process_id)]

    def build_part(self, step_id: str, for_part: str, resume_state: dict | None) -> _ControlPartition:
        return _ControlPartition(self.control, resume_state)


class _ControlSinkPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, control: Control) -> None:
        self.control = control

    def write_batch(self, messages: list[Any]) -> None:
        for message in messages:
            self.control.receive(message)

    def snapshot(self) -> None:
        return None


class ControlSink(FixedPartitionedSink[Any, None]):
    def __init__(self, control: Control) -> None:
        self.control = control

    def list_parts(self) -> list[str]:
        return [part_name(self.control.process_id)]

    def part_fn(self, item_key: str) -> int:
        return int(item_key.rsplit("-", 1)[1])

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ControlSinkPartition:
        return _ControlSinkPartition(self.control)


def add_control(flow: Dataflow, control: Control, news: Stream | None = None) -> Stream[RawRecord]:
    """Add the channel to `flow`, carrying also `news` (readers' frontiers, straight from their input step).

    Returns the raw records injected into the input (policy changes).
    """
    out = op.input("control_input", flow, ControlSource(control))
    split = op.branch("split_injected_records", out, lambda x: isinstance(x, RawRecord))
    messages = split.falses if news is None else op.merge("control_messages", split.falses, news)
    every = range(control.processes)
    copies = op.flat_map("control_to_every_process", messages, lambda m: [(part_name(i), m) for i in every])
    op.output("control_channel", copies, ControlSink(control))
    return split.trues


# ---- inputs that stop when told ---------------------------------------------------------------


class _StoppablePartition(StatefulSourcePartition[Any, Any]):
    def __init__(self, part: StatefulSourcePartition, key: str, control: Control, health: Any) -> None:
        self.part, self.key, self.control, self.health = part, key, control, health
        self.ended = False

    def next_batch(self) -> list[Any]:
        if self.control.stop.is_set():
            self._end("stopped")
            raise StopIteration
        try:
            batch = self.part.next_batch()
        except StopIteration:
            self._end("input ended")
            raise
        if self.health is not None:
            waiting = getattr(self.part, "waiting", None)
            self.health.polled(self.key, records=len(batch),
                               waiting=bool(batch) or (waiting is not None and waiting()))
        return batch

    def _end(self, why: str) -> None:
        if not self.ended:
            self.ended = True
            self.control.post(PartDone(self.key))
            if self.health is not None:
                self.health.ended(self.key)
            position = self.part.snapshot()
            event(log, logging.INFO, f"input partition {why}", part=self.key,
                  **({} if isinstance(position, dict) else {"position": position}))

    def next_awake(self) -> datetime | None:
        at = self.part.next_awake()
        if at is None:
            return None
        return min(at, datetime.now(timezone.utc) + STOP_POLL)

    def snapshot(self) -> Any:
        return self.part.snapshot()

    def close(self) -> None:
        self.part.close()


class Stoppable(FixedPartitionedSource[Any, Any]):
    """A source whose partitions end when the process stops; tells the channel when each ends.

    `parts` are the input partitions of the whole cluster (default: what
    this process lists, when every process lists the same).
    """

    def __init__(self, source: FixedPartitionedSource, control: Control, *, parts: list[str] | None = None,
                 health: Any = None) -> None:
        self.source, self.control, self.health = source, control, health
        control.expect(parts if parts is not None else source.list_parts())

    def list_parts(self) -> list[str]:
        return self.source.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _StoppablePartition:
        return _StoppablePartition(self.source.build_part(step_id, for_part, resume_state), for_part, self.control,
                                   self.health)


class Input:
    """An input step of the job: `Input(step_id, source)(flow)` adds it.

    Readers return one; the engine `attach`es the process's control
    channel and health first, so its partitions stop when told and report
    their progress. `parts` are the source's partitions across the whole
    cluster, when processes list different ones (Kafka).
    """

    def __init__(self, step_id: str, source: FixedPartitionedSource, parts: list[str] | None = None,
                 news: bool = False) -> None:
        self.step_id, self.source, self.parts = step_id, source, parts
        self.news = news  # its output carries `Frontier`s for the control channel besides records

    def attach(self, control: Control, health: Any = None) -> None:
        """Stop when `control` says, report to `health`; the source's own `attach` and `finish` are called too."""
        reader = self.source
        if hasattr(reader, "attach"):
            reader.attach(control, health)
        if hasattr(reader, "finish"):
            control.at_end.append(reader.finish)
        self.source = Stoppable(reader, control, parts=self.parts, health=health)

    def __call__(self, flow: Dataflow) -> Stream[Any]:
        return op.input(self.step_id, flow, self.source)

    def add(self, flow: Dataflow, control: Control) -> Stream[RawRecord]:
        """This input and the control channel (carrying its news): the job's raw records."""
        raw = self(flow)
        news = None
        if self.news:
            split = op.branch("split_reader_news", raw, lambda x: type(x) is Frontier)
            raw, news = split.falses, split.trues
        return op.merge("inputs", raw, add_control(flow, control, news))
