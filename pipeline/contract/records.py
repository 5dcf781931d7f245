"""Output records of the wire contract, one typed definition each.

Field order here is the order in the JSON the job writes, so outputs are
byte-stable across runs. `SINK_OF` names the file and topic of each record.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Education(msgspec.Struct, frozen=True):
    module_id: str
    title: str
    url: str


class Violation(msgspec.Struct, frozen=True, kw_only=True):
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
    actor: str
    score: float
    model: str
    features: dict[str, Any]
    ts: int


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    actor: str
    active_points: int
    level: str
    health: int
    restrictions: list[str]
    ts: int
    under_appeal: list[str] = []  # extension: ids of violations with an appeal filed and not yet decided


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    raw: str
    error: str
    source: str
    ts: int
    reason: str  # extension: a short machine label (the metric's `reason`)


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


OutputRecord = Violation | Action | ReviewEntry | Standing | DeadLetter

# record type -> (file name in the output folder, Kafka topic)
SINK_OF: dict[type, tuple[str, str]] = {
    Violation: ("violations.jsonl", "violations"),
    Action: ("actions.jsonl", "enforcement-actions"),
    ReviewEntry: ("review_queue.jsonl", "review-queue"),
    Standing: ("standing.jsonl", "actor-standing"),
    DeadLetter: ("dead_letter.jsonl", "dead-letter"),
}
OUTPUT_FILES: tuple[str, ...] = tuple(name for name, _ in SINK_OF.values())

_encoder = msgspec.json.Encoder()


def encode(record: OutputRecord) -> bytes:
    """One JSON line (without the newline)."""
    return _encoder.encode(record)


def key_of(record: OutputRecord) -> str:
    """The Kafka message key: the actor, so one actor's records stay ordered."""
    return getattr(record, "actor", None) or record.source  # dead letters key by source
