"""Credits and incentive programs: rewards for a healthy record, judged by the ledger in event time.

The rules are policy data (`[incentives]` in `config/policy.toml`); this
module holds one actor's part of them (`Rewards`, kept in its `ActorLedger`
and pickled with it) and the pure judgements over it. The ledger calls it
whenever the actor's record changes, so the same input gives the same
grants, revocations and restorations on any number of workers.

- **Activity** reaches the ledger as compact `Activity` items (one per
  `order.placed` for its seller, one per `live.started` for its creator),
  counted per hour of event time. Events arrive a few minutes out of order,
  so activity only counts once its hour is settled: rules read the complete
  hours before `now - SETTLE_MS`, and an actor is judged on its activity at
  the hourly looks (`SETTLE_MS` past each hour), never at the arrival of an
  order. Whatever order the orders arrive in, the same grants follow.
- **Credits**: a period with activity and no enforced violation issued in it
  earns `per_clean_period` (up to `cap`) when it ends; an enforced violation
  forfeits by severity at once; an overturned appeal gives them back.
- **Programs**: held while every rule holds (`unmet` is empty). A change is
  an `Incentive` record: `granted`, `revoked`, or `restored` (regained
  because an appeal overturned a violation).

>>> from pipeline.enforce.policy import load_policy
>>> policy = load_policy()
>>> rewards = Rewards()
>>> for n in range(3):
...     rewards.count(Activity(event_id=f"o{n}", ts=DAY_MS * 20_000 + n, actor="seller:S1", kind="order"))
>>> program = policy.incentives.programs["trusted_seller"]
>>> look = counted_at(DAY_MS * 20_000)  # the look after the orders' hour is settled
>>> [rule.text for rule in unmet(program, "seller:S1", rewards, health=1000, blockers=[], now=look)]
[]
>>> [rule.text for rule in unmet(program, "seller:S1", rewards, health=700, blockers=[], now=look)]
['health 700, below 800']
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

import msgspec

from pipeline.contract.records import Incentive, ProgramGap  # noqa: F401  (re-exported)
from pipeline.enforce.policy import CreditPolicy, Policy, ProgramPolicy

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# Activity of an hour counts once this much event time has passed after it (events arrive a few minutes
# out of order); the hourly looks at an actor's programs come this long after each hour.
SETTLE_MS = 10 * 60_000
GRANTED, REVOKED, RESTORED = "granted", "revoked", "restored"
CHANGES = (GRANTED, REVOKED, RESTORED)
TOPIC_OF_KIND = {"order": "order-events", "live": "live-events"}


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger learns of an actor's activity: one order placed (seller) or one LIVE started (creator).

    Internal (decode step -> ledger shard), never written out.
    """

    event_id: str
    ts: int
    actor: str
    kind: str  # "order" or "live"
    count: int = 1  # several of one actor's hour folded into one while a replay holds them (`folded`)

    def folded(self, other: Activity) -> Activity:
        """This and `other` (same actor, kind and hour) as one item, at the earlier of the two."""
        first = min(self, other, key=lambda a: (a.ts, a.event_id))
        return msgspec.structs.replace(first, count=self.count + other.count)

    @property
    def topic(self) -> str:  # for the duplicates metric, like an event's
        return TOPIC_OF_KIND[self.kind]


class CreditsForfeited(NamedTuple):
    """Credits an enforced violation took (internal: counted in the metrics, never written)."""

    violation_type: str
    credits: int


class Rule(NamedTuple):
    """One unmet rule of a program: what it says, the violation behind it, and when time alone meets it."""

    name: str  # health, clean, orders, lives, credits
    text: str
    violation_id: str = ""
    met_at: int | None = None  # event time at which it holds with no new violation (None: needs activity)


