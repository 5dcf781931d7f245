"""The steps fed by many shards, which apply what they get in event-time order: the ledger and the models.

Violations of one actor come from several detect shards, possibly on other
workers, so their arrival order is not deterministic; their event time is.
Both steps hold what they receive (`EventTimeOrderedShard`) and apply it in
event-time order: a replay at the end of its input, a running job
`ledger_hold_seconds` of wall clock after arrival. The same input therefore
gives the same actions, standings, assessed violations and review queue on
any number of workers and across restarts. Feature updates, far more
numerous, are scored in event-time order too, but a replay does not keep
them to its end (see `ModelsShard`: bounded memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import msgspec

from detectors.models.features import FeatureUpdate
from detectors.models.online import ModelsState, OnlineModels
from pipeline.contract.events import AppealDecided, AppealFiled, ReviewDecided, ViolationOverturned
from pipeline.contract.records import AppealOutcome, Violation
from pipeline.enforce.incentives import HOUR_MS, Activity
from pipeline.enforce.ledger import RANK, Ledger, LedgerState, Relayed
from pipeline.enforce.policy import Policy, PolicyBook, PolicyUpdate, repriced
from pipeline.engine.detect import FeatureManifest, ShardUpdates
from pipeline.engine.shards import NEVER, EventClock, EventTimeOrder, EventTimeOrderedShard, Pending
from sinks.metrics import Metrics

# `run` only: an appeal whose violation has not reached the ledger yet is
# retried this often (wall clock) for up to `unknown_appeal_wait_seconds`.
RETRY_EVERY_SECONDS = 5.0



def hold_activity(shard: EventTimeOrderedShard, item: Activity, rank: int, now: float) -> None:
    """Hold an order's or a LIVE's activity item (deduplicated); a replay, which applies everything
    at the end of its input, folds each actor's items of one hour into one, so its memory does not
    grow with the number of orders (activity counts by the hour: `pipeline.enforce.incentives`)."""
    if shard.hold_seconds is None:
        shard.order.hold_folded((item.actor, item.kind, item.ts // HOUR_MS), rank, item, now)
    else:
        shard.order.hold(item.ts, rank, item.event_id, item, now)

@dataclass(slots=True)
class LedgerShardState:
    """Everything a ledger shard keeps; pickled into recovery snapshots."""

    ledger: LedgerState
    clock: EventClock  # dedupe of governance events; the newest event time applied
    order: EventTimeOrder = field(default_factory=EventTimeOrder)
    book: PolicyBook | None = None  # the policy in force at each event time (None in snapshots before it)


class LedgerShard(EventTimeOrderedShard):
    """One shard of a ledger step: holds violations and governance events, applies them in event-time order.

    Redelivered governance events are counted and dropped on arrival. With
    `hold_seconds` None (replay) everything is applied at the end and an appeal
    whose violation is unknown then is a dead letter; in a running job such an
    appeal is retried for `unknown_appeal_wait_seconds` first, because its
    violation may still be on its way from a detect step on another worker.
    `keep` filters what leaves the step (the `ledger_suspensions` pass keeps
    only suspension changes).
    """

    def __init__(self, ledger: Ledger, metrics: Metrics, *, hold_seconds: float | None, dedupe_horizon_ms: int,
                 unknown_appeal_wait_seconds: float = 60.0, keep: Callable[[Any], bool] | None = None,
                 resume: LedgerShardState | None = None) -> None:
        self.state = resume or LedgerShardState(ledger.state, EventClock(dedupe_horizon_ms, allowed_lateness_ms=0))
        if getattr(self.state, "book", None) is None:
            self.state.book = PolicyBook(ledger.policy)
        ledger.state = self.state.ledger
        super().__init__(hold_seconds, self.state.order)
        self.ledger = ledger
        self.metrics = metrics
        self.unknown_appeal_wait_seconds = unknown_appeal_wait_seconds
        self.keep = keep

    def receive(self, items: list[Any], now: float) -> list[Any]:
        hold = self.order.hold
        for item in items:
            if isinstance(item, Violation):
                hold(item.detected_at, 0, item.violation_id, item, now)
            elif isinstance(item, Relayed):  # tie-break copies of one id by their evidence, deterministically
                v = item.violation
                hold(v.detected_at, 0, f"{v.violation_id}|{msgspec.json.encode(v.evidence).decode()}", item, now)
            elif isinstance(item, PolicyUpdate):  # before anything else at its event time
                hold(item.ts, -1, item.change_id, item, now)
            elif type(item) is Activity:  # a redelivered order counts once; the detect step counted the duplicate
                if not self.state.clock.seen_before(item.event_id, item.ts):
                    hold_activity(self, item, RANK[Activity], now)
            elif self.state.clock.seen_before(item.event_id, item.ts):
                self.metrics.duplicates_child(item.topic).inc()
            else:
                hold(item.ts, RANK[type(item)], item.event_id, item, now)
        return []

    def apply(self, pending: Pending, final: bool) -> list[Any]:
        item, clock, book = pending.item, self.state.clock, self.state.book
        if isinstance(item, PolicyUpdate):
            if book.add(item.ts, item.change_id, item.policy):
                self.metrics.set_policy_version(book.latest.version)
            return []
        self.ledger.policy = book.at(pending.ts)
        if isinstance(item, Relayed):  # linked accounts: priced by the policy in force when found
            item = Relayed(repriced(item.violation, self.ledger.policy))
        out = self.ledger.advance_to(pending.ts)
        clock.advance(pending.ts)
        actor = item.violation.actor if isinstance(item, Relayed) else item.actor
        if self._wait_for_violation(pending, final):
            self.order.retry(pending, pending.due + RETRY_EVERY_SECONDS)
        else:
            out += self.ledger.apply(item)
        self.ledger.evict_if_idle(actor, pending.ts)
        if clock.sweep_due():
            clock.sweep()
        return out if self.keep is None else [r for r in out if self.keep(r)]

    def _wait_for_violation(self, pending: Pending, final: bool) -> bool:
        """A running job's appeal whose violation is not here yet: retry it rather than reject it now."""
        item = pending.item
        return (isinstance(item, (AppealFiled, AppealDecided, ViolationOverturned)) and not final
                and not self.ledger.knows(item)
                and pending.due - pending.first_arrived < self.unknown_appeal_wait_seconds)

    def snapshot(self) -> LedgerShardState:
        return self.state

    def keys_held(self) -> int:
        return self.ledger.actors_held()


