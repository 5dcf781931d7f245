"""Policy: what a finding costs. Turns detector signals into violations.

The numbers live in `config/policy.toml`; this module only reads, validates
and applies them. Detection (detectors) is kept apart from decision (here) and
action (the ledger), so a policy change never touches a detector.

A policy file is validated completely at start-up: every error names the
file and the key, e.g. ``key `types.listing_spam.points`: Expected `int` >= 0,
got -1``.

Every policy has a `version`: the `version` key of the file if it has one,
else a hash of its content, so the same rules always have the same version.
A running job can change its policy (`pipeline/engine/reload.py`): each
change takes effect from an event time on, and a `PolicyBook` keeps which
version was in force when, so a violation is priced by the policy in force
at its `detected_at`, and says which (`policy_version`), on a replay too.

>>> policy = load_policy()
>>> policy.types["counterfeit_listing"].immediate_actions, [s.threshold for s in policy.ladder]
(['listing_removal'], [12, 24, 36, 48])
>>> policy.step_for(30), policy.ladder[policy.step_for(30)].level, policy.step_for(3)
(1, 'restricted', -1)
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from detectors.base import Signal
from detectors.registry import registry
from pipeline.config import DEFAULT_POLICY, read_toml
from pipeline.contract.records import Education, Violation
from pipeline.errors import PolicyError, validation_message

ACTION_KINDS = ("warning", "listing_removal", "live_restriction", "payout_hold", "suspension", "reinstatement")
# What `restrictions` in a standing may name: the limits in force on an actor.
RESTRICTION_KINDS = ("listing_limit", "live_restriction", "payout_hold", "temporary_suspension", "suspension")
# Immediate actions that stay in force (as a restriction) while their violation is active.
LASTING_ACTIONS = ("live_restriction", "payout_hold", "suspension")
SEVERITIES = ("low", "medium", "high", "critical")

Severity = Literal["low", "medium", "high", "critical"]
ActionKind = Literal["warning", "listing_removal", "live_restriction", "payout_hold", "suspension"]
RestrictionKind = Literal["listing_limit", "live_restriction", "payout_hold", "temporary_suspension", "suspension"]

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*$")]
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$")]
Points = Annotated[int, msgspec.Meta(ge=0)]
HealthPoints = Annotated[int, msgspec.Meta(ge=0, le=1000)]
Days = Annotated[float, msgspec.Meta(gt=0)]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class Lesson(Education, frozen=True, forbid_unknown_fields=True):
    """The lesson a violation type teaches (an `Education` record, checked strictly)."""

    module_id: NonEmpty
    title: NonEmpty
    url: Url


class TypePolicy(_Strict):
    policy_id: NonEmpty
    severity: Severity
    points: Points
    enforced: bool
    immediate_actions: list[ActionKind]
    education: Lesson


class LadderStep(_Strict):
    threshold: Annotated[int, msgspec.Meta(gt=0)]
    level: Name
    actions: Annotated[list[ActionKind], msgspec.Meta(min_length=1)]
    restrictions: list[RestrictionKind]


class SeverityPenalty(_Strict):
    low: HealthPoints
    medium: HealthPoints
    high: HealthPoints
    critical: HealthPoints


class HealthPolicy(_Strict):
    lesson_credit: HealthPoints
    severity_penalty: SeverityPenalty


Whole = Annotated[int, msgspec.Meta(ge=0)]
WindowDays = Annotated[int, msgspec.Meta(ge=1, le=365)]
Role = Literal["seller", "creator"]


class CreditForfeit(_Strict):
    """Credits an enforced violation takes away, by its severity."""

    low: Whole
    medium: Whole
    high: Whole
    critical: Whole


class CreditPolicy(_Strict):
    """`[incentives.credits]`: credits earned per clean period with activity, lost on enforced violations."""

    period_days: WindowDays
    per_clean_period: Whole
    cap: Whole
    min_orders: Whole
    min_lives: Whole
    forfeit: CreditForfeit


class ProgramPolicy(_Strict):
    """`[incentives.programs.NAME]`: one reward and what an actor needs to hold it."""

    title: NonEmpty
    benefit: NonEmpty
    role: Role
    enforced: bool
    min_health: HealthPoints = 0
    clean_days: Whole = 0
    clean_of: list[str] = []
    min_orders: Whole = 0
    min_lives: Whole = 0
    activity_days: WindowDays = 7
    min_credits: Whole = 0


class IncentivePolicy(_Strict):
    credits: CreditPolicy
    programs: dict[str, ProgramPolicy] = {}


class Policy(_Strict):
    expiry_days: Days
    education_credit_points: Points
    education_credit_days: Days
    ladder: Annotated[list[LadderStep], msgspec.Meta(min_length=1)]
    health: HealthPolicy
    types: dict[str, TypePolicy]
    incentives: IncentivePolicy | None = None  # none: no credits, no programs (policies written before them)
    version: str = ""  # the file's own label, or (when it has none) a hash of its content

    def step_for(self, points: int) -> int:
        """Index of the highest ladder step whose threshold `points` reach; -1 below the first."""
        step = -1
        for i, rung in enumerate(self.ladder):
            if points >= rung.threshold:
                step = i
        return step

    def types_teaching(self, module_id: str) -> list[str]:
        """Violation types whose lesson is `module_id` (usually one)."""
        return [name for name, rule in self.types.items() if rule.education.module_id == module_id]

    def penalty(self, severity: str) -> int:
        """Health penalty of a fresh violation of this severity."""
        return getattr(self.health.severity_penalty, severity)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file; errors name the file and the key."""
    path = Path(path) if path else DEFAULT_POLICY
    return parse_policy(read_toml(path), str(path))


