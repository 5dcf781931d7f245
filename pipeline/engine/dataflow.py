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
                                    +-> dead letters --------------------------> cap_record_size -> write_outputs

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

import itertools
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from detectors.models.features import ActorFeatures, actor_key
from detectors.models.online import OnlineModels
from detectors.registry import registry
from pipeline.config import Config, InputConfig
from pipeline.contract.events import (
    AppealDecided, Event, InvalidEvent, LiveStarted, OrderPlaced, PolicyChanged, ReviewDecided, ViolationOverturned,
    decode,
)
from pipeline.contract.records import SINK_OF, DeadLetter, OutputRecord, ReviewEntry, capped, encode
from pipeline.contract.routing import GOVERNANCE_TYPES, SHOP, KeyMemo, Router, ledger_key, ledger_keys
from pipeline.enforce.incentives import Activity
from pipeline.enforce.ledger import Ledger, Relayed
from pipeline.enforce.links import ACCOUNT_EVENTS, IdentityUse, fan_out_key, is_suspension_change
from pipeline.enforce.policy import Policy, PolicyUpdate, parse_policy
from pipeline.engine.detect import (
    DetectShard, FeatureBatch, FeatureManifest, NumberedFeatureShard, feature_key_of_actor,
)
from pipeline.engine.links import FanOutShard, LinkShard
from pipeline.engine.ordered import LedgerShard, ModelsShard
from pipeline.engine.shards import EVENT_TIME_QUORUM, NEVER, QuorumTime, Shard, ShardLogic, resumed
from pipeline.errors import PolicyError
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
    def future_by_wall_clock(self) -> bool:
        """Whether an event's `ts` is judged against the wall clock (`run` on Kafka or a file), else against
        the stream's own progress (a replay, or the simulator, whose event time is not the wall clock)."""
        return not self.replay and self.config.source.kind != "simulator"

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
    here, once per batch, spares every event several per-item steps. Each
    batch is numbered and says how many feature shards it fed
    (`FeatureManifest`), for the models step's event-time order.

    Every record is bounded before it costs anything (`InputGate`): blank
    records are counted and skipped, and a record over a limit of `[input]`
    or dated implausibly far ahead is a dead letter.
    """
    metrics = ctx.metrics
    shards = ctx.config.job.shards
    # Event types a detector joins, per shop, with evidence of its first stage (`Forward`).
    shop_types = frozenset(t for entry in registry().entries for t in entry.joined_types)
    gate = InputGate(ctx.config.input, wall_clock=ctx.future_by_wall_clock)
    excerpt_bytes = ctx.config.input.dead_letter_raw_bytes
    counters: dict[str, tuple[Any, Any]] = {}  # origin -> (input records, blank records) children
    reader, batches = f"{os.getpid()}.{next(_READERS)}", itertools.count(1)  # this input reader's batches
    progress = QuorumTime()  # the stream's progress, for the models step's event-time order
    # `[models.anomaly] enabled = false` turns the feature step off: nothing is routed to it.
    feature_types = ActorFeatures.RESCORE if ctx.config.models.anomaly.enabled else {}
    router = Router(shards)
    feature_keys = KeyMemo(lambda actor: feature_key_of_actor(actor, shards))  # actor -> `feature_key`

    def decode_all(records: list[RawRecord]) -> list[Any]:
        out: list[Any] = []
        newest = None
        blank = 0
        now_ms = int(time.time() * 1000)
        per_type: dict[type, int] = {}  # counted once per batch: a metric increment takes a lock
        # One item per detect shard and per feature shard, not one per event:
        # Bytewax's per-item cost is paid ~100 times per batch instead of ~1000.
        for_detect: dict[str, tuple[int, list[Event]]] = {}  # key -> (first read time, events in order)
        for_features: dict[str, list[Event]] = {}
        admit, observe, route_keys = gate.admit, progress.observe, router.route_keys
        for record in records:
            raw = record.raw
            if not raw or raw.isspace():
                blank += 1
                continue
            try:
                event = admit(record, now_ms)
            except InvalidEvent as err:
                out.append(_dead_letter(record, err, excerpt_bytes))
                metrics.dead_letters_child(err.reason).inc()
                continue
            kind = type(event)
            ts = event.ts
            observe(ts)
            per_type[kind] = per_type.get(kind, 0) + 1
            if kind is PolicyChanged:  # to every ledger shard and the models, or a dead letter
                out.extend(policy_updates(event, record, shards, metrics, excerpt_bytes))
                continue
            if newest is None or ts > newest:
                newest = ts
            if kind in GOVERNANCE_TYPES:
                out.append(event)
                continue
            if kind is OrderPlaced:  # activity that earns incentives: its seller's ledger counts it
                out.append(Activity(event_id=event.event_id, ts=ts, actor="seller:" + event.seller_id,
                                    kind="order"))
            elif kind is LiveStarted:
                out.append(Activity(event_id=event.event_id, ts=ts, actor="creator:" + event.creator_id,
                                    kind="live"))
            keys = route_keys(event)
            if kind in shop_types:
                keys += (router.shop_key(event.seller_id),)
            for key in keys:
                group = for_detect.get(key)
                if group is None:
                    for_detect[key] = (record.received_ms, [event])
                else:
                    group[1].append(event)
            if kind in feature_types:
                key = feature_keys[actor_key(event)]
                batch = for_features.get(key)
                if batch is None:
                    for_features[key] = [event]
                else:
                    batch.append(event)
            if kind in ACCOUNT_EVENTS:
                out.append(IdentityUse(event))  # also to ban-evasion linking
        out.extend(for_detect.items())
        batch = (reader, next(batches))
        out.extend(FeatureBatch(key, (batch, events)) for key, events in for_features.items())
        out.append(FeatureManifest(batch, len(for_features), progress.value))
        for kind, n in per_type.items():
            metrics.events_child(kind.topic, kind.__struct_config__.tag).inc(n)
        if records:
            origin = records[0].origin
            if origin not in counters:
                label = _source_kind(origin)
                counters[origin] = (metrics.input_records.labels(label), metrics.blank_records.labels(label))
            read, blanks = counters[origin]
            read.inc(len(records) - blank)
            if blank:
                blanks.inc(blank)
        if newest is not None:
            metrics.observe_event_time(newest, time.time())
        return out

    return decode_all


class InputGate:
    """Decodes one record within the `[input]` limits; raises `InvalidEvent` for whatever crosses one.

    A record longer than `max_line_bytes` is refused before it is decoded;
    then `decode` bounds nesting, text fields and the range of `ts`; last, an
    event dated too far ahead is refused: more than `max_clock_skew_seconds`
    ahead of the wall clock (`wall_clock`), or more than
    `max_stream_lead_seconds` ahead of the stream's own progress, its
    `EVENT_TIME_QUORUM`-th newest event time so far (a replay, the simulator).
    The progress counts refused events too, so a real jump forward in event
    time is followed once a quorum of events shows it.
    """

    def __init__(self, config: InputConfig, *, wall_clock: bool) -> None:
        self.limits = config.limits()
        self.max_line_bytes = config.max_line_bytes
        seconds, self.key = ((config.max_clock_skew_seconds, "max_clock_skew_seconds") if wall_clock
                             else (config.max_stream_lead_seconds, "max_stream_lead_seconds"))
        self.ahead_ms = int(seconds * 1000)
        self.progress = None if wall_clock else QuorumTime()

    def admit(self, record: RawRecord, now_ms: int) -> Event:
        if record.length > self.max_line_bytes:
            raise InvalidEvent(f"{record.length:,} bytes, more than the limit of {self.max_line_bytes:,} "
                               "([input] max_line_bytes); send one event per line", "line_too_long")
        event = decode(record.raw, self.limits)
        ts = event.ts
        if self.progress is None:
            if ts > now_ms + self.ahead_ms:
                raise self._ahead(ts, "the wall clock when it was read")  # no distance: it depends on when
        else:
            progress = self.progress.observe(ts)
            if progress != NEVER and ts > progress + self.ahead_ms:
                raise self._ahead(ts, f"the stream's progress (its {EVENT_TIME_QUORUM}th newest event time, "
                                      f"{progress})")
        return event

    def _ahead(self, ts: int, of: str) -> InvalidEvent:
        return InvalidEvent(
            f"field `ts`: {ts} is more than [input] {self.key} = {self.ahead_ms / 1000:,.0f} s ahead of {of}; send the "
            "time the event happened (check the producer's clock)", "ts_in_future")


_READERS = itertools.count(1)  # decode steps of this process: each numbers the batches of one input reader


MODELS_KEY = "models"


def policy_updates(event: PolicyChanged, record: RawRecord, shards: int, metrics: Metrics,
                   excerpt_bytes: int) -> list[Any]:
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
        return [_dead_letter(record, InvalidEvent(str(err), "invalid_policy"), excerpt_bytes)]
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


def _dead_letter(record: RawRecord, err: InvalidEvent, excerpt_bytes: int) -> DeadLetter:
    """The record's first `excerpt_bytes` (and then its size), never a copy of a huge input."""
    cut = record.length > excerpt_bytes
    return DeadLetter(
        raw=record.raw[:excerpt_bytes].decode("utf-8", errors="replace"),
        error=str(err),
        source=record.source,
        ts=record.received_ms,
        reason=err.reason,
        raw_bytes=record.length if cut else None,
    )


