"""The one shopguard dataflow, used by `run` and `replay`.

Read `build_flow` top to bottom; every step id says what the step does::

    read_input -> decode_and_route -+-> detect (family/shard) ------ violations -+
                                    |                                           v
                                    +-> actor_features (actor shard) -> online_models (one key)
                                    |                     confidence, review queue |
                                    +-> appeals, lessons ----------------------------+-> ledger (actor)
                                    |                                              |   actions, standing
                                    |            ledger_suspensions <--------------+
                                    |                   |
                                    +-> account events -+-> fan_out_identifiers -> link_accounts
                                    |                       (actor)                (identifier)
                                    +-> dead letters ----------------------------------------> write_outputs

`decode_and_route` decodes each record once and keys detector events by
`family/shard` (`routing.py`): listing upserts by category, orders by seller,
LIVE events by creator, account events by actor. The `detect` step is fed
straight from that stateless step, so each shard sees its events in arrival
order on any number of workers: the violations of a replay do not depend on
the worker count. The ledger (and the models step), keyed by actor, receive
violations from many shards (on other workers, in no fixed interleaving) and
so order what they receive by event time before applying it (see
`EventTimeOrderedLogic` and `ledger.py`). Ban evasion needs suspensions the
ledger decides, and a flow is a DAG: see `links.py` for the second, silent
ledger pass that feeds the linking.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from detectors import REGISTRY
from detectors.features import ActorFeatures, ActorFeatureShard, actor_key
from detectors.models import OnlineModels, models_config
from pipeline.config import Config
from pipeline.errors import ConfigError
from pipeline.engine.detect import DetectShard, ShardState
from pipeline.contract.events import AppealDecided, Event, InvalidEvent, ReviewDecided, ViolationOverturned, decode
from pipeline.enforce.ledger import LedgerShard, Relayed
from pipeline.enforce.links import (
    ACCOUNT_EVENTS, FanOutLogic, IdentityUse, LinkLogic, fan_out_key, is_suspension_change,
)
from pipeline.enforce.policy import Policy
from pipeline.contract.records import SINK_OF, DeadLetter, OutputRecord, ReviewEntry, encode
from pipeline.contract.routing import FAMILY_OF, GOVERNANCE_TYPES, ledger_key, route_key, shard_of
from pipeline.sources.raw import RawRecord
from sinks.metrics import Metrics



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
    models_config: Any = field(init=False)

    @property
    def recovery(self) -> bool:
        """Whether state snapshots are kept (and so worth taking)."""
        return bool(self.config.recovery.dir)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.config.detectors) - set(REGISTRY))
        if unknown:
            raise ConfigError(f"config: unknown table [detectors.{unknown[0]}]; known: {', '.join(REGISTRY)}")
        self.detector_configs = {
            name: self.config.detector_config(name, config_type) for name, (_, config_type) in REGISTRY.items()
        }
        self.models_config = models_config(self.config.models)

    def detectors_for(self, family: str) -> list[Any]:
        """Instances of every configured detector that reads this family's events."""
        return [
            cls(self.detector_configs[name])
            for name, (cls, _) in REGISTRY.items()
            if family in {FAMILY_OF[t] for t in cls.event_types}
        ]


# ---- decode -------------------------------------------------------------------