def parse_policy(data: dict[str, Any], source: str = "policy") -> Policy:
    """Validate a decoded policy table; raise `PolicyError` naming the first bad key.

    >>> try:
    ...     parse_policy({"expiry_days": 90, "ladder": []}, "p.toml")
    ... except PolicyError as err:
    ...     print(err)
    p.toml: key `ladder`: expected `array` of length >= 1, got []
    """
    types = data.get("types")
    if isinstance(types, dict):  # one table at a time, so an error names its type
        for name, table in types.items():
            _convert(table, TypePolicy, source, f"types.{name}")
    programs = (data.get("incentives") or {}).get("programs") if isinstance(data.get("incentives"), dict) else None
    if isinstance(programs, dict):
        for name, table in programs.items():
            _convert(table, ProgramPolicy, source, f"incentives.programs.{name}")
    policy = _convert(data, Policy, source, "")
    _check(policy, source)
    return policy if policy.version else msgspec.structs.replace(policy, version=content_version(data))


def content_version(data: dict[str, Any]) -> str:
    """A policy's version from its content: the same rules, the same version, whatever the key order.

    >>> content_version({"a": 1, "b": [2]}) == content_version({"b": [2], "a": 1})
    True
    """
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return "p-" + hashlib.blake2b(canonical.encode(), digest_size=6).hexdigest()


class PolicyUpdate(NamedTuple):
    """A `policy.changed` event, checked, on its way to one ledger shard (`key`) or the models step."""

    key: str
    ts: int  # in force from this event time on
    change_id: str  # the event id: a change read twice (injected and read back) counts once
    policy: Policy


class PolicyBook(msgspec.Struct):
    """Which policy was in force at which event time: the one the job started with, then each change.

    >>> book = PolicyBook(load_policy())
    >>> new = msgspec.structs.replace(book.latest, version="v2")
    >>> book.add(1_000, "change-1", new), book.add(1_000, "change-1", new)
    (True, False)
    >>> book.at(999).version == book.base.version, book.at(1_000).version
    (True, 'v2')
    """

    base: Policy
    changes: list[tuple[int, str, Policy]] = []  # (effective event time, change event id, policy), by time

    def add(self, ts: int, change_id: str, policy: Policy) -> bool:
        """Record a change in force from event time `ts`; False if this change is already recorded."""
        if any(change_id == known for _, known, _ in self.changes):
            return False
        self.changes.append((ts, change_id, policy))
        self.changes.sort(key=lambda change: (change[0], change[1]))
        return True

    def at(self, ts: int) -> Policy:
        """The policy in force at event time `ts`."""
        policy = self.base
        for since, _, changed in self.changes:
            if since > ts:
                break
            policy = changed
        return policy

    @property
    def latest(self) -> Policy:
        return self.changes[-1][2] if self.changes else self.base


def _convert(data: Any, type_: type, source: str, prefix: str) -> Any:
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as err:
        raise PolicyError(f"{source}: {validation_message(err, data, prefix, _ALLOWED)}") from None


_ALLOWED = {
    "severity": SEVERITIES,
    "immediate_actions": ACTION_KINDS[:-1],
    "actions": ACTION_KINDS[:-1],
    "restrictions": RESTRICTION_KINDS,
    "role": ("seller", "creator"),
}