# ---- the shards of each step ------------------------------------------------------


def detect_shard(ctx: JobContext, stage: str) -> Callable[[Any], DetectShard]:
    """A shard of the `detect` stage, or of the `shops` stage.

    The shops stage joins two paths (listing events straight from the input,
    claims forwarded by the first stage) that reach it in no fixed order, so
    nothing there is ever too late: a listing's price history is kept in event
    time, and its wakes wait the allowed lateness. Its duplicates and late
    events were counted in the first stage.
    """
    job, detectors = ctx.config.job, registry().build(ctx.config.detectors)
    lateness = ctx.ms(job.allowed_lateness_seconds)
    first = stage == "detect"
    return lambda state: DetectShard(
        detectors, ctx.policy, ctx.metrics, allowed_lateness_ms=lateness if first else 2**62,
        dedupe_horizon_ms=ctx.ms(job.dedupe_horizon_seconds), idle_eviction_ms=ctx.ms(job.idle_eviction_seconds),
        shards=job.shards, stage=stage, count_skipped=first, wake_delay_ms=0 if first else lateness, resume=state)


def feature_shard(ctx: JobContext) -> Callable[[Any], NumberedFeatureShard]:
    job = ctx.config.job
    return lambda state: NumberedFeatureShard(
        ActorFeatures(ctx.config.models.features), ctx.metrics, allowed_lateness_ms=ctx.ms(job.allowed_lateness_seconds),
        dedupe_horizon_ms=ctx.ms(job.dedupe_horizon_seconds), resume=state)


