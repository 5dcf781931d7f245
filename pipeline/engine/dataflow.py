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

import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from detectors.models.features import ActorFeatures
from detectors.models.online import OnlineModels
from detectors.registry import registry
from pipeline.config import Config
from pipeline.contract.events import AppealDecided, Event, InvalidEvent, PolicyChanged, decode
from pipeline.contract.records import SINK_OF, DeadLetter, OutputRecord, ReviewEntry, encode
from pipeline.contract.routing import GOVERNANCE_TYPES, ledger_key, ledger_keys, route_key
from pipeline.enforce.ledger import Ledger, Relayed
from pipeline.enforce.links import ACCOUNT_EVENTS, IdentityUse, fan_out_key, is_suspension_change
from pipeline.enforce.policy import Policy, PolicyUpdate, parse_policy
from pipeline.errors import PolicyError
from pipeline.engine.detect import DetectShard, FeatureShard, feature_key
from pipeline.engine.links import FanOutShard, LinkShard
from pipeline.engine.ordered import LedgerShard, ModelsShard
from pipeline.engine.shards import Shard, ShardLogic, resumed
from pipeline.sources.control import Input
from pipeline.sources.raw import RawRecord
from sinks.metrics import Metrics


@dataclass
class JobContext:
    """What the steps need besides their input: typed configuration, policy, metrics."""

    config: Config
    policy: Policy
    metrics: Metrics
    replay: bool  # bounded input: the ordered steps apply everything at the end

    @property
    def recovery(self) -> bool:
        """Whether state snapshots are kept (and so worth taking)."""
        return bool(self.config.recovery.dir)

    @property
    def hold_seconds(self) -> float | None:
        """How long the ordered steps hold items before applying them (None: until the end of a replay)."""
        return None if self.replay else self.config.job.ledger_hold_seconds

    def ms(self, seconds: float) -> int:
        return int(seconds * 1000)

    def step(self, step_id: str, up: Stream, build: Callable[[Any], Shard], *,
             keys_label: str | Callable[[Any], str] | None = "") -> Stream:
        """A keyed step whose logic is the shard `build(resumed state or None)` returns.

        Its state size goes to `shopguard_state_keys{step}`, labelled `step_id`
        (default), `keys_label`, or `keys_label(shard)`; None: not reported.
        """
        label_of = keys_label if callable(keys_label) else (lambda _shard: keys_label or step_id)

        def report(shard: Any) -> None:
            self.metrics.set_state_keys(label_of(shard), str(id(shard)), shard.keys_held())

        def logic(snapshot: bytes | None) -> ShardLogic:
            gauge = None if keys_label is None else report
            return ShardLogic(build(resumed(snapshot)), recovery=self.recovery, keys_gauge=gauge)

        return op.stateful_batch(step_id, up, logic)


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
    feature_types = ActorFeatures.RESCORE if ctx.config.models.anomaly.enabled else {}

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
            if kind is PolicyChanged:  # to every ledger shard and the models, or a dead letter
                out.extend(policy_updates(event, record, shards, metrics))
                continue
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
                key = feature_key(event, shards)
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


MODELS_KEY = "models"


def policy_updates(event: PolicyChanged, record: RawRecord, shards: int, metrics: Metrics) -> list[Any]:
    """A `policy.changed` event as one `PolicyUpdate` per ledger shard and one for the models, once checked.

    A policy that fails the checks of a policy file, or whose version does
    not match its content, is a dead letter (reason `invalid_policy`): the
    policy in force stays.
    """
    try:
        policy = parse_policy(event.policy, f"policy.changed {event.event_id}")
        if policy.version != event.version:
            raise PolicyError(f"policy.changed {event.event_id}: version {event.version!r} does not match its "
                              f"policy (version {policy.version!r}); send the policy table as written")
    except PolicyError as err:
        metrics.dead_letters_child("invalid_policy").inc()
        return [_dead_letter(record, InvalidEvent(str(err), "invalid_policy"))]
    return [PolicyUpdate(key, event.ts, event.event_id, policy) for key in (*ledger_keys(shards), MODELS_KEY)]


def ledger_key_of(item: Any, shards: int) -> str:
    """The ledger shard an item goes to: its actor's, or the one a policy update names."""
    if type(item) is PolicyUpdate:
        return item.key
    return ledger_key(actor_of_item(item), shards)


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


# ---- the shards of each step ------------------------------------------------------


class FeatureBatch(NamedTuple):
    """One feature shard's events of one input batch."""

    key: str
    events: list[Event]


def detect_shard(ctx: JobContext) -> Callable[[Any], DetectShard]:
    job, detectors = ctx.config.job, registry().build(ctx.config.detectors)
    return lambda state: DetectShard(
        detectors, ctx.policy, ctx.metrics, allowed_lateness_ms=ctx.ms(job.allowed_lateness_seconds),
        dedupe_horizon_ms=ctx.ms(job.dedupe_horizon_seconds), idle_eviction_ms=ctx.ms(job.idle_eviction_seconds),
        resume=state)