def _check(policy: Policy, source: str) -> None:
    """Rules that span keys: the catalog is covered, the ladder climbs, ids are unique."""

    def fail(message: str) -> None:
        raise PolicyError(f"{source}: {message}")

    catalog = registry().catalog  # every type a registered detector can issue
    unknown = sorted(set(policy.types) - set(catalog))
    if unknown:
        fail(f"unknown violation type `types.{unknown[0]}`; the catalog is {', '.join(catalog)}")
    missing = [t for t in catalog if t not in policy.types]
    if missing:
        fail(f"missing table `types.{missing[0]}`: every catalog type needs a policy")
    for i in range(1, len(policy.ladder)):
        if policy.ladder[i].threshold <= policy.ladder[i - 1].threshold:
            fail(f"key `ladder[{i}].threshold`: thresholds must increase step by step, got "
                 f"{policy.ladder[i].threshold} after {policy.ladder[i - 1].threshold}")
    levels: set[str] = set()
    for i, rung in enumerate(policy.ladder):
        if rung.level == "good" or rung.level in levels:
            fail(f"key `ladder[{i}].level`: level names must be unique and not `good`, got {rung.level!r}")
        levels.add(rung.level)
    owners: dict[str, str] = {}
    for name, rule in policy.types.items():
        if rule.policy_id in owners:
            fail(f"key `types.{name}.policy_id`: {rule.policy_id!r} is already the policy id of "
                 f"`types.{owners[rule.policy_id]}`")
        owners[rule.policy_id] = name
        if len(set(rule.immediate_actions)) != len(rule.immediate_actions):
            fail(f"key `types.{name}.immediate_actions`: an action is listed twice")
    if policy.incentives is not None:
        _check_incentives(policy, catalog, fail)


def _check_incentives(policy: Policy, catalog: list[str], fail) -> None:
    """Programs judge what the ledger still holds: violations of the last `expiry_days`."""
    for name, program in policy.incentives.programs.items():
        key = f"incentives.programs.{name}"
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            fail(f"table `{key}`: a program name is lower-case letters, digits and `_`, starting with a letter")
        if program.clean_days > policy.expiry_days:
            fail(f"key `{key}.clean_days`: {program.clean_days} is longer than `expiry_days` "
                 f"({policy.expiry_days:g}), the time the ledger keeps a violation; use at most {policy.expiry_days:g}")
        unknown = [t for t in program.clean_of if t not in catalog]
        if unknown:
            fail(f"key `{key}.clean_of`: {unknown[0]!r} is not a violation type; the catalog is {', '.join(catalog)}")


def violation_id(signal: Signal) -> str:
    """Deterministic id: the same evidence always gives the same id.

    >>> s = Signal("seller:S1", "listing_spam", "listing_spam_v1", "img:ab", 10, 0, 10, 0.9, {}, "x")
    >>> violation_id(s) == violation_id(s), violation_id(s)[:2]
    (True, 'v-')
    """
    key = f"{signal.actor}|{signal.violation_type}|{signal.detector}|{signal.subject}|{signal.window_start}"
    return "v-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def violation_from(signal: Signal, policy: Policy) -> Violation:
    """Apply the policy of the signal's type: points, severity, lesson, shadow mode."""
    rule = policy.types[signal.violation_type]
    return Violation(
        violation_id=violation_id(signal),
        actor=signal.actor,
        violation_type=signal.violation_type,
        policy_id=rule.policy_id,
        severity=rule.severity,
        points=rule.points if rule.enforced else 0,
        detector=signal.detector,
        confidence=round(signal.confidence, 3),
        detected_at=signal.detected_at,
        window_start=signal.window_start,
        window_end=signal.window_end,
        evidence=signal.evidence,
        explanation=signal.explanation,
        education=rule.education,
        enforced=rule.enforced,
        policy_version=policy.version,
    )


def repriced(violation: Violation, policy: Policy) -> Violation:
    """`violation` as `policy` prices it (points, severity, lesson, shadow mode, version).

    >>> from pipeline.enforce.ledger import example_violation
    >>> policy = load_policy()
    >>> v = example_violation("seller:S1", "listing_spam", policy, ts=0)
    >>> cheaper = msgspec.structs.replace(policy, version="v2", types={**policy.types,
    ...     "listing_spam": msgspec.structs.replace(policy.types["listing_spam"], points=1)})
    >>> (v.points, v.policy_version == policy.version), (repriced(v, cheaper).points, repriced(v, cheaper).policy_version)
    ((2, True), (1, 'v2'))
    """
    if violation.policy_version == policy.version:
        return violation
    rule = policy.types[violation.violation_type]
    return msgspec.structs.replace(
        violation, policy_id=rule.policy_id, severity=rule.severity, points=rule.points if rule.enforced else 0,
        education=rule.education, enforced=rule.enforced, policy_version=policy.version)