@dataclass(slots=True)
class ReaderBatches:
    """One input reader's batches on their way to the models step, and how far they are all in.

    A batch is in once every feature shard it fed has answered (`ShardUpdates`
    against the batch's `FeatureManifest`); `complete` hands over the updates
    of the batches in, in batch order, as long as every batch before them is
    in too, and moves `frontier`: the stream's progress after the last of
    them, minus the horizon.
    """

    waiting: dict[int, list[FeatureUpdate]] = field(default_factory=dict)
    answered: dict[int, int] = field(default_factory=dict)
    manifests: dict[int, FeatureManifest] = field(default_factory=dict)
    complete_through: int = 0
    frontier: int = NEVER

    def answer(self, batch: int, updates: list[FeatureUpdate]) -> None:
        self.waiting.setdefault(batch, []).extend(updates)
        self.answered[batch] = self.answered.get(batch, 0) + 1

    def complete(self, horizon_ms: int) -> list[FeatureUpdate]:
        done: list[FeatureUpdate] = []
        while (manifest := self.manifests.get(self.complete_through + 1)) is not None \
                and self.answered.get(self.complete_through + 1, 0) == manifest.shards:
            batch = self.complete_through = self.complete_through + 1
            del self.manifests[batch]
            self.answered.pop(batch, None)
            done += self.waiting.pop(batch, [])
            if manifest.progress != NEVER:
                self.frontier = max(self.frontier, manifest.progress - horizon_ms)
        return done


@dataclass(slots=True)
class ModelsShardState:
    """Everything the models step keeps; pickled into recovery snapshots."""

    models: ModelsState
    order: EventTimeOrder = field(default_factory=EventTimeOrder)
    updates: EventTimeOrder = field(default_factory=EventTimeOrder)  # feature updates free to be scored in order
    readers: dict[str, ReaderBatches] = field(default_factory=dict)
    frontier: int = NEVER  # feature updates older than this are scored
    book: PolicyBook | None = None  # the policy in force at each event time (None in snapshots before it)


