"""Output records of the wire contract, one typed definition each.

Field order here is the order in the JSON the job writes, so outputs are
byte-stable across runs. `SINK_OF` names the file and topic of each record.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec


class Education(msgspec.Struct, frozen=True):
    module_id: str
    title: str
    url: str


class Violation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    violation_id: str
    actor: str
    violation_type: str
    policy_id: str
    severity: str
    points: int
    detector: str
    confidence: float
    detected_at: int
    window_start: int
    window_end: int
    evidence: dict[str, Any]
    explanation: str
    education: Education
    enforced: bool
    evidence_truncated: bool = False  # extension: evidence cut to keep the record under the output size cap
    policy_version: str = ""  # the version of the policy in force at `detected_at` (a contract extension)


class Action(msgspec.Struct, frozen=True, kw_only=True):
    action_id: str
    actor: str
    action: str
    active_points: int
    violation_ids: list[str]
    ts: int
    reason: str


class ReviewEntry(msgspec.Struct, frozen=True, kw_only=True):
    review_id: str = ""  # extension: deterministic, from (actor, model, window): see `review_id`
    actor: str
    score: float
    model: str
    features: dict[str, Any]
    ts: int


def review_id(actor: str, model: str, window: str | int) -> str:
    """The id of a review entry: one actor, one model, one window (a cool-down period, or the violation
    reviewed), so a replay or a restart names the same entry the same way.

    >>> review_id("seller:S1", "seller_anomaly_v1", 3) == review_id("seller:S1", "seller_anomaly_v1", 3)
    True
    """
    return "r-" + hashlib.blake2b(f"{actor}|{model}|{window}".encode(), digest_size=12).hexdigest()


class ProgramGap(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A program of the actor's role it does not hold, what is missing, and when time alone brings it back."""

    program: str
    missing: list[str]
    regain_at: int | None = None  # set when only waiting (clean days, health) is missing


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    actor: str
    active_points: int
    level: str
    health: int
    restrictions: list[str]
    ts: int
    under_appeal: list[str] = []  # extension: ids of violations with an appeal filed and not yet decided
    credits: int = 0  # extension (issue 19): incentive credits
    programs: list[str] = []  # extension (issue 19): incentive programs held (shadow programs never listed)
    program_gaps: list[ProgramGap] = []  # extension (issue 19): programs of its role not held, and what is missing