def decode_and_route(ctx: JobContext) -> Callable[[list[RawRecord]], list[Any]]:
    """Decode a batch of raw records and say where each goes.

    Detector events come out grouped per detect shard as
    `(family/shard, (read_ms, events))`, and per actor-feature shard as one
    `FeatureBatch` each; account events also as `IdentityUse` (ban evasion); governance
    events and dead letters (invalid records) come out bare. Doing routing
    here, once per batch, spares every event several per-item steps.
    """
    metrics = ctx.metrics
    shards = ctx.config.job.shards
    input_records: dict[str, Any] = {}
    # `[models.anomaly] enabled = false` turns the feature step off: nothing is routed to it.
    feature_types = ActorFeatures.RESCORE if ctx.models_config.anomaly.enabled else {}

    def decode_all(records: list[RawRecord]) -> list[Any]:
        out: list[Any] = []
        newest = None
        per_type: dict[type, int] = {}  # counted once per batch: a metric increment takes a lock
        # One item per detect shard and per feature shard, not one per event:
        # Bytewax's per-item cost is paid ~100 times per batch instead of ~1000.
        for_detect: dict[str, tuple[int, list[Event]]] = {}  # key -> (first read time, events in order)
        for_features: dict[str, list[Event]] = {}
        for record in records:
            try:
                event = decode(record.raw)
            except InvalidEvent as err:
                out.append(_dead_letter(record, err))
                metrics.dead_letters_child(err.reason).inc()
                continue
            kind = type(event)
            per_type[kind] = per_type.get(kind, 0) + 1
            if newest is None or event.ts > newest:
                newest = event.ts
            if kind in GOVERNANCE_TYPES:
                out.append(event)
                continue
            key = route_key(event, shards)
            group = for_detect.get(key)
            if group is None:
                for_detect[key] = (record.received_ms, [event])
            else:
                group[1].append(event)
            if kind in feature_types:
                key = f"features/{shard_of(actor_key(event), shards)}"
                batch = for_features.get(key)
                if batch is None:
                    for_features[key] = [event]
                else:
                    batch.append(event)
            if kind in ACCOUNT_EVENTS:
                out.append(IdentityUse(event))  # also to ban-evasion linking
        out.extend(for_detect.items())
        out.extend(FeatureBatch(key, events) for key, events in for_features.items())
        for kind, n in per_type.items():
            metrics.events_child(kind.topic, kind.__struct_config__.tag).inc(n)
        if records:
            first = records[0]
            counter = input_records.get(first.origin)
            if counter is None:
                counter = input_records[first.origin] = metrics.input_records.labels(_source_kind(first.origin))
            counter.inc(len(records))
        if newest is not None:
            metrics.observe_event_time(newest, time.time())
        return out

    return decode_all


def _source_kind(origin: str) -> str:
    """Low-cardinality label for `shopguard_input_records_total`."""
    if origin == "simulator":
        return "simulator"
    return "kafka" if "/" in origin else "file"


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
    """Bytewax adapter around one `DetectShard` (all the logic lives there).

    Bytewax does not tell a logic its key, so the family (and with it the
    detectors) is taken from the first event and kept in the snapshot.
    """

    def __init__(self, ctx: JobContext, resume: bytes | None) -> None:
        self.ctx = ctx
        self.family: str | None = None
        self.shard: DetectShard | None = None
        if resume:
            family, state = pickle.loads(resume)
            self._build(family, state)

    def _build(self, family: str, state: ShardState | None) -> None:
        job = self.ctx.config.job
        self.family = family
        self.step = f"detect_{family}s"
        self.shard = DetectShard(
            self.ctx.detectors_for(family), self.ctx.policy, self.ctx.metrics,
            allowed_lateness_ms=int(job.allowed_lateness_seconds * 1000),
            dedupe_horizon_ms=int(job.dedupe_horizon_seconds * 1000),
            idle_eviction_ms=int(job.idle_eviction_seconds * 1000),
            resume=state,
        )

    def on_batch(self, groups: list[tuple[int, list[Event]]]):
        if self.shard is None:
            self._build(FAMILY_OF[type(groups[0][1][0])], None)
        violations = []
        for _read, events in groups:
            violations.extend(self.shard.process(events))
        metrics = self.ctx.metrics
        # Latency: from the oldest record of these groups being read to their detection done.
        metrics.processing_latency.observe(max(0.0, time.time() - min(read for read, _ in groups) / 1000.0))
        metrics.set_state_keys(self.step, str(id(self)), self.shard.keys_held())
        return violations, self.RETAIN

    def snapshot(self) -> bytes:
        if not self.ctx.recovery:
            return b""  # nobody reads snapshots without recovery: skip pickling the shard
        return pickle.dumps((self.family, self.shard.state), protocol=pickle.HIGHEST_PROTOCOL)


