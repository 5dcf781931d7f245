"""Policy: what a finding costs. Turns detector signals into violations.

The numbers live in `config/policy.toml`; this module only reads, validates
and applies them. Detection (detectors) is kept apart from decision (here) and
action (the ledger), so a policy change never touches a detector.

A policy file is validated completely at start-up: every error names the
file and the key, e.g. ``key `types.listing_spam.points`: Expected `int` >= 0,
got -1``.

>>> policy = load_policy()
>>> policy.types["counterfeit_listing"].immediate_actions, [s.threshold for s in policy.ladder]
(['listing_removal'], [12, 24, 36, 48])
>>> policy.step_for(30), policy.ladder[policy.step_for(30)].level, policy.step_for(3)
(1, 'restricted', -1)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

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


class Policy(_Strict):
    expiry_days: Days
    education_credit_points: Points
    education_credit_days: Days
    ladder: Annotated[list[LadderStep], msgspec.Meta(min_length=1)]
    health: HealthPolicy
    types: dict[str, TypePolicy]

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
    policy = _convert(data, Policy, source, "")
    _check(policy, source)
    return policy


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
    )