class Incentive(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A change of an actor's incentive program: the `incentives` output (file `incentives.jsonl`)."""

    incentive_id: str
    actor: str
    program: str
    change: str  # granted, revoked or restored
    reason: str  # the rule(s) that changed
    ts: int
    violation_id: str = ""  # the violation that caused it, if one did
    appeal_id: str = ""  # the appeal (or overturn) that caused it, if one did
    shadow: bool = False  # the program runs in shadow mode: computed and counted, not in force


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    raw: str
    error: str
    source: str
    ts: int
    reason: str  # extension: a short machine label (the metric's `reason`)
    raw_bytes: int | None = None  # extension: the input's size when `raw` quotes only its beginning


class AppealOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A decided appeal: a reviewer's label on one violation, for the online models.

    Internal: the ledger publishes it on its output stream (when built with
    `emit_appeal_outcomes=True`); it is never written to an output.
    `features` are the numeric facts of the evidence (lists by their length),
    ready for a model; `evidence` is the violation's evidence as issued.
    """

    appeal_id: str
    violation_id: str
    actor: str
    violation_type: str
    detector: str
    outcome: str  # "overturned" (the violation was wrong) or "upheld"
    confidence: float
    enforced: bool
    features: dict[str, float]
    evidence: dict[str, Any]
    detected_at: int
    filed_at: int | None
    decided_at: int
    reviewer_id: str


def evidence_features(evidence: dict[str, Any]) -> dict[str, float]:
    """Numeric facts of a violation's evidence: numbers, flags as 0/1, lists by length.

    >>> evidence_features({"duplicates": 6, "matched_on": "img", "exact": True, "listing_ids": ["a", "b"]})
    {'duplicates': 6.0, 'exact': 1.0, 'listing_ids_count': 2.0}
    """
    out: dict[str, float] = {}
    for key, value in evidence.items():
        if isinstance(value, bool):
            out[key] = 1.0 if value else 0.0
        elif isinstance(value, (int, float)):
            out[key] = float(value)
        elif isinstance(value, (list, tuple)):
            out[f"{key}_count"] = float(len(value))
    return out


# ---- learning from appeals ----------------------------------------------------------------------


OutputRecord = Violation | Action | ReviewEntry | Standing | DeadLetter | Incentive

# record type -> (file name in the output folder, Kafka topic)
SINK_OF: dict[type, tuple[str, str]] = {
    Violation: ("violations.jsonl", "violations"),
    Action: ("actions.jsonl", "enforcement-actions"),
    ReviewEntry: ("review_queue.jsonl", "review-queue"),
    Standing: ("standing.jsonl", "actor-standing"),
    DeadLetter: ("dead_letter.jsonl", "dead-letter"),
    Incentive: ("incentives.jsonl", "incentives"),
}
OUTPUT_FILES: tuple[str, ...] = tuple(name for name, _ in SINK_OF.values())

_encoder = msgspec.json.Encoder()


def encode(record: OutputRecord) -> bytes:
    """One JSON line (without the newline)."""
    return _encoder.encode(record)


# ---- a cap on every record's size ----------------------------------------------------------------


def capped(record: OutputRecord, max_bytes: int) -> OutputRecord:
    """The record, cut to encode in at most `max_bytes` (a broker refuses bigger messages).

    A violation's evidence is cut (long texts shortened, long lists to their
    first items, ever shorter until it fits) and `evidence_truncated` says so;
    a dead letter's `raw` is cut and `raw_bytes` keeps the input's size. Other
    records are small by construction and pass unchanged.

    >>> v = Violation(violation_id="v-1", actor="seller:S1", violation_type="listing_spam", policy_id="p",
    ...     severity="low", points=2, detector="d", confidence=1.0, detected_at=1, window_start=1, window_end=1,
    ...     evidence={"title": "x" * 5_000, "ids": list(range(2_000)), "n": 7}, explanation="e",
    ...     education=Education("m", "t", "u"), enforced=True)
    >>> small = capped(v, 2_000)
    >>> len(encode(small)) <= 2_000, small.evidence_truncated, small.evidence["n"], capped(small, 10**6) is small
    (True, True, 7, True)
    """
    size = len(encode(record))
    if size <= max_bytes:
        return record
    if isinstance(record, Violation):
        return _capped_violation(record, max_bytes)
    if isinstance(record, DeadLetter):
        keep = max(0, len(record.raw) - (size - max_bytes) - 64)
        original = record.raw_bytes if record.raw_bytes is not None else len(record.raw.encode())
        return msgspec.structs.replace(record, raw=record.raw[:keep], raw_bytes=original)
    return record


def _capped_violation(violation: Violation, max_bytes: int) -> Violation:
    chars, items = 1_000, 20
    while True:
        evidence = _shortened(violation.evidence, chars, items)
        cut = msgspec.structs.replace(violation, evidence=evidence, evidence_truncated=True,
                                      explanation=_shortened(violation.explanation, 4 * chars, items))
        if len(encode(cut)) <= max_bytes or chars <= 8:
            return cut
        chars, items = chars // 4, max(1, items // 4)


def _shortened(value: Any, chars: int, items: int) -> Any:
    """`value` with every text cut to `chars` characters and every list to its first `items` items."""
    if isinstance(value, str):
        return value if len(value) <= chars else value[:chars] + "…"
    if isinstance(value, dict):
        return {k: _shortened(v, chars, items) for k, v in list(value.items())[: 4 * items]}
    if isinstance(value, (list, tuple)):
        return [_shortened(v, chars, items) for v in value[:items]]
    return value


def key_of(record: OutputRecord) -> str:
    """The Kafka message key: the actor, so one actor's records stay ordered."""
    return getattr(record, "actor", None) or record.source  # dead letters key by source
