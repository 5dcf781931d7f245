"""The enforcement ledger: penalty points, the ladder, appeals, lessons and each actor's standing.

Keyed by actor shard. It receives violations from the detect steps and
governance events (`appeal.filed`, `appeal.decided`, `education.completed`)
from the input, and applies them in event-time order: violations of one actor
come from several detect shards, possibly on other workers, so arrival order
is not deterministic but event time is. `run` holds items
`ledger_hold_seconds` of wall clock to order them; `replay` orders the whole
input before applying it (see `LedgerShard`). The same input therefore gives
the same actions and standings on any number of workers.

What the ledger does, all in event time and all from `config/policy.toml`:

- **Points.** An enforced violation adds its points; they expire
  `expiry_days` after the violation was issued. Shadow-mode violations
  (`enforced = false`) are recorded (so they can be appealed) but carry no
  points, no actions and no health penalty.
- **Ladder.** The step in force is the highest whose threshold the active
  points reach. Climbing issues the actions of every step reached (each kind
  once per change); falling below a step, or losing a restriction, issues one
  `reinstatement`.
- **Immediate actions** (e.g. `listing_removal` for counterfeit or
  prohibited listings) are issued with the violation, whatever the points;
  lasting ones (`live_restriction`, `payout_hold`, `suspension`) stay in the
  standing's restrictions while their violation is active.
- **Appeals.** `appeal.filed` puts the violation in `under_appeal`;
  `appeal.decided` `overturned` removes its points and penalty, `upheld`
  keeps them. Unknown, foreign or repeated appeals become dead letters. Each
  decision is also an `AppealOutcome`: a reviewer's label for the online
  models, on the ledger's output stream only (never written to a file).
- **Lessons.** `education.completed` for the lesson of a violation type the
  actor has an active violation of removes `education_credit_points` (from the
  newest such violation) and adds health, at most once per type per
  `education_credit_days`.
- **Health** (0..1000): see `ActorLedger.health` and `[health]` in the policy.

An `actor-standing` record is emitted whenever points, level, health,
restrictions or the appeals pending change, including when points expire.

Example: a counterfeit listing (24 points) on a fresh seller

>>> from pipeline.enforce.policy import load_policy
>>> policy = load_policy()
>>> ledger = ActorLedger("seller:S1")
>>> v = example_violation("seller:S1", "counterfeit_listing", policy, ts=0, evidence={"listing_id": "L9"})
>>> [(r.action, r.active_points) for r in ledger.add_violation(v, policy) if isinstance(r, Action)]
[('listing_removal', 24), ('warning', 24), ('live_restriction', 24)]
>>> ledger.standing(0, policy).level, ledger.standing(0, policy).health
('restricted', 680)
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, NamedTuple

import msgspec

from pipeline.contract.events import (
    AppealDecided, AppealFiled, EducationCompleted, Event, ReviewDecided, ViolationOverturned,
)
from pipeline.contract.records import (
    Action, AppealOutcome, DeadLetter, Incentive, Standing, Violation, evidence_features,
)
from pipeline.enforce.incentives import (
    GRANTED, HOUR_MS, RESTORED, REVOKED, Activity, CreditsForfeited, Rewards, gap, incentive_id, keep_days,
    counted_at, next_look, period_active, requirements as requirements_met, role_of, settled, unmet,
)
from pipeline.enforce.policy import LASTING_ACTIONS, RESTRICTION_KINDS, Policy
from sinks.metrics import Metrics

DAY_MS = 86_400_000
GOOD = "good"
# Why the ledger dead-letters a governance event (the `reason` of its dead letter).
REJECTION_REASONS = ("unknown_violation", "wrong_actor", "repeated_appeal", "unknown_module")

# Order of items with the same event time: the violation before its appeal,
# a filing before its decision.
RANK = {Violation: 0, AppealFiled: 1, AppealDecided: 2, ViolationOverturned: 2, EducationCompleted: 3,
        ReviewDecided: 3, Activity: 4}
TICK = "tick"  # a `due` entry for the hourly look at an actor's incentives (not a violation id)


class Cause(NamedTuple):
    """What changed an actor's record: named by the incentive records it causes."""

    kind: str  # violation, appeal, appeal_filed, lesson, expiry, activity, time
    violation_id: str = ""
    appeal_id: str = ""


