"""The one shopguard dataflow, used by `run` and `replay`.

Read it top to bottom; every step id says what the step does::

    read_input -> decode -> split_dead_letters ----------------------------> write_outputs
                              |
                              v
                    split_governance --(appeals, lessons)------------+
                              |                                      |
                  route: listing / seller / creator / actor          |
                              |                                      v
               detect_listings | detect_sellers | detect_creators | detect_actors
                              |                                      |
                              +------------ violations --------------+--> ledger --> write_outputs
                                                                         (actions, standing)

Detect steps are keyed by `family/shard` (see `routing.py`) and fed straight
from the stateless decode step, so each shard sees its events in arrival
order on any number of workers: the violations of a replay do not depend on
the worker count. The ledger, keyed by actor, orders what it receives by
event time for the same reason (see `ledger.py`).
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from detectors import REGISTRY
from pipeline.config import Config, ConfigError
from pipeline.detect import DetectShard, ShardState
from pipeline.events import Event, InvalidEvent, decode
from pipeline.ledger import LedgerShard, LedgerShardState
from pipeline.policy import Policy
from pipeline.records import SINK_OF, DeadLetter, OutputRecord, encode
from pipeline.routing import FAMILY_OF, GOVERNANCE_TYPES, ledger_key, route_key
from pipeline.sources import RawRecord
from sinks.metrics import Metrics

DETECT_FAMILIES = ("listing", "seller", "creator", "actor")


@dataclass
class JobContext:
    """What the steps need besides their input: configuration, policy, metrics.

    Every detector's config table is validated here, at start-up, so a typo
    stops the job before it reads anything.
    """

    config: Config
    policy: Policy
    metrics: Metrics
    replay: bool  # bounded input: the ledger orders everything before applying it
    detector_configs: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.config.detectors) - set(REGISTRY))
        if unknown:
            raise ConfigError(f"config: unknown table [detectors.{unknown[0]}]; known: {', '.join(REGISTRY)}")
        self.detector_configs = {
            name: self.config.detector_config(name, config_type) for name, (_, config_type) in REGISTRY.items()
        }

    def detectors_for(self, family: str) -> list[Any]:
        """Instances of every configured detector that reads this family's events."""
        return [
            cls(self.detector_configs[name])
            for name, (cls, _) in REGISTRY.items()
            if family in {FAMILY_OF[t] for t in cls.event_types}
        ]


# ---- decode -------------------------------------------------------------------


def decode_batch(ctx: JobContext) -> Callable[[list[RawRecord]], list[Event | DeadLetter]]:
    """Decode a batch of raw records; invalid ones become dead letters."""
    metrics = ctx.metrics
    input_records = {}

    def decode_all(records: list[RawRecord]) -> list[Event | DeadLetter]:
        out: list[Event | DeadLetter] = []
        newest = None
        for record in records:
            try:
                event = decode(record.raw)
            except InvalidEvent as err:
                out.append(_dead_letter(record, err))
                metrics.dead_letters_child(err.reason).inc()
                continue
            metrics.events_child(event.topic, event.type).inc()
            if newest is None or event.ts > newest:
                newest = event.ts
            out.append(event)
        if records:
            metrics.note_batch_read(records[0].received_ms)
            counter = input_records.get(records[0].origin)
            if counter is None:
                counter = input_records[records[0].origin] = metrics.input_records.labels(
                    "kafka" if "/" in records[0].origin else records[0].origin.split(":")[0])
            counter.inc(len(records))
        if newest is not None:
            metrics.observe_event_time(newest, time.time())
        return out

    return decode_all


def _dead_letter(record: RawRecord, err: InvalidEvent) -> DeadLetter:
    return DeadLetter(
        raw=record.raw.decode("utf-8", errors="replace"),
        error=str(err),
        source=record.source,
        ts=record.received_ms,
        reason=err.reason,
    )


# ---- stateful steps -------------------------------------------------------------


class DetectLogic(op.StatefulBatchLogic):
    """Bytewax adapter around one `DetectShard` (all the logic lives there)."""

    def __init__(self, ctx: JobContext, step: str, family: str, resume: bytes | None) -> None:
        job = ctx.config.job
        self.shard = DetectShard(
            ctx.detectors_for(family), ctx.policy, ctx.metrics,
            allowed_lateness_ms=int(job.allowed_lateness_seconds * 1000),
            dedupe_horizon_ms=int(job.dedupe_horizon_seconds * 1000),
            idle_eviction_ms=int(job.idle_eviction_seconds * 1000),
            resume=pickle.loads(resume) if resume else None,
        )
        self.step = step
        self.metrics = ctx.metrics
        self.key = f"{id(self)}"  # shards are not told their key; any stable id per logic will do

    def on_batch(self, events: list[Event]):
        violations = self.shard.process(events)
        self.metrics.set_state_keys(self.step, self.key, self.shard.keys_held())
        return violations, self.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self.shard.state, protocol=pickle.HIGHEST_PROTOCOL)