class EventTimeOrderedLogic(op.StatefulBatchLogic):
    """A step that holds what it receives and applies it in event-time order.

    Its inputs come from many shards on other workers in no fixed
    interleaving; `replay` (bounded input) applies everything in order at the
    end, `run` holds items `ledger_hold_seconds` of wall clock. Subclasses say
    how to `_add`, `_release` and when the oldest item arrived.
    """

    def __init__(self, ctx: JobContext) -> None:
        self.hold = None if ctx.replay else ctx.config.job.ledger_hold_seconds
        self.recovery = ctx.recovery

    def _add(self, items: list[Any], now: float) -> list[Any]:
        """Queue items; return anything due at once."""
        raise NotImplementedError

    def _release(self, arrived_before: float | None) -> list[Any]:
        """Apply queued items that arrived before the time given (all if None)."""
        raise NotImplementedError

    def _oldest_arrival(self) -> float | None:
        raise NotImplementedError

    def on_batch(self, items: list[Any]):
        now = time.time()
        out = self._add(items, now)
        if self.hold is not None:
            out += self._release(now - self.hold)
        return out, self.RETAIN

    def on_notify(self):
        return self._release(time.time() - self.hold), self.RETAIN

    def on_eof(self):
        return self._release(None), self.RETAIN

    def notify_at(self) -> datetime | None:
        oldest = self._oldest_arrival()
        if self.hold is None or oldest is None:
            return None
        return datetime.fromtimestamp(oldest + self.hold, tz=timezone.utc)


class LedgerLogic(EventTimeOrderedLogic):
    """Bytewax adapter around one `LedgerShard`.

    `keep` filters what leaves the step (the `ledger_suspensions` pass keeps
    only suspension changes); `metrics` lets that pass count into a private
    registry so nothing is counted twice.
    """

    def __init__(self, ctx: JobContext, resume: bytes | None, *, metrics: Metrics | None = None,
                 keep: Callable[[Any], bool] | None = None) -> None:
        super().__init__(ctx)
        self.ledger = LedgerShard(
            ctx.policy, metrics or ctx.metrics,
            dedupe_horizon_ms=int(ctx.config.job.dedupe_horizon_seconds * 1000),
            resume=pickle.loads(resume) if resume else None,
        )
        self.keep = keep

    def _add(self, items: list[Any], now: float) -> list[Any]:
        for item in items:
            self.ledger.add(item, now)
        return []

    def _release(self, arrived_before: float | None) -> list[Any]:
        records = self.ledger.release(arrived_before=arrived_before)
        return records if self.keep is None else [r for r in records if self.keep(r)]

    def _oldest_arrival(self) -> float | None:
        return self.ledger.next_release()

    def snapshot(self) -> bytes:
        if not self.recovery:
            return b""  # nobody reads snapshots without recovery
        return pickle.dumps(self.ledger.state, protocol=pickle.HIGHEST_PROTOCOL)


class FeatureBatch(NamedTuple):
    """One feature shard's events of one input batch."""

    key: str
    events: list[Event]


class FeaturesLogic(op.StatefulBatchLogic):
    """Bytewax adapter around one `ActorFeatureShard`: events in, feature updates out."""

    def __init__(self, ctx: JobContext, config: Any, resume: bytes | None) -> None:
        job = ctx.config.job
        self.ctx = ctx
        self.shard = ActorFeatureShard(
            ActorFeatures(config), allowed_lateness_ms=int(job.allowed_lateness_seconds * 1000),
            dedupe_horizon_ms=int(job.dedupe_horizon_seconds * 1000),
            resume=pickle.loads(resume) if resume else None,
        )

    def on_batch(self, batches: list[list[Event]]):
        updates = []
        for events in batches:
            updates.extend(self.shard.process(events))
        self.ctx.metrics.set_state_keys("actor_features", str(id(self)), self.shard.keys_held())
        return updates, self.RETAIN

    def snapshot(self) -> bytes:
        if not self.ctx.recovery:
            return b""
        return pickle.dumps(self.shard.state, protocol=pickle.HIGHEST_PROTOCOL)


class ModelsLogic(EventTimeOrderedLogic):
    """Bytewax adapter around `OnlineModels` (one key): scores, appeal learning, drift.

    Like the ledger, it holds violations and appeal decisions to apply them in
    event-time order, so violations and their confidence do not depend on the
    worker count.
    """

    def __init__(self, ctx: JobContext, config: Any, resume: bytes | None) -> None:
        super().__init__(ctx)
        self.metrics = ctx.metrics
        self.models = OnlineModels(config, resume=pickle.loads(resume) if resume else None)

    def _add(self, items: list[Any], now: float) -> list[Any]:
        out = self.models.add(items, now)
        self.models.publish(self.metrics)
        return out

    def _release(self, arrived_before: float | None) -> list[Any]:
        out = self.models.release(arrived_before)
        self.models.publish(self.metrics)
        return out

    def _oldest_arrival(self) -> float | None:
        return self.models.next_release()

    def snapshot(self) -> bytes:
        if not self.recovery:
            return b""
        return pickle.dumps(self.models.state, protocol=pickle.HIGHEST_PROTOCOL)


