"""Scoring violations against ground-truth labels: precision, recall, time to detect.

A label is `{"actor", "violation_type", "evidence_ts"}`. A violation is a true
positive when its (actor, type) is labelled; precision and recall count
distinct (actor, type) pairs, so one abuser found twice is still one find.
Time to detect is the first violation's `detected_at` minus `evidence_ts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Iterable


@dataclass
class TypeScore:
    violation_type: str
    labelled: int = 0
    flagged: int = 0
    true_positives: int = 0
    detect_delays_s: list[float] = field(default_factory=list)
    false_positive_actors: list[str] = field(default_factory=list)
    missed_actors: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.true_positives / self.flagged if self.flagged else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.labelled if self.labelled else 1.0

    @property
    def median_delay_s(self) -> float | None:
        return median(self.detect_delays_s) if self.detect_delays_s else None

    def p90_delay_s(self) -> float | None:
        if not self.detect_delays_s:
            return None
        ordered = sorted(self.detect_delays_s)
        return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def score(violations: Iterable[dict], labels: Iterable[dict]) -> dict[str, TypeScore]:
    """Per violation type: precision, recall and detection delays."""
    truth: dict[tuple[str, str], int] = {(l["actor"], l["violation_type"]): l["evidence_ts"] for l in labels}
    first_found: dict[tuple[str, str], int] = {}
    for v in violations:
        key = (v["actor"], v["violation_type"])
        if key not in first_found or v["detected_at"] < first_found[key]:
            first_found[key] = v["detected_at"]
    scores: dict[str, TypeScore] = {}

    def of(vtype: str) -> TypeScore:
        return scores.setdefault(vtype, TypeScore(vtype))

    for (actor, vtype), evidence_ts in truth.items():
        s = of(vtype)
        s.labelled += 1
        if (actor, vtype) in first_found:
            s.true_positives += 1
            s.detect_delays_s.append((first_found[(actor, vtype)] - evidence_ts) / 1000.0)
        else:
            s.missed_actors.append(actor)
    for (actor, vtype) in first_found:
        s = of(vtype)
        s.flagged += 1
        if (actor, vtype) not in truth:
            s.false_positive_actors.append(actor)
    return dict(sorted(scores.items()))


def format_scores(scores: dict[str, TypeScore]) -> str:
    """A small table for people."""
    rows = [f"{'type':<28}{'labelled':>9}{'flagged':>9}{'prec':>7}{'recall':>7}{'median TTD s':>14}"]
    for s in scores.values():
        ttd = "-" if s.median_delay_s is None else f"{s.median_delay_s:.0f}"
        rows.append(f"{s.violation_type:<28}{s.labelled:>9}{s.flagged:>9}{s.precision:>7.2f}{s.recall:>7.2f}{ttd:>14}")
    return "\n".join(rows)