class Relayed(msgspec.Struct, frozen=True):
    """A violation the ledger writes out itself when it first applies it.

    Ban-evasion links reach the ledger from several identifier shards (a
    device and a payout hash can both tie an account to a banned one) as
    copies of one violation id. Applied in event-time order, the earliest
    copy wins on any number of workers, and only that one is written.
    """

    violation: Violation


class Rejected(Exception):
    """A governance event the ledger cannot use; it becomes a dead letter."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


def action_id(actor: str, action: str, ts: int, violation_ids: list[str]) -> str:
    key = f"{actor}|{action}|{ts}|{','.join(violation_ids)}"
    return "a-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def listing_ids(evidence: dict[str, Any]) -> list[str]:
    """The listings a violation is about, from its evidence (`listing_id` or `listing_ids`).

    >>> listing_ids({"listing_id": "L1"}), listing_ids({"listing_ids": ["L2", "L3"]}), listing_ids({})
    (['L1'], ['L2', 'L3'], [])
    """
    one = evidence.get("listing_id")
    many = evidence.get("listing_ids")
    ids = [one] if isinstance(one, str) else []
    if isinstance(many, list):
        ids += [x for x in many if isinstance(x, str) and x not in ids]
    return ids


def _name_list(ids: list[str], limit: int = 20) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _restore(obj: Any, state: Any) -> None:
    """Unpickle a slots dataclass from a snapshot taken before its newest fields: those take their defaults.

    The pickled state of a slotted object is `(None, {slot: value})`.
    """
    slots = state[1] if isinstance(state, tuple) else state
    for f in fields(obj):
        if f.name in slots:
            value = slots[f.name]
        elif f.default_factory is not MISSING:
            value = f.default_factory()
        else:
            value = f.default
        object.__setattr__(obj, f.name, value)


@dataclass(slots=True)
class Entry:
    """One violation in an actor's record, with what has happened to it since."""

    violation: Violation
    points: int  # points still counting: lessons remove some, an overturn all; 0 in shadow mode
    expires_at: int
    appeal: str = ""  # "", "filed", "upheld" or "overturned"
    filed_at: int | None = None
    forfeited: int = 0  # incentive credits it took; given back if it is overturned

    __setstate__ = _restore  # recovery snapshots from before `forfeited`

    @property
    def in_force(self) -> bool:
        """Enforced and not overturned: its immediate restrictions hold."""
        return self.violation.enforced and self.appeal != "overturned"

    @property
    def penalised(self) -> bool:
        """Lowers health: in force and carries points by policy."""
        return self.in_force and self.violation.points > 0