@dataclass(slots=True)
class Rewards:
    """One actor's credits, activity and programs held; part of its `ActorLedger`."""

    credits: int = 0
    period: int = -1  # the open credit period (index of `period_days` since the epoch); -1 before any
    hours: dict[int, list[int]] = field(default_factory=dict)  # hour index -> [orders, lives]
    held: dict[str, int] = field(default_factory=dict)  # program -> event time granted (shadow programs too)
    lost: set[str] = field(default_factory=set)  # programs revoked and not regained since: a regain restores
    tick_at: int = 0  # the next scheduled daily look (0: none scheduled)

    def count(self, item: Activity) -> None:
        slot = self.hours.setdefault(item.ts // HOUR_MS, [0, 0])
        slot[0 if item.kind == "order" else 1] += item.count

    def between(self, start: int, end: int) -> tuple[int, int]:
        """Orders and LIVEs of the hours that start in [start, end)."""
        orders = lives = 0
        for hour, (o, lv) in self.hours.items():
            if start <= hour * HOUR_MS < end:
                orders, lives = orders + o, lives + lv
        return orders, lives

    def in_window(self, now: int, days: int) -> tuple[int, int]:
        """Orders and LIVEs in the `days` days up to the last settled hour at `now`."""
        end = settled(now)
        return self.between(end - days * DAY_MS, end)

    def prune(self, now: int, keep_days: int) -> None:
        oldest = (settled(now) - keep_days * DAY_MS) // HOUR_MS
        for hour in [h for h in self.hours if h < oldest]:
            del self.hours[hour]

    def busy(self) -> bool:
        """Something time alone can change: a program held or activity still in a window."""
        return bool(self.held or self.hours)

    def empty(self) -> bool:
        return not (self.credits or self.held or self.hours)


def settled(now: int) -> int:
    """The end of the activity that counts at `now`: the start of the hour `SETTLE_MS` ago."""
    return (now - SETTLE_MS) // HOUR_MS * HOUR_MS


def next_look(ts: int) -> int:
    """The first hourly look after `ts` (`SETTLE_MS` past an hour)."""
    return ((ts - SETTLE_MS) // HOUR_MS + 1) * HOUR_MS + SETTLE_MS


def look_at_or_after(ts: int) -> int:
    return next_look(ts - 1)


def counted_at(ts: int) -> int:
    """The hourly look at which activity at `ts` first counts (its hour settled)."""
    return (ts // HOUR_MS + 1) * HOUR_MS + SETTLE_MS


def role_of(actor: str) -> str:
    return actor.partition(":")[0]


def day(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def keep_days(policy: Policy) -> int:
    """How many days of activity the ledger keeps: the longest window that reads them."""
    incentives = policy.incentives
    if incentives is None:
        return 0
    windows = [p.activity_days for p in incentives.programs.values()] + [incentives.credits.period_days]
    return max(windows)


def period_active(credits: CreditPolicy, role: str, rewards: Rewards, start: int, end: int) -> bool:
    """Whether the actor's activity in [start, end) reaches the credit period's minimum."""
    orders, lives = rewards.between(start, end)
    if role == "seller":
        return orders >= max(1, credits.min_orders)
    return lives >= max(1, credits.min_lives)


def unmet(program: ProgramPolicy, actor: str, rewards: Rewards, *, health: int,
          blockers: list[tuple[int, str, str]], now: int, health_at: int | None = None) -> list[Rule]:
    """The program's rules the actor does not meet at `now` (empty: it may hold the program).

    `blockers` are the actor's enforced, not overturned violations as
    (detected_at, violation_id, type), any type; `health_at` is when health
    reaches the minimum with no new violation (None: not within the expiry).
    """
    out: list[Rule] = []
    if health < program.min_health:
        out.append(Rule("health", f"health {health}, below {program.min_health}", met_at=health_at))
    if program.clean_days:
        since = now - program.clean_days * DAY_MS
        recent = [b for b in blockers if b[0] > since and (not program.clean_of or b[2] in program.clean_of)]
        if recent:
            newest = max(recent)
            clean_at = look_at_or_after(newest[0] + program.clean_days * DAY_MS)
            out.append(Rule("clean", f"{newest[2]} violation on {day(newest[0])}: {program.clean_days} clean days "
                                     f"needed after it, until {day(clean_at)}", newest[1], clean_at))
    orders, lives = rewards.in_window(now, program.activity_days)
    if orders < program.min_orders:
        out.append(Rule("orders", f"{orders} orders in the last {program.activity_days} days, "
                                  f"{program.min_orders} needed"))
    if lives < program.min_lives:
        out.append(Rule("lives", f"{lives} LIVEs in the last {program.activity_days} days, "
                                 f"{program.min_lives} needed"))
    if rewards.credits < program.min_credits:
        out.append(Rule("credits", f"{rewards.credits} credits, {program.min_credits} needed"))
    return out


def requirements(program: ProgramPolicy, credits: CreditPolicy | None = None) -> str:
    """What a program asks for, in words (the standing page shows it).

    >>> from pipeline.enforce.policy import load_policy
    >>> requirements(load_policy().incentives.programs["trusted_seller"])
    'health 800 or more; no enforced violation in the last 14 days; 3 orders in the last 7 days'
    """
    parts = []
    if program.min_health:
        parts.append(f"health {program.min_health} or more")
    if program.clean_days:
        which = " of " + ", ".join(program.clean_of) if program.clean_of else ""
        parts.append(f"no enforced violation{which} in the last {program.clean_days} days")
    if program.min_orders:
        parts.append(f"{program.min_orders} orders in the last {program.activity_days} days")
    if program.min_lives:
        parts.append(f"{program.min_lives} LIVEs in the last {program.activity_days} days")
    if program.min_credits:
        parts.append(f"{program.min_credits} credits")
    return "; ".join(parts) or "nothing: every actor of its role holds it"


def gap(program_name: str, rules: list[Rule]) -> ProgramGap:
    waits = [r.met_at for r in rules]
    regain = max(waits) if waits and all(w is not None for w in waits) else None
    return ProgramGap(program=program_name, missing=[r.text for r in rules], regain_at=regain)


def incentive_id(actor: str, program: str, change: str, ts: int, cause: str) -> str:
    key = f"{actor}|{program}|{change}|{ts}|{cause}"
    return "i-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