class LedgerLogic(op.StatefulBatchLogic):
    """Bytewax adapter around one `LedgerShard`: holds items to apply them in event-time order."""

    def __init__(self, ctx: JobContext, resume: bytes | None) -> None:
        self.ledger = LedgerShard(
            ctx.policy, ctx.metrics,
            dedupe_horizon_ms=int(ctx.config.job.dedupe_horizon_seconds * 1000),
            resume=pickle.loads(resume) if resume else None,
        )
        self.hold = None if ctx.replay else ctx.config.job.ledger_hold_seconds

    def on_batch(self, items: list[Any]):
        now = time.time()
        for item in items:
            self.ledger.add(item, now)
        if self.hold is None:
            return [], self.RETAIN  # replay: apply everything in order at the end
        return self.ledger.release(arrived_before=now - self.hold), self.RETAIN

    def on_notify(self):
        return self.ledger.release(arrived_before=time.time() - self.hold), self.RETAIN

    def on_eof(self):
        return self.ledger.release(arrived_before=None), self.RETAIN

    def notify_at(self) -> datetime | None:
        oldest = self.ledger.next_release()
        if self.hold is None or oldest is None:
            return None
        return datetime.fromtimestamp(oldest + self.hold, tz=timezone.utc)

    def snapshot(self) -> bytes:
        return pickle.dumps(self.ledger.state, protocol=pickle.HIGHEST_PROTOCOL)


# ---- the flow --------------------------------------------------------------------


def to_file_item(record: OutputRecord) -> tuple[str, bytes]:
    """`(output file name, JSON line)` for the JSONL sink."""
    return SINK_OF[type(record)][0], encode(record)


def read_from(source: Source[RawRecord]) -> Callable[[Dataflow], Stream[RawRecord]]:
    """The input step for a source that yields `RawRecord`s (files, simulator)."""
    return lambda flow: op.input("read_input", flow, source)


def write_to(sink: Sink, to_sink_item: Callable[[OutputRecord], Any] = to_file_item):
    """The output step for a sink of `to_sink_item(record)` items (JSONL files by default)."""
    return lambda records: op.output("write_outputs", op.map("serialize", records, to_sink_item), sink)


def timed(metrics: Metrics, to_sink_item: Callable[[OutputRecord], Any]) -> Callable[[OutputRecord], Any]:
    """`to_sink_item` that also observes the processing latency of each output."""

    def serialize(record: OutputRecord) -> Any:
        metrics.observe_output_latency(time.time())
        return to_sink_item(record)

    return serialize


def build_flow(
    ctx: JobContext,
    read: Callable[[Dataflow], Stream[RawRecord]],
    write: Callable[[Stream[OutputRecord]], None],
) -> Dataflow:
    """The shopguard dataflow: `read` adds the input step(s), `write` the output step(s)."""
    shards = ctx.config.job.shards
    flow = Dataflow("shopguard")
    raw = read(flow)
    decoded = op.flat_map_batch("decode", raw, decode_batch(ctx))
    valid = op.branch("split_dead_letters", decoded, lambda x: not isinstance(x, DeadLetter))
    governance = op.branch("split_governance", valid.trues, lambda e: type(e) in GOVERNANCE_TYPES)

    violations = []
    rest = governance.falses
    for family in DETECT_FAMILIES:
        if family != DETECT_FAMILIES[-1]:
            split = op.branch(f"route_{family}", rest, lambda e, f=family: FAMILY_OF[type(e)] == f)
            mine, rest = split.trues, split.falses
        else:
            mine = rest
        keyed = op.key_on(f"key_{family}", mine, lambda e: route_key(e, shards))
        step = f"detect_{family}s"
        found = op.stateful_batch(
            step, keyed, lambda resume, f=family, s=step: DetectLogic(ctx, s, f, resume)
        )
        violations.append(op.key_rm(f"{step}_violations", found))

    all_violations = op.merge("violations", *violations)
    to_ledger = op.merge("ledger_inputs", all_violations, governance.trues)
    by_actor = op.key_on("key_ledger", to_ledger, lambda x: ledger_key(x.actor, shards))
    ledger_out = op.key_rm("ledger_records", op.stateful_batch("ledger", by_actor, lambda r: LedgerLogic(ctx, r)))

    write(op.merge("outputs", all_violations, ledger_out, valid.falses))
    return flow