@dataclass(slots=True)
class ActorLedger:
    """One actor's violations of the last `expiry_days`, the ladder step in force, lessons credited.

    Methods take the event time `now` and return the records to emit; the
    ledger never reads a clock.
    """

    actor: str
    entries: dict[str, Entry] = field(default_factory=dict)  # violation_id -> entry
    step: int = -1  # index into policy.ladder; -1 = good standing
    restrictions: tuple[str, ...] = ()  # in force after the last change
    credited: dict[str, int] = field(default_factory=dict)  # violation type -> ts of its last credited lesson
    lessons: list[int] = field(default_factory=list)  # ts of credited lessons (health credit), oldest first
    rewards: Rewards = field(default_factory=Rewards)  # incentive credits, activity and programs held

    __setstate__ = _restore  # recovery snapshots from before `rewards`

    # ---- what the actor's standing is ---------------------------------------------------

    def active_points(self) -> int:
        return sum(e.points for e in self.entries.values())

    def health(self, now: int, policy: Policy) -> int:
        """The 0..1000 health score at `now`, exactly as `[health]` in the policy documents it.

        health = 1000 - penalty + credit, rounded and clamped to 0..1000, where each
        active violation that carries points costs `severity_penalty[severity]`
        fading linearly to 0 at its expiry, and each credited lesson gives
        `lesson_credit` fading linearly to 0 over `expiry_days`.
        """
        if not self.entries and not self.lessons:
            return 1000  # the common case (an active, clean actor): nothing to add up
        span = policy.expiry_days * DAY_MS
        penalty = sum(
            policy.penalty(e.violation.severity) * min(1.0, max(0, e.expires_at - now) / span)
            for e in self.entries.values() if e.penalised
        )
        credit = sum(policy.health.lesson_credit * min(1.0, max(0, ts + span - now) / span) for ts in self.lessons)
        return int(min(1000, max(0, round(1000 - penalty + credit))))

    def under_appeal(self) -> list[str]:
        return sorted(vid for vid, e in self.entries.items() if e.appeal == "filed")

    def level(self, policy: Policy) -> str:
        return policy.ladder[self.step].level if self.step >= 0 else GOOD

    def standing(self, now: int, policy: Policy) -> Standing:
        return Standing(
            actor=self.actor,
            active_points=self.active_points(),
            level=self.level(policy),
            health=self.health(now, policy),
            restrictions=list(self.restrictions),
            ts=now,
            under_appeal=self.under_appeal(),
            credits=self.rewards.credits,
            programs=self.programs_shown(policy),
            program_gaps=self.program_gaps(now, policy),
        )

    def programs_shown(self, policy: Policy) -> list[str]:
        """Programs held and in force (a shadow program is never shown as held)."""
        programs = policy.incentives.programs if policy.incentives else {}
        return [name for name in self.rewards.held if name in programs and programs[name].enforced]

    def program_gaps(self, now: int, policy: Policy) -> list[Any]:
        """Each program in force of the actor's role it does not hold: what is missing, when it can be back."""
        gaps = []
        for name, program in self._programs(policy).items():
            if program.enforced and name not in self.rewards.held:
                gaps.append(gap(name, self._unmet(program, now, policy)))
        return gaps

    def _key(self, now: int, policy: Policy) -> tuple:
        """What a standing says that, when it changes, makes a new standing worth emitting."""
        return (self.active_points(), self.level(policy), self.health(now, policy), self.restrictions,
                self.under_appeal(), self.rewards.credits, self.programs_shown(policy))

    # ---- what changes it ------------------------------------------------------------------

    def add_violation(self, v: Violation, policy: Policy) -> list[Any]:
        """Record a violation; if enforced, issue its immediate actions and climb the ladder."""
        if v.violation_id in self.entries:
            return []  # idempotent: the same violation twice changes nothing
        now = v.detected_at
        before = self._key(now, policy)
        self.entries[v.violation_id] = Entry(
            v, points=v.points if v.enforced else 0, expires_at=now + int(policy.expiry_days * DAY_MS))
        if not v.enforced:
            return []  # shadow mode: recorded and appealable, nothing more
        rule = policy.types[v.violation_type]
        out: list[Any] = [self._immediate(kind, v) for kind in rule.immediate_actions]
        out += self._settle(now, policy, [v.violation_id], v.violation_type, skip=rule.immediate_actions)
        out += self._forfeit(self.entries[v.violation_id], now, policy)
        return out + self._finish(before, now, policy, Cause("violation", violation_id=v.violation_id))

    def expire(self, now: int, policy: Policy) -> list[Any]:
        """Drop violations (and lesson credits) whose time is up at `now`."""
        span = int(policy.expiry_days * DAY_MS)
        while self.lessons and self.lessons[0] + span <= now:
            self.lessons.pop(0)
        credit_span = policy.education_credit_days * DAY_MS
        for vtype in [t for t, ts in self.credited.items() if ts + credit_span <= now]:
            del self.credited[vtype]
        gone = sorted((e.violation.detected_at, vid) for vid, e in self.entries.items() if e.expires_at <= now)
        if not gone:
            return []
        before = self._key(now, policy)
        ids = [vid for _, vid in gone if self.entries[vid].in_force]
        for _, vid in gone:
            del self.entries[vid]
        out = self._settle(now, policy, ids, f"{len(ids)} violation(s) expired after {policy.expiry_days:g} days")
        return out + self._finish(before, now, policy, Cause("expiry"))

    def file_appeal(self, event: AppealFiled, policy: Policy) -> list[Any]:
        entry = self.entries[event.violation_id]
        if entry.appeal:
            raise Rejected("repeated_appeal", f"appeal {event.appeal_id}: violation {event.violation_id} "
                                              f"already has an appeal ({entry.appeal})")
        before = self._key(event.ts, policy)
        entry.appeal, entry.filed_at = "filed", event.ts
        return self._finish(before, event.ts, policy, Cause("appeal_filed", appeal_id=event.appeal_id))

    def decide_appeal(self, event: AppealDecided, policy: Policy) -> list[Any]:
        """`overturned` removes the violation's points and restrictions; `upheld` keeps them."""
        entry = self.entries[event.violation_id]
        if entry.appeal in ("upheld", "overturned"):
            raise Rejected("repeated_appeal", f"appeal {event.appeal_id}: violation {event.violation_id} "
                                              f"was already decided ({entry.appeal})")
        now = event.ts
        before = self._key(now, policy)
        entry.appeal = event.decision
        out: list[Any] = []
        if event.decision == "overturned":
            entry.points = 0
            out += self._settle(now, policy, [event.violation_id],
                                f"appeal {event.appeal_id} overturned {entry.violation.violation_type}")
            self._give_back(entry, policy)
        out += self._finish(before, now, policy, Cause(
            "appeal" if event.decision == "overturned" else "appeal_upheld", event.violation_id, event.appeal_id))
        v = entry.violation
        out.append(AppealOutcome(
            appeal_id=event.appeal_id, violation_id=v.violation_id, actor=self.actor,
            violation_type=v.violation_type, detector=v.detector, outcome=event.decision,
            confidence=v.confidence, enforced=v.enforced, features=evidence_features(v.evidence),
            evidence=v.evidence, detected_at=v.detected_at, filed_at=entry.filed_at, decided_at=now,
            reviewer_id=event.reviewer_id,
        ))
        return out

    def complete_lesson(self, event: EducationCompleted, types: list[str], policy: Policy) -> list[Any]:
        """Credit a lesson for each type it teaches that the actor has an active violation of.

        At most once per type per `education_credit_days`; a lesson that earns no
        credit changes nothing.
        """
        now = event.ts
        before = self._key(now, policy)
        credited, reduced = False, []
        for vtype in types:
            if not self._lesson_counts(vtype, now, policy):
                continue
            self.credited[vtype] = now
            credited = True
            newest = max((e for e in self.entries.values() if e.penalised and e.points > 0
                          and e.violation.violation_type == vtype),
                         key=lambda e: (e.violation.detected_at, e.violation.violation_id), default=None)
            if newest is not None:
                newest.points -= min(policy.education_credit_points, newest.points)
                reduced.append(newest.violation.violation_id)
        if not credited:
            return []
        self.lessons.append(now)
        out = self._settle(now, policy, reduced, f"lesson {event.module_id} completed")
        return out + self._finish(before, now, policy, Cause("lesson"))

    def _lesson_counts(self, vtype: str, now: int, policy: Policy) -> bool:
        last = self.credited.get(vtype)
        if last is not None and now - last < policy.education_credit_days * DAY_MS:
            return False
        return any(e.penalised and e.violation.violation_type == vtype for e in self.entries.values())

    def add_activity(self, item: Activity) -> None:
        """Count an order or a LIVE. It counts at the next hourly look (`tick`), whatever order it arrived in."""
        self.rewards.count(item)

    def tick(self, now: int, policy: Policy) -> list[Any]:
        """The hourly look: settled activity counts, credit periods end, clean days and health come back."""
        before = self._key(now, policy)
        return self._finish(before, now, policy, Cause("time"))

    def idle(self, now: int, policy: Policy) -> bool:
        """Nothing left worth keeping: no violation in its expiry window, no recent lesson credit, no rewards."""
        if self.entries or not self.rewards.empty():
            return False
        credit_span = policy.education_credit_days * DAY_MS
        return all(ts + credit_span <= now for ts in self.credited.values())

    # ---- the ladder -------------------------------------------------------------------------

    def _settle(self, now: int, policy: Policy, cause_ids: list[str], cause: str,
                skip: list[str] | tuple[str, ...] = ()) -> list[Action]:
        """Recompute the step and restrictions; issue the actions of steps reached, or a reinstatement."""
        points = self.active_points()
        old_step, old_level, old_restrictions = self.step, self.level(policy), self.restrictions
        self.step = policy.step_for(points)
        self.restrictions = self._restrictions_in_force(policy)
        out: list[Action] = []
        if self.step > old_step:
            ids = self._ids_behind_points()
            kinds: list[str] = []
            for rung in policy.ladder[old_step + 1:self.step + 1]:
                kinds += [k for k in rung.actions if k not in kinds and k not in skip]
            top = policy.ladder[self.step]
            reason = f"{cause}: {points} active points reached level {top.level} (threshold {top.threshold})"
            for kind in kinds:
                out.append(self._action(kind, now, ids, points, reason + self._listings_note(kind, ids)))
        # a climb may replace restrictions (suspension subsumes the rest): only a fall reinstates
        lifted = [r for r in old_restrictions if r not in self.restrictions] if self.step <= old_step else []
        if self.step < old_step or lifted:
            reason = f"{cause}: active points now {points}, level {old_level} -> {self.level(policy)}"
            if lifted:
                reason += f"; lifted: {', '.join(lifted)}"
            out.append(self._action("reinstatement", now, cause_ids, points, reason))
        return out

    def _restrictions_in_force(self, policy: Policy) -> tuple[str, ...]:
        held = set(policy.ladder[self.step].restrictions) if self.step >= 0 else set()
        for e in self.entries.values():
            if e.in_force:
                held.update(k for k in policy.types[e.violation.violation_type].immediate_actions
                            if k in LASTING_ACTIONS)
        return tuple(r for r in RESTRICTION_KINDS if r in held)

    def _ids_behind_points(self) -> list[str]:
        """The violations whose points are active, oldest first."""
        return [vid for _, vid in sorted((e.violation.detected_at, vid)
                                         for vid, e in self.entries.items() if e.points > 0)]

    def _listings_note(self, kind: str, ids: list[str]) -> str:
        if kind != "listing_removal":
            return ""
        listings: list[str] = []
        for vid in ids:
            listings += [x for x in listing_ids(self.entries[vid].violation.evidence) if x not in listings]
        return f"; remove listings {_name_list(listings)}" if listings else "; no listing id in the evidence"

    def _immediate(self, kind: str, v: Violation) -> Action:
        reason = f"{v.violation_type}: {kind} at once by policy {v.policy_id}"
        if kind == "listing_removal":
            ids = listing_ids(v.evidence)
            reason += f"; remove listing {_name_list(ids)}" if ids else "; no listing id in the evidence"
        return self._action(kind, v.detected_at, [v.violation_id], self.active_points(), reason)

    def _action(self, kind: str, ts: int, ids: list[str], points: int, reason: str) -> Action:
        return Action(
            action_id=action_id(self.actor, kind, ts, ids), actor=self.actor, action=kind,
            active_points=points, violation_ids=ids, ts=ts, reason=reason,
        )

    def _finish(self, before: tuple, now: int, policy: Policy, cause: Cause) -> list[Any]:
        """After a change: the incentive programs it grants or takes, then the new standing if it differs."""
        out: list[Any] = self._review_programs(now, policy, cause)
        return out + ([self.standing(now, policy)] if self._key(now, policy) != before else [])

    # ---- incentives (see pipeline/enforce/incentives.py) -------------------------------------

    def _programs(self, policy: Policy) -> dict[str, Any]:
        """The programs of the policy open to this actor's role."""
        if policy.incentives is None:
            return {}
        role = role_of(self.actor)
        return {name: p for name, p in policy.incentives.programs.items() if p.role == role}

    def _unmet(self, program: Any, now: int, policy: Policy, health: int | None = None) -> list[Any]:
        health = self.health(now, policy) if health is None else health
        blockers = [(e.violation.detected_at, vid, e.violation.violation_type)
                    for vid, e in self.entries.items() if e.penalised]
        health_at = self._health_reaches(program.min_health, now, policy) if health < program.min_health else None
        return unmet(program, self.actor, self.rewards, health=health, blockers=blockers, now=now,
                     health_at=health_at)

    def _health_reaches(self, target: int, now: int, policy: Policy) -> int | None:
        """The first hourly look at which health is `target` or more with no new violation (day by day, then
        hour by hour within the day found)."""
        start = next_look(now)
        for day in range(int(policy.expiry_days) + 2):
            at = start + day * DAY_MS
            if self.health(at, policy) >= target:
                earliest = max(start, at - DAY_MS)
                return next(t for t in range(earliest, at + 1, HOUR_MS) if self.health(t, policy) >= target)
        return None

    def _review_programs(self, now: int, policy: Policy, cause: Cause) -> list[Incentive]:
        """Grant the programs whose rules all hold now, revoke the held ones that no longer do."""
        if policy.incentives is None and not self.rewards.held:
            return []
        self._close_periods(now, policy)
        self.rewards.prune(now, keep_days(policy) + (policy.incentives.credits.period_days if policy.incentives else 0))
        programs, held, out = self._programs(policy), self.rewards.held, []
        health = self.health(now, policy)
        for name in [n for n in held if n not in programs]:
            del held[name]
            out.append(self._incentive(name, REVOKED, f"program withdrawn by policy {policy.version}", now, cause,
                                       shadow=False))
        for name, program in programs.items():
            rules = self._unmet(program, now, policy, health)
            if not rules and name not in held:
                held[name] = now
                change = RESTORED if cause.kind == "appeal" and name in self.rewards.lost else GRANTED
                self.rewards.lost.discard(name)
                reason = "every rule met: " + (requirements_met(program) if change == GRANTED
                                               else f"appeal {cause.appeal_id} overturned {cause.violation_id}")
                out.append(self._incentive(name, change, reason, now, cause, shadow=not program.enforced))
            elif rules and name in held:
                del held[name]
                self.rewards.lost.add(name)
                blamed = cause.violation_id or next((r.violation_id for r in rules if r.violation_id), "")
                out.append(self._incentive(name, REVOKED, "; ".join(r.text for r in rules), now,
                                           cause._replace(violation_id=blamed), shadow=not program.enforced))
        return out

    def _incentive(self, program: str, change: str, reason: str, now: int, cause: Cause, *, shadow: bool) -> Incentive:
        appeal = cause.appeal_id if cause.kind == "appeal" else ""
        return Incentive(
            incentive_id=incentive_id(self.actor, program, change, now, cause.violation_id + appeal),
            actor=self.actor, program=program, change=change, reason=reason, ts=now,
            violation_id=cause.violation_id, appeal_id=appeal, shadow=shadow)

    def _close_periods(self, now: int, policy: Policy) -> None:
        """Credit each credit period that ended before `now` with activity and no enforced violation issued in it."""
        if policy.incentives is None:
            return
        credits, rewards = policy.incentives.credits, self.rewards
        length = credits.period_days * DAY_MS
        current = settled(now) // length  # a period is judged once its last hour is settled
        if rewards.period < 0 or rewards.period >= current:
            rewards.period = max(rewards.period, current)
            return
        with_activity = sorted({hour * HOUR_MS // length for hour in rewards.hours} | {rewards.period})
        role = role_of(self.actor)
        for period in (p for p in with_activity if rewards.period <= p < current):
            start, end = period * length, (period + 1) * length
            clean = not any(e.penalised and start <= e.violation.detected_at < end for e in self.entries.values())
            if clean and period_active(credits, role, rewards, start, end):
                rewards.credits = min(credits.cap, rewards.credits + credits.per_clean_period)
        rewards.period = current

    def _forfeit(self, entry: Entry, now: int, policy: Policy) -> list[CreditsForfeited]:
        """An enforced violation takes credits by its severity (never below 0)."""
        if policy.incentives is None or not entry.penalised:
            return []
        self._close_periods(now, policy)  # a period that ended clean before it is credited first
        rate = getattr(policy.incentives.credits.forfeit, entry.violation.severity)
        taken = min(self.rewards.credits, rate)
        if not taken:
            return []
        self.rewards.credits -= taken
        entry.forfeited = taken
        return [CreditsForfeited(entry.violation.violation_type, taken)]

    def _give_back(self, entry: Entry, policy: Policy) -> None:
        """An overturned violation gives back the credits it took."""
        if entry.forfeited:
            cap = policy.incentives.credits.cap if policy.incentives else entry.forfeited + self.rewards.credits
            self.rewards.credits = min(cap, self.rewards.credits + entry.forfeited)
            entry.forfeited = 0


@dataclass(slots=True)
class LedgerState:
    """Everything one ledger shard keeps about its actors; pickled into recovery snapshots."""

    actors: dict[str, ActorLedger] = field(default_factory=dict)
    # (ts, actor, violation_id or ""): when an actor's record must be revisited (expiry, credit end)
    due: list[tuple[int, str, str]] = field(default_factory=list)


class Ledger:
    """Applies a shard's violations and governance events, in the order it is given them (event time).

    Ordering, dedupe of governance events and waiting for a violation that is
    still on its way are the engine's (`pipeline.engine.ordered.LedgerShard`);
    this class is what the ledger *does*. Records it returns are counted in
    the metrics given (a private registry for the silent `ledger_suspensions`
    pass) and exclude `AppealOutcome`s unless `emit_appeal_outcomes`.
    """

    def __init__(self, policy: Policy, metrics: Metrics, *, resume: LedgerState | None = None,
                 emit_appeal_outcomes: bool = False) -> None:
        self.policy = policy
        self.metrics = metrics
        self.emit_appeal_outcomes = emit_appeal_outcomes
        self.state = resume or LedgerState()
        for ledger in self.state.actors.values():  # a resumed shard's programs count as eligible again
            for program in ledger.rewards.held:
                metrics.eligible_child(program).inc()

    def knows(self, event: AppealFiled | AppealDecided) -> bool:
        """Whether the appeal's violation is in its actor's record."""
        ledger = self.state.actors.get(event.actor)
        return ledger is not None and event.violation_id in ledger.entries

    def advance_to(self, ts: int) -> list[Any]:
        """Expire every violation and lesson credit of this shard that is due at or before `ts`."""
        due, out = self.state.due, []
        while due and due[0][0] <= ts:
            at, actor, vid = heapq.heappop(due)
            ledger = self.state.actors.get(actor)
            if ledger is not None:
                out += ledger.expire(at, self.policy)
                if vid == TICK and ledger.rewards.tick_at == at:
                    ledger.rewards.tick_at = 0
                    out += ledger.tick(at, self.policy)
                    self._schedule_tick(ledger, at)
                self.evict_if_idle(actor, at)
        return self._count(out)

    def apply(self, item: Violation | Relayed | AppealFiled | AppealDecided | EducationCompleted | Activity
              ) -> list[Any]:
        """Apply one item (call `advance_to(its time)` first); returns the records it causes."""
        relayed = isinstance(item, Relayed)
        if relayed:
            item = item.violation
        out: list[Any] = []
        if isinstance(item, Violation):
            ledger = self._ledger(item.actor)
            if item.violation_id not in ledger.entries:
                if relayed:
                    out.append(item)
                out += ledger.add_violation(item, self.policy)
                heapq.heappush(self.state.due,
                               (ledger.entries[item.violation_id].expires_at, item.actor, item.violation_id))
        elif isinstance(item, EducationCompleted):
            out += self._lesson(item)
        elif isinstance(item, Activity):
            ledger = self._ledger(item.actor)
            ledger.add_activity(item)
            self._schedule_tick(ledger, item.ts)
        elif isinstance(item, ReviewDecided):
            pass  # a verdict on a review-queue entry carries no points: only the online models learn from it
        else:
            out += self._appeal(item)
        if isinstance(item, Violation):
            self._schedule_tick(self.state.actors[item.actor], item.detected_at)
        return self._count(out)

    def _schedule_tick(self, ledger: ActorLedger, now: int) -> None:
        """An hourly look at an actor's incentives while activity or time can change them (`ActorLedger.tick`)."""
        if self.policy.incentives is None or ledger.rewards.tick_at > now:
            return
        if ledger.rewards.busy():
            ledger.rewards.tick_at = counted_at(now)  # the next look that counts activity of `now`
            heapq.heappush(self.state.due, (ledger.rewards.tick_at, ledger.actor, TICK))

    def evict_if_idle(self, actor: str, now: int) -> None:
        ledger = self.state.actors.get(actor)
        if ledger is not None and ledger.idle(now, self.policy):
            del self.state.actors[actor]

    def _ledger(self, actor: str) -> ActorLedger:
        ledger = self.state.actors.get(actor)
        if ledger is None:
            ledger = self.state.actors[actor] = ActorLedger(actor)
        return ledger

    def _appeal(self, event: AppealFiled | AppealDecided | ViolationOverturned) -> list[Any]:
        try:
            if not self.knows(event):
                raise self._unknown(event)
            ledger = self.state.actors[event.actor]
            if isinstance(event, ViolationOverturned):  # a reviewer's overturn without an appeal
                return ledger.decide_appeal(event.as_decision(), self.policy)
            if isinstance(event, AppealFiled):
                records = ledger.file_appeal(event, self.policy)
                self.metrics.appeals_child("filed", ledger.entries[event.violation_id].violation.violation_type).inc()
                return records
            return ledger.decide_appeal(event, self.policy)
        except Rejected as rejected:
            return [governance_dead_letter(event, rejected)]

    def _unknown(self, event: AppealFiled | AppealDecided | ViolationOverturned) -> Rejected:
        """Why an appeal's violation is not in its actor's record (only looked up on this rare path)."""
        what = f"appeal {event.appeal_id}" if hasattr(event, "appeal_id") else f"overturn {event.event_id}"
        owner = next((a for a, ledger in self.state.actors.items() if event.violation_id in ledger.entries), None)
        if owner is not None:
            return Rejected("wrong_actor", f"{what}: violation {event.violation_id} was issued "
                                           f"to {owner}, not {event.actor}")
        return Rejected("unknown_violation", f"{what}: no violation {event.violation_id} was "
                                             f"issued to {event.actor} in the last "
                                             f"{self.policy.expiry_days:g} days")

    def _lesson(self, event: EducationCompleted) -> list[Any]:
        types = self.policy.types_teaching(event.module_id)
        if not types:
            known = sorted({r.education.module_id for r in self.policy.types.values()})
            return [governance_dead_letter(event, Rejected(
                "unknown_module", f"lesson {event.module_id!r} is not a lesson of the policy; "
                                  f"known: {', '.join(known)}"))]
        ledger = self.state.actors.get(event.actor)
        if ledger is None:
            return []  # a lesson taken with nothing to credit: fine, nothing changes
        records = ledger.complete_lesson(event, types, self.policy)
        if records:
            credit_end = event.ts + int(self.policy.education_credit_days * DAY_MS)
            heapq.heappush(self.state.due, (credit_end, event.actor, ""))
        return records

    def _count(self, records: list[Any]) -> list[Any]:
        forfeits = False
        for r in records:
            if isinstance(r, Incentive):
                self.metrics.incentive_child(r.program, r.change).inc()
                self.metrics.eligible_child(r.program).inc(-1 if r.change == REVOKED else 1)
            elif isinstance(r, CreditsForfeited):
                self.metrics.credits_forfeited_child(r.violation_type).inc(r.credits)
                forfeits = True
            elif isinstance(r, Action):
                self.metrics.actions_child(r.action).inc()
            elif isinstance(r, Standing):
                self.metrics.health_score.observe(r.health)
                self.metrics.active_points.observe(r.active_points)
            elif isinstance(r, DeadLetter):
                self.metrics.dead_letters_child(r.reason).inc()
            elif isinstance(r, AppealOutcome):
                self.metrics.appeals_child(r.outcome, r.violation_type).inc()
            elif isinstance(r, Violation):  # relayed: counted once, when written
                self.metrics.violations_child(r.violation_type, r.detector, r.enforced).inc()
        if forfeits:
            records = [r for r in records if not isinstance(r, CreditsForfeited)]
        if self.emit_appeal_outcomes:
            return records
        return [r for r in records if not isinstance(r, AppealOutcome)]

    def actors_held(self) -> int:
        """Actors in state (for the state-size metric)."""
        return len(self.state.actors)


def governance_dead_letter(event: Event, rejected: Rejected) -> DeadLetter:
    """A governance event the ledger cannot use, with the reason it gives."""
    return DeadLetter(
        raw=msgspec.json.encode(event).decode(), error=rejected.error,
        source=f"{event.topic}/{event.type}/{event.event_id}", ts=event.ts, reason=rejected.reason,
    )


def example_violation(actor: str, violation_type: str, policy: Policy, *, ts: int, n: int = 0,
                      evidence: dict[str, Any] | None = None, detector: str = "example_v1") -> Violation:
    """A violation as the policy would issue it (for examples and tests)."""
    from detectors.base import Signal
    from pipeline.enforce.policy import violation_from

    return violation_from(Signal(actor, violation_type, detector, f"example:{n}", ts, ts, ts, 0.9,
                                 evidence or {}, "example"), policy)