class ModelsShard(EventTimeOrderedShard):
    """The online models as one step (one key: the models are global).

    Feature updates are scored in event-time order (the anomaly model learns
    from each, so the order is the review queue's), at points that depend
    only on the input, never on which worker answers first or how fast: an
    input batch's updates are free to be scored once the batch and every
    batch before it are in (`ReaderBatches`), and free updates older than
    the stream's progress minus `horizon_ms` are scored, in event-time
    order; the rest at the end. The queue is therefore the same on any
    number of workers or processes, and after a restart. Memory stays
    bounded: only about a horizon of updates waits.

    Violations are watched as they arrive (drift, rule agreement) and
    assessed, like appeal decisions are learned, in event-time order (held
    for `hold_seconds`, see `EventTimeOrderedShard`). After each batch the
    models' observations go to the metrics.
    """

    def __init__(self, models: OnlineModels, metrics: Metrics, *, hold_seconds: float | None, policy: Policy,
                 horizon_ms: int = 0, resume: ModelsShardState | None = None) -> None:
        self.state = resume or ModelsShardState(models.state)
        if getattr(self.state, "book", None) is None:
            self.state.book = PolicyBook(policy)
        # Resumed: the snapshot is a consistent cut (every batch before it is in), and the readers number
        # their batches afresh.
        self.state.readers.clear()
        super().__init__(hold_seconds, self.state.order)
        self.models = models
        self.metrics = metrics
        self.horizon_ms = horizon_ms

    def receive(self, items: list[Any], now: float) -> list[Any]:
        models, hold, state = self.models, self.order.hold, self.state
        passed: list[Any] = []
        for item in items:
            kind = type(item)
            if kind is ShardUpdates:
                self._reader(item.batch[0]).answer(item.batch[1], item.updates)
            elif kind is FeatureManifest:
                self._reader(item.batch[0]).manifests[item.batch[1]] = item
            elif kind is Violation:
                models.watch(item)
                hold(item.detected_at, 0, item.violation_id, item, now)
            elif kind is AppealDecided or kind is ViolationOverturned or kind is ReviewDecided:
                hold(item.ts, 1, item.event_id, item, now)
            elif kind is AppealOutcome:
                hold(item.decided_at, 1, item.appeal_id, item, now)
            elif kind is PolicyUpdate:  # before anything else at its event time
                hold(item.ts, -1, item.change_id, item, now)
            elif kind is Activity:  # on to the ledger in event-time order with the violations (see `apply`)
                if self.hold_seconds is None:
                    passed.append(item)  # a replay's ledger orders everything at the end: no need to hold it here
                else:
                    hold(item.ts, 2, item.event_id, item, now)
        for reader in state.readers.values():
            self._free(reader.complete(self.horizon_ms))
        if state.readers:
            state.frontier = max(state.frontier, min(r.frontier for r in state.readers.values()))
        return passed

    def _reader(self, name: str) -> ReaderBatches:
        reader = self.state.readers.get(name)
        if reader is None:
            reader = self.state.readers[name] = ReaderBatches()
        return reader

    def _free(self, updates: list[FeatureUpdate]) -> None:
        hold = self.state.updates.hold
        for update in updates:  # same ts, same actor: one feature shard's order is kept (a stable sort)
            hold(update.ts, 0, update.actor, update, 0.0)

    def apply(self, pending: Pending, final: bool) -> list[Any]:
        item = pending.item
        kind = type(item)
        if kind is FeatureUpdate:
            return self.models.score(item)
        if kind is Violation:  # priced by the policy in force when it was found, then assessed
            return self.models.assess(repriced(item, self.state.book.at(item.detected_at)))
        if kind is PolicyUpdate:
            self.state.book.add(item.ts, item.change_id, item.policy)
            return []
        if kind is Activity:
            # Passed through, not modelled: leaving here with the violations, in event-time order and after
            # the same hold, an order reaches the ledger in its place among them, as in a replay.
            return [item]
        self.models.learn(item)
        return []

    def score_updates(self, final: bool = False) -> list[Any]:
        """Score the feature updates whose turn has come (all of them at the end of the input)."""
        state = self.state
        if final:
            for reader in state.readers.values():  # at the end every batch is in
                self._free([u for batch in sorted(reader.waiting) for u in reader.waiting.pop(batch)])
        ready = state.updates.take(None) if final else state.updates.take_older(state.frontier)
        return [record for pending in ready for record in self.apply(pending, final)]

    def on_batch(self, items: list[Any], now: float) -> list[Any]:
        out = super().on_batch(items, now)
        return self._published(self.score_updates() + out)

    def on_notify(self, now: float) -> list[Any]:
        return self._published(super().on_notify(now))

    def on_eof(self) -> list[Any]:
        return self._published(self.score_updates(final=True) + super().on_eof())

    def _published(self, out: list[Any]) -> list[Any]:
        self.models.publish(self.metrics)
        return out

    def snapshot(self) -> ModelsShardState:
        self.state.models = self.models.state
        return self.state

    def keys_held(self) -> int:
        return 1

