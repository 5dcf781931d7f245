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
from pipeline.contract.events import AppealDecided, AppealFiled
from pipeline.contract.records import AppealOutcome, Violation
from pipeline.enforce.ledger import RANK, Ledger, LedgerState, Relayed
from pipeline.engine.detect import FeatureManifest, ShardUpdates
from pipeline.engine.shards import NEVER, EventClock, EventTimeOrder, EventTimeOrderedShard, Pending
from sinks.metrics import Metrics

# `run` only: an appeal whose violation has not reached the ledger yet is
# retried this often (wall clock) for up to `unknown_appeal_wait_seconds`.
RETRY_EVERY_SECONDS = 5.0


@dataclass(slots=True)
class LedgerShardState:
    """Everything a ledger shard keeps; pickled into recovery snapshots."""

    ledger: LedgerState
    clock: EventClock  # dedupe of governance events; the newest event time applied
    order: EventTimeOrder = field(default_factory=EventTimeOrder)


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
            elif self.state.clock.seen_before(item.event_id, item.ts):
                self.metrics.duplicates_child(item.topic).inc()
            else:
                hold(item.ts, RANK[type(item)], item.event_id, item, now)
        return []

    def apply(self, pending: Pending, final: bool) -> list[Any]:
        item, clock = pending.item, self.state.clock
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
        return (isinstance(item, (AppealFiled, AppealDecided)) and not final and not self.ledger.knows(item)
                and pending.due - pending.first_arrived < self.unknown_appeal_wait_seconds)

    def snapshot(self) -> LedgerShardState:
        return self.state

    def keys_held(self) -> int:
        return self.ledger.actors_held()


@dataclass(slots=True)
class ModelsShardState:
    """Everything the models step keeps; pickled into recovery snapshots."""

    models: ModelsState
    order: EventTimeOrder = field(default_factory=EventTimeOrder)
    updates: EventTimeOrder = field(default_factory=EventTimeOrder)  # feature updates free to be scored in order
    # A replay's input batches not yet complete: updates so far, feature shards answered, the manifest.
    waiting: dict[int, list[FeatureUpdate]] = field(default_factory=dict)
    answered: dict[int, int] = field(default_factory=dict)
    manifests: dict[int, FeatureManifest] = field(default_factory=dict)
    complete_through: int = 0  # every input batch up to this one is in
    frontier: int = NEVER  # updates older than this are scored


class ModelsShard(EventTimeOrderedShard):
    """The online models as one step (one key: the models are global).

    Feature updates are scored in event-time order (the anomaly model learns
    from each, so the order is the review queue's). A running job scores
    what has waited `hold_seconds`. A replay must not depend on which worker
    answers first, nor keep every update to its end: an input batch is
    complete once every feature shard it fed has answered (`ShardUpdates`
    against its `FeatureManifest`), and when all batches up to one are
    complete, their updates older than that batch's stream progress minus
    `horizon_ms` are scored, in event-time order; the rest at the end. Each
    step depends only on the input, so the queue is the same on any number
    of workers or processes. Violations are watched as they arrive (drift,
    rule agreement) and assessed, like appeal decisions are learned, in
    event-time order. After each batch the models' observations go to the
    metrics.
    """

    def __init__(self, models: OnlineModels, metrics: Metrics, *, hold_seconds: float | None, horizon_ms: int = 0,
                 resume: ModelsShardState | None = None) -> None:
        self.state = resume or ModelsShardState(models.state)
        super().__init__(hold_seconds, self.state.order)
        self.models = models
        self.metrics = metrics
        self.horizon_ms = horizon_ms

    def receive(self, items: list[Any], now: float) -> list[Any]:
        models, hold, state = self.models, self.order.hold, self.state
        for item in items:
            kind = type(item)
            if kind is ShardUpdates:
                if self.hold_seconds is None:
                    state.waiting.setdefault(item.batch, []).extend(item.updates)
                    state.answered[item.batch] = state.answered.get(item.batch, 0) + 1
                else:
                    self._free(item.updates, now)
            elif kind is FeatureManifest:
                state.manifests[item.batch] = item
            elif kind is Violation:
                models.watch(item)
                hold(item.detected_at, 0, item.violation_id, item, now)
            elif kind is AppealDecided:
                hold(item.ts, 1, item.event_id, item, now)
            elif kind is AppealOutcome:
                hold(item.decided_at, 1, item.appeal_id, item, now)
        self._complete_batches(now)
        return []

    def orders(self) -> list[EventTimeOrder]:
        return [self.order, self.state.updates]

    def _free(self, updates: list[FeatureUpdate], now: float) -> None:
        hold = self.state.updates.hold
        for update in updates:  # same ts, same actor: one feature shard's order is kept (a stable sort)
            hold(update.ts, 0, update.actor, update, now)

    def _complete_batches(self, now: float) -> None:
        """Free the updates of the input batches now complete, in batch order; move the frontier."""
        state = self.state
        while (manifest := state.manifests.get(state.complete_through + 1)) is not None \
                and state.answered.get(manifest.batch, 0) == manifest.shards:
            del state.manifests[manifest.batch]
            state.answered.pop(manifest.batch, None)
            self._free(state.waiting.pop(manifest.batch, []), now)
            state.complete_through = manifest.batch
            if manifest.progress != NEVER:
                state.frontier = max(state.frontier, manifest.progress - self.horizon_ms)

    def apply(self, pending: Pending, final: bool) -> list[Any]:
        kind = type(pending.item)
        if kind is FeatureUpdate:
            return self.models.score(pending.item)
        if kind is Violation:
            return self.models.assess(pending.item)
        self.models.learn(pending.item)
        return []

    def score_updates(self, now: float | None) -> list[Any]:
        """Score the feature updates whose turn has come (all of them when `now` is None: the end)."""
        state = self.state
        if now is None:
            for batch in sorted(state.waiting):  # at the end every batch is in
                self._free(state.waiting.pop(batch), 0.0)
            ready = state.updates.take(None)
        elif self.hold_seconds is None:
            ready = state.updates.take_older(state.frontier)
        else:
            ready = state.updates.take(now - self.hold_seconds)
        return [record for pending in ready for record in self.apply(pending, final=now is None)]

    def on_batch(self, items: list[Any], now: float) -> list[Any]:
        out = super().on_batch(items, now)
        return self._published(self.score_updates(now) + out)

    def on_notify(self, now: float) -> list[Any]:
        out = super().on_notify(now)
        return self._published((self.score_updates(now) if self.hold_seconds is not None else []) + out)

    def on_eof(self) -> list[Any]:
        return self._published(self.score_updates(None) + super().on_eof())

    def wake_at(self) -> float | None:
        oldest = [t for t in (self.order.oldest(), self.state.updates.oldest()) if t is not None]
        if self.hold_seconds is None or not oldest:
            return None
        return min(oldest) + self.hold_seconds

    def _published(self, out: list[Any]) -> list[Any]:
        self.models.publish(self.metrics)
        return out

    def snapshot(self) -> ModelsShardState:
        self.state.models = self.models.state
        return self.state

    def keys_held(self) -> int:
        return 1