def feature_shard(ctx: JobContext) -> Callable[[Any], FeatureShard]:
    job = ctx.config.job
    return lambda state: FeatureShard(
        ActorFeatures(ctx.config.models.features), ctx.metrics, allowed_lateness_ms=ctx.ms(job.allowed_lateness_seconds),
        dedupe_horizon_ms=ctx.ms(job.dedupe_horizon_seconds), resume=state)


def models_shard(ctx: JobContext) -> Callable[[Any], ModelsShard]:
    return lambda state: ModelsShard(
        OnlineModels(ctx.config.models, resume=state.models if state else None), ctx.metrics,
        hold_seconds=ctx.hold_seconds, policy=ctx.policy, resume=state)


def ledger_shard(ctx: JobContext, metrics: Metrics, keep: Callable[[Any], bool] | None = None):
    return lambda state: LedgerShard(
        Ledger(ctx.policy, metrics), metrics, hold_seconds=ctx.hold_seconds,
        dedupe_horizon_ms=ctx.ms(ctx.config.job.dedupe_horizon_seconds), keep=keep, resume=state)


def actor_of_item(item: Any) -> str:
    """The actor a ledger input is about (relayed violations are wrapped)."""
    return item.violation.actor if isinstance(item, Relayed) else item.actor


# ---- the flow --------------------------------------------------------------------


def to_file_item(record: OutputRecord) -> tuple[str, bytes]:
    """`(output file name, JSON line)` for the JSONL sink."""
    return SINK_OF[type(record)][0], encode(record)


def read_from(source: Source[RawRecord]) -> Input:
    """The input step for a source that yields `RawRecord`s (files, simulator)."""
    return Input("read_input", source)


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
    flow = Dataflow("shopguard")
    raw = read(flow)
    routed = op.flat_map_batch("decode_and_route", raw, decode_and_route(ctx))
    for_features = op.branch("split_feature_batches", routed, lambda x: type(x) is FeatureBatch)
    to_detect = op.branch("split_detector_events", for_features.falses, lambda x: type(x) is tuple)
    others = op.branch("split_dead_letters", to_detect.falses, lambda x: isinstance(x, DeadLetter))
    uses = op.branch("split_identity_uses", others.falses, lambda x: isinstance(x, IdentityUse))
    policy = op.branch("split_models_policy", uses.falses,
                       lambda x: type(x) is PolicyUpdate and x.key == MODELS_KEY)
    identity_uses, governance, models_policy = uses.trues, policy.falses, policy.trues

    detect_out = op.key_rm("violations", ctx.step("detect", to_detect.trues, detect_shard(ctx),
                                                  keys_label=lambda shard: shard.step))
    detector_errors = op.branch("split_detector_errors", detect_out, lambda x: isinstance(x, DeadLetter))
    detected = detector_errors.falses

    # Online models: per-actor features, then one model step that scores actors
    # (review queue), sets violations' confidence from appeal outcomes, and
    # watches rates for drift.
    features_out = op.key_rm("feature_updates", ctx.step("actor_features", for_features.trues, feature_shard(ctx)))
    feature_errors = op.branch("split_feature_errors", features_out, lambda x: isinstance(x, DeadLetter))
    decisions = op.filter("appeal_decisions", governance, lambda e: type(e) is AppealDecided)
    models_in = op.key_on("key_models", op.merge("models_inputs", feature_errors.falses, detected, decisions,
                                                 models_policy), lambda _: MODELS_KEY)
    modeled = op.key_rm("models_records", ctx.step("online_models", models_in, models_shard(ctx), keys_label=None))
    reviews = op.branch("split_review_entries", modeled, lambda x: type(x) is ReviewEntry)
    assessed, review_entries = reviews.falses, reviews.trues

    # Ban evasion (see enforce/links.py): a silent suspensions-only ledger pass, then linking by identifier.
    decided = op.merge("suspension_inputs", assessed, governance)
    suspensions = op.key_rm("suspension_changes", ctx.step(
        "ledger_suspensions", op.key_on("key_suspensions", decided, lambda x: ledger_key_of(x, shards)),
        ledger_shard(ctx, Metrics(), keep=is_suspension_change), keys_label=None))
    link_config = ctx.config.detectors.linked_accounts
    fan_in = op.key_on("key_fan_out", op.merge("fan_out_inputs", identity_uses, suspensions),
                       lambda x: fan_out_key(x.event.actor if isinstance(x, IdentityUse) else x.actor, shards))
    notes = ctx.step("fan_out_identifiers", fan_in, lambda state: FanOutShard(link_config, shards, state))
    linked = op.key_rm("linked_violations", ctx.step(
        "link_accounts", op.key_rm("notes", notes), lambda state: LinkShard(link_config, ctx.policy, state)))

    to_ledger = op.merge("ledger_inputs", assessed, linked, governance)
    by_actor = op.key_on("key_ledger", to_ledger, lambda x: ledger_key_of(x, shards))
    ledger_out = op.key_rm("ledger_records", ctx.step("ledger", by_actor, ledger_shard(ctx, ctx.metrics)))

    dead_letters = op.merge("dead_letters", others.trues, detector_errors.trues, feature_errors.trues)
    write(op.merge("outputs", assessed, review_entries, ledger_out, dead_letters))
    return flow
