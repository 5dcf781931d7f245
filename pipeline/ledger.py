"""The enforcement ledger: penalty points, the ladder and each actor's standing.

Keyed by actor. It receives violations from the detect step and governance
events (appeals, lessons) from the input, and applies them in event-time
order: violations of one actor come from several detect shards, possibly on
other workers, so arrival order is not deterministic but event time is.
`run` holds items `ledger_hold_seconds` of wall clock to order them; `replay`
orders the whole input before applying it (see `LedgerShard`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pipeline.detect import Deduper
from pipeline.events import Event
from pipeline.policy import Policy
from pipeline.records import Action, DeadLetter, Standing, Violation
from sinks.metrics import Metrics

DAY_MS = 86_400_000


def action_id(actor: str, action: str, ts: int, violation_ids: list[str]) -> str:
    key = f"{actor}|{action}|{ts}|{','.join(violation_ids)}"
    return "a-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


@dataclass(slots=True)
class ActorLedger:
    """One actor's active violations and the ladder step in force."""

    actor: str
    active: dict[str, Violation] = field(default_factory=dict)  # violation_id -> violation
    step: int = -1  # index into policy.ladder; -1 = good standing

    def active_points(self, now: int, policy: Policy) -> int:
        horizon = now - int(policy.expiry_days * DAY_MS)
        return sum(v.points for v in self.active.values() if v.enforced and v.detected_at > horizon)

    def apply_violation(self, v: Violation, policy: Policy) -> list[Any]:
        if v.violation_id in self.active:
            return []  # idempotent: the same violation twice changes nothing
        self.active[v.violation_id] = v
        if not v.enforced:
            return []
        points = self.active_points(v.detected_at, policy)
        out: list[Any] = [
            self._action(kind, v.detected_at, [v.violation_id], points, f"{v.violation_type}: immediate action by policy")
            for kind in policy.types[v.violation_type].immediate_actions
        ]
        out.extend(self._climb(v.detected_at, policy))
        out.append(self.standing(v.detected_at, policy))
        return out

    def _climb(self, now: int, policy: Policy) -> list[Action]:
        points = self.active_points(now, policy)
        actions = []
        while self.step + 1 < len(policy.ladder) and points >= policy.ladder[self.step + 1].threshold:
            self.step += 1
            rung = policy.ladder[self.step]
            ids = sorted(self.active)
            actions.extend(
                self._action(kind, now, ids, points, f"reached {rung.threshold} active points ({rung.level})")
                for kind in rung.actions
            )
        return actions

    def _action(self, kind: str, ts: int, ids: list[str], points: int, reason: str) -> Action:
        return Action(
            action_id=action_id(self.actor, kind, ts, ids), actor=self.actor, action=kind,
            active_points=points, violation_ids=ids, ts=ts, reason=reason,
        )

    def standing(self, now: int, policy: Policy) -> Standing:
        rung = policy.ladder[self.step] if self.step >= 0 else None
        return Standing(
            actor=self.actor,
            active_points=self.active_points(now, policy),
            level=rung.level if rung else "good",
            health=1000,
            restrictions=list(rung.restrictions) if rung else [],
            ts=now,
        )


@dataclass(slots=True)
class LedgerShardState:
    dedupe: Deduper
    actors: dict[str, ActorLedger] = field(default_factory=dict)
    pending: list[tuple[int, int, str, Any, float]] = field(default_factory=list)


class LedgerShard:
    """Orders a shard's violations and governance events by event time and applies them."""

    def __init__(self, policy: Policy, metrics: Metrics, *, dedupe_horizon_ms: int,
                 resume: LedgerShardState | None = None) -> None:
        self.policy = policy
        self.metrics = metrics
        self.state = resume or LedgerShardState(dedupe=Deduper(dedupe_horizon_ms))

    def add(self, item: Violation | Event, arrived: float) -> None:
        """Queue an item; duplicates of governance events are counted and dropped here."""
        if isinstance(item, Violation):
            self.state.pending.append((item.detected_at, 1, item.violation_id, item, arrived))
            return
        if self.state.dedupe.seen_before(item.event_id, item.ts):
            self.metrics.duplicates_child(item.topic).inc()
            return
        self.state.pending.append((item.ts, 2, item.event_id, item, arrived))

    def release(self, arrived_before: float | None) -> list[Any]:
        """Apply queued items that arrived before the time given (all if None), in event-time order."""
        pending = self.state.pending
        if arrived_before is None:
            ready, self.state.pending = pending, []
        else:
            ready = [p for p in pending if p[4] < arrived_before]
            self.state.pending = [p for p in pending if p[4] >= arrived_before]
        ready.sort(key=lambda p: (p[0], p[1], p[2]))
        out: list[Any] = []
        for _ts, _rank, _id, item, _arrived in ready:
            out.extend(self._apply(item))
        return out

    def next_release(self) -> float | None:
        """Wall-clock arrival time of the oldest queued item."""
        return min((p[4] for p in self.state.pending), default=None)

    def _apply(self, item: Violation | Event) -> list[Any]:
        actor = item.actor
        ledger = self.state.actors.get(actor)
        if ledger is None:
            ledger = self.state.actors[actor] = ActorLedger(actor)
        if isinstance(item, Violation):
            return self._count(ledger.apply_violation(item, self.policy))
        return []  # governance events: appeals and lessons (issue #5)

    def _count(self, records: list[Any]) -> list[Any]:
        for r in records:
            if isinstance(r, Action):
                self.metrics.actions_child(r.action).inc()
            elif isinstance(r, Standing):
                self.metrics.health_score.observe(r.health)
                self.metrics.active_points.observe(r.active_points)
            elif isinstance(r, DeadLetter):
                self.metrics.dead_letters_child(r.reason).inc()
        return records
