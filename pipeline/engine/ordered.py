"""The steps fed by many shards, which apply what they get in event-time order: the ledger and the models.

Violations of one actor come from several detect shards, possibly on other
workers, so their arrival order is not deterministic; their event time is.
Both steps hold what they receive (`EventTimeOrderedShard`) and apply it in
event-time order: a replay at the end of its input, a running job
`ledger_hold_seconds` of wall clock after arrival. The same input therefore
gives the same actions, standings and assessed violations on any number of
workers.
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
from pipeline.enforce.policy import Policy, PolicyBook, PolicyUpdate, repriced
from pipeline.engine.shards import EventClock, EventTimeOrder, EventTimeOrderedShard, Pending
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
    book: PolicyBook | None = None  # the policy in force at each event time (None in snapshots before it)


class ModelsShard(EventTimeOrderedShard):
    """The online models as one step (one key: the models are global).

    Feature updates are scored as they arrive; violations are watched as they
    arrive (drift, rule agreement) and assessed, like appeal decisions are
    learned, in event-time order. After each batch the models' observations
    go to the metrics.
    """

    def __init__(self, models: OnlineModels, metrics: Metrics, *, hold_seconds: float | None, policy: Policy,
                 resume: ModelsShardState | None = None) -> None:
        self.state = resume or ModelsShardState(models.state)
        if getattr(self.state, "book", None) is None:
            self.state.book = PolicyBook(policy)
        super().__init__(hold_seconds, self.state.order)
        self.models = models
        self.metrics = metrics

    def receive(self, items: list[Any], now: float) -> list[Any]:
        out: list[Any] = []
        models, hold = self.models, self.order.hold
        for item in items:
            kind = type(item)
            if kind is FeatureUpdate:
                out += models.score(item)
            elif kind is Violation:
                models.watch(item)
                hold(item.detected_at, 0, item.violation_id, item, now)
            elif kind is AppealDecided:
                hold(item.ts, 1, item.event_id, item, now)
            elif kind is AppealOutcome:
                hold(item.decided_at, 1, item.appeal_id, item, now)
            elif kind is PolicyUpdate:
                hold(item.ts, -1, item.change_id, item, now)
        return out

    def apply(self, pending: Pending, final: bool) -> list[Any]:
        item = pending.item
        if type(item) is Violation:  # priced by the policy in force when it was found, then assessed
            return self.models.assess(repriced(item, self.state.book.at(item.detected_at)))
        if type(item) is PolicyUpdate:
            self.state.book.add(item.ts, item.change_id, item.policy)
            return []
        self.models.learn(item)
        return []

    def on_batch(self, items: list[Any], now: float) -> list[Any]:
        return self._published(super().on_batch(items, now))

    def on_notify(self, now: float) -> list[Any]:
        return self._published(super().on_notify(now))

    def on_eof(self) -> list[Any]:
        return self._published(super().on_eof())

    def _published(self, out: list[Any]) -> list[Any]:
        self.models.publish(self.metrics)
        return out

    def snapshot(self) -> ModelsShardState:
        self.state.models = self.models.state
        return self.state

    def keys_held(self) -> int:
        return 1

