"""Policy: what a finding costs. Turns detector signals into violations.

The numbers live in `config/policy.toml`; this module only reads, validates
and applies them. Detection (detectors) is kept apart from decision (here) and
action (the ledger), so a policy change never touches a detector.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import msgspec

from detectors.base import Signal
from pipeline.config import DEFAULT_POLICY, ConfigError, _where, read_toml
from pipeline.records import Education, Violation

CATALOG: tuple[str, ...] = (
    "engagement_inflation", "order_brushing", "price_gouging", "fake_discount",
    "counterfeit_listing", "prohibited_listing", "listing_spam",
    "off_platform_solicitation", "misleading_claims", "account_takeover", "linked_accounts",
)
ACTION_KINDS = ("warning", "listing_removal", "live_restriction", "payout_hold", "suspension", "reinstatement")

Severity = Literal["low", "medium", "high", "critical"]
ActionKind = Literal["warning", "listing_removal", "live_restriction", "payout_hold", "suspension"]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class TypePolicy(_Strict):
    policy_id: str
    severity: Severity
    points: int
    enforced: bool
    immediate_actions: list[ActionKind]
    education: Education


class LadderStep(_Strict):
    threshold: int
    level: str
    actions: list[ActionKind]
    restrictions: list[str]


class HealthPolicy(_Strict):
    lesson_credit: int
    severity_penalty: dict[Severity, int]


class Policy(_Strict):
    expiry_days: float
    education_credit_points: int
    education_credit_days: float
    ladder: list[LadderStep]
    health: HealthPolicy
    types: dict[str, TypePolicy]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.types) - set(CATALOG))
        if unknown:
            raise ValueError(f"unknown violation type(s) {unknown} in [types]; the catalog is {list(CATALOG)}")
        missing = sorted(set(CATALOG) - set(self.types))
        if missing:
            raise ValueError(f"missing [types.{missing[0]}]: every catalog type needs a policy")
        thresholds = [s.threshold for s in self.ladder]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("[[ladder]] thresholds must be strictly increasing")


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file; errors name the file and the key."""
    path = Path(path) if path else DEFAULT_POLICY
    data = read_toml(path)
    try:
        return msgspec.convert(data, Policy)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{path}: {_where(err)}") from None


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