REVIEWER_VERDICTS = (AppealDecided, ViolationOverturned, ReviewDecided)


def actor_of_item(item: Any) -> str:
    """The actor a ledger input is about (relayed violations are wrapped)."""
    return item.violation.actor if isinstance(item, Relayed) else item.actor


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


def build_flow(
    ctx: JobContext,
    read: Callable[[Dataflow], Stream[RawRecord]],
    write: Callable[[Stream[OutputRecord]], None],
) -> Dataflow:
    """The shopguard dataflow: `read` adds the input step(s), `write` the output step(s)."""
    shards = ctx.config.job.shards
    models = ctx.models_config
    flow = Dataflow("shopguard")
    raw = read(flow)
    routed = op.flat_map_batch("decode_and_route", raw, decode_and_route(ctx))
    for_features = op.branch("split_feature_batches", routed, lambda x: type(x) is FeatureBatch)
    to_detect = op.branch("split_detector_events", for_features.falses, lambda x: type(x) is tuple)
    others = op.branch("split_dead_letters", to_detect.falses, lambda x: isinstance(x, DeadLetter))
    dead_letters = others.trues
    uses = op.branch("split_identity_uses", others.falses, lambda x: isinstance(x, IdentityUse))
    identity_uses, governance = uses.trues, uses.falses

    detected = op.key_rm("violations", op.stateful_batch("detect", to_detect.trues, lambda r: DetectLogic(ctx, r)))

    # Online models: per-actor features, then one model step that scores actors
    # (review queue), sets violations' confidence from appeal outcomes, and
    # watches rates for drift.
    feature_updates = op.key_rm("feature_updates", op.stateful_batch(
        "actor_features", for_features.trues, lambda r: FeaturesLogic(ctx, models.features, r)))
    # reviewers' verdicts teach the models (the step id predates the overturn and review verdicts)
    decisions = op.filter("appeal_decisions", governance, lambda e: type(e) in REVIEWER_VERDICTS)
    models_in = op.key_on("key_models", op.merge("models_inputs", feature_updates, detected, decisions),
                          lambda _: "models")
    modeled = op.key_rm("models_records", op.stateful_batch(
        "online_models", models_in, lambda r: ModelsLogic(ctx, models, r)))
    reviews = op.branch("split_review_entries", modeled, lambda x: type(x) is ReviewEntry)
    assessed, review_entries = reviews.falses, reviews.trues

    # Ban evasion (see links.py): a suspensions-only ledger pass, then linking by identifier.
    decided = op.merge("suspension_inputs", assessed, governance)
    suspensions = op.key_rm("suspension_changes", op.stateful_batch(
        "ledger_suspensions", op.key_on("key_suspensions", decided, lambda x: ledger_key(x.actor, shards)),
        lambda r: LedgerLogic(ctx, r, metrics=Metrics(), keep=is_suspension_change)))
    link_config = ctx.detector_configs["linked_accounts"]
    fan_in = op.key_on("key_fan_out", op.merge("fan_out_inputs", identity_uses, suspensions),
                       lambda x: fan_out_key(x.event.actor if isinstance(x, IdentityUse) else x.actor, shards))
    notes = op.stateful_batch("fan_out_identifiers", fan_in, lambda r: FanOutLogic(link_config, shards, r))
    linked = op.key_rm("linked_violations", op.stateful_batch(
        "link_accounts", op.key_rm("notes", notes), lambda r: LinkLogic(link_config, ctx.policy, r)))

    to_ledger = op.merge("ledger_inputs", assessed, linked, governance)
    by_actor = op.key_on("key_ledger", to_ledger, lambda x: ledger_key(actor_of_item(x), shards))
    ledger_out = op.key_rm("ledger_records", op.stateful_batch("ledger", by_actor, lambda r: LedgerLogic(ctx, r)))

    write(op.merge("outputs", assessed, review_entries, ledger_out, dead_letters))
    return flow