def models_shard(ctx: JobContext) -> Callable[[Any], ModelsShard]:
    # A feature update is scored once the stream's progress is the allowed lateness past it: the events
    # that could still make an earlier update are late by then.
    horizon_ms = ctx.ms(ctx.config.job.allowed_lateness_seconds)
    return lambda state: ModelsShard(
        OnlineModels(ctx.config.models, resume=state.models if state else None), ctx.metrics,
        hold_seconds=ctx.hold_seconds, policy=ctx.policy, horizon_ms=horizon_ms, resume=state)


def ledger_shard(ctx: JobContext, metrics: Metrics, keep: Callable[[Any], bool] | None = None):
    return lambda state: LedgerShard(
        Ledger(ctx.policy, metrics), metrics, hold_seconds=ctx.hold_seconds,
        dedupe_horizon_ms=ctx.ms(ctx.config.job.dedupe_horizon_seconds), keep=keep, resume=state)


REVIEWER_VERDICTS = (AppealDecided, ViolationOverturned, ReviewDecided)


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
    manifests = op.branch("split_feature_manifests", for_features.falses, lambda x: type(x) is FeatureManifest)
    to_detect = op.branch("split_detector_events", manifests.falses, lambda x: type(x) is tuple)
    others = op.branch("split_dead_letters", to_detect.falses, lambda x: isinstance(x, DeadLetter))
    uses = op.branch("split_identity_uses", others.falses, lambda x: isinstance(x, IdentityUse))
    policy = op.branch("split_models_policy", uses.falses,
                       lambda x: type(x) is PolicyUpdate and x.key == MODELS_KEY)
    # Orders and LIVEs started, for the incentives of the final ledger only (through the models step, which
    # passes them on in event-time order with the violations).
    activity = op.branch("split_activity", policy.falses, lambda x: type(x) is Activity)
    identity_uses, governance, models_policy = uses.trues, activity.falses, policy.trues

    stages = op.branch("split_shop_groups", to_detect.trues, lambda kv: kv[0].startswith(SHOP))
    detect_out = op.key_rm("violations", ctx.step("detect", stages.falses, detect_shard(ctx, "detect"),
                                                  keys_label=lambda shard: shard.step))
    # A detector's second stage, per shop: listing events and what the first stage forwarded.
    forwarded = op.branch("split_forwarded", detect_out, lambda x: type(x) is tuple)
    shops_in = op.merge("shops_inputs", stages.trues, forwarded.trues)
    shops_out = op.key_rm("shop_violations", ctx.step("detect_shops", shops_in, detect_shard(ctx, "shops"),
                                                      keys_label="detect_shops"))
    detector_errors = op.branch("split_detector_errors", op.merge("detected", forwarded.falses, shops_out),
                                lambda x: isinstance(x, DeadLetter))
    detected = detector_errors.falses

    # Online models: per-actor features, then one model step that scores actors
    # (review queue), sets violations' confidence from appeal outcomes, and
    # watches rates for drift.
    features_out = op.key_rm("feature_updates", ctx.step("actor_features", for_features.trues, feature_shard(ctx)))
    feature_errors = op.branch("split_feature_errors", features_out, lambda x: isinstance(x, DeadLetter))
    # Reviewers' verdicts teach the models (the step id predates the overturn and review verdicts).
    decisions = op.filter("appeal_decisions", governance, lambda e: type(e) in REVIEWER_VERDICTS)
    models_in = op.key_on("key_models", op.merge("models_inputs", feature_errors.falses, manifests.trues, detected,
                                                 decisions, models_policy, activity.trues), lambda _: MODELS_KEY)
    modeled = op.key_rm("models_records", ctx.step("online_models", models_in, models_shard(ctx), keys_label=None))
    reviews = op.branch("split_review_entries", modeled, lambda x: type(x) is ReviewEntry)
    passed_on = op.branch("split_passed_activity", reviews.falses, lambda x: type(x) is Activity)
    assessed, review_entries, activity_in_order = passed_on.falses, reviews.trues, passed_on.trues

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

    to_ledger = op.merge("ledger_inputs", assessed, linked, governance, activity_in_order)
    by_actor = op.key_on("key_ledger", to_ledger, lambda x: ledger_key_of(x, shards))
    ledger_out = op.key_rm("ledger_records", ctx.step("ledger", by_actor, ledger_shard(ctx, ctx.metrics)))

    dead_letters = op.merge("dead_letters", others.trues, detector_errors.trues, feature_errors.trues)
    outputs = op.merge("outputs", assessed, review_entries, ledger_out, dead_letters)
    max_bytes = ctx.config.output.max_record_bytes
    write(op.map("cap_record_size", outputs, lambda record: capped(record, max_bytes)))
    return flow
