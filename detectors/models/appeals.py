"""Learning from appeals: a classifier that says how likely a violation is to be overturned.

Logistic regression (river) on a violation's numeric evidence (as
`pipeline.contract.records.evidence_features` reads it, signed-log scaled, prefixed
by type) plus a one-hot of its type and the detector's confidence. It
learns from decided appeals (upheld = the violation was right,
overturned = wrong) and predicts P(overturned) for each new violation.
Once a type has `min_outcomes` outcomes, the violation's confidence
becomes a blend of the detector's and 1 - P(overturned), weighted by how
many outcomes back it; for types in `review_types`, a violation with
P(overturned) >= `review_threshold` is issued unenforced (`enforced`
false, no points: recorded and appealable) and put on the review queue
instead. What the model said is in `evidence["appeal_model"]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgspec
from river import linear_model, metrics, optim, preprocessing, utils

from detectors.base import DAY_MS, clamp01
from detectors.models.config import AppealClassifierConfig
from pipeline.contract.events import AppealDecided
from pipeline.contract.records import AppealOutcome, ReviewEntry, Violation, evidence_features, review_id

APPEAL_MODEL = "appeal_classifier_v1"


def signed_log(x: float) -> float:
    """Evidence numbers span prices, counts and ratios: compress them symmetrically.

    >>> signed_log(0.0), round(signed_log(-(math.e - 1)), 3)
    (0.0, -1.0)
    """
    return math.copysign(math.log1p(abs(x)), x)


@dataclass(slots=True)
class AppealState:
    scaler: preprocessing.StandardScaler  # of the evidence numbers (the type one-hot stays 0/1)
    model: linear_model.LogisticRegression
    outcomes: dict[str, int] = field(default_factory=dict)  # violation type -> outcomes learned
    accuracy: Any = None  # rolling accuracy, scored before learning
    roc_auc: Any = None
    # violation id -> (detected_at, type, evidence features, detector confidence), oldest first
    remembered: dict[str, tuple[int, str, dict[str, float], float]] = field(default_factory=dict)
    waiting: dict[str, AppealDecided] = field(default_factory=dict)  # decisions ahead of their violation


class AppealClassifier:
    """P(overturned) of a violation, learned from decided appeals.

    Examples
    --------
    >>> from pipeline.contract.records import Education
    >>> from detectors.models.config import shipped_models_config
    >>> clf = AppealClassifier(shipped_models_config().appeal_classifier)
    >>> def violation(i, ratio):
    ...     return Violation(violation_id=f"v{i}", actor="seller:S1", violation_type="price_gouging",
    ...         policy_id="P", severity="medium", points=6, detector="price_gouging_v1", confidence=0.8,
    ...         detected_at=i, window_start=i, window_end=i, evidence={"price_ratio": ratio},
    ...         explanation="x", education=Education("m", "t", "https://e"), enforced=True)
    >>> before = clf.assess(violation(0, 3.1)).confidence
    >>> for i in range(1, 60):  # reviewers keep overturning the violations with a low ratio
    ...     _ = clf.learn(violation(i, 3.0 + i % 2 * 5), "overturned" if i % 2 == 0 else "upheld")
    >>> after_low, after_high = clf.assess(violation(98, 3.0)).confidence, clf.assess(violation(99, 8.0)).confidence
    >>> after_low < before < after_high
    True
    """

    def __init__(self, config: AppealClassifierConfig, resume: AppealState | None = None) -> None:
        self.config = config
        self._remember_ms = int(config.remember_days * DAY_MS)
        self.review_types = frozenset(config.review_types)
        self.state = resume or AppealState(
            scaler=preprocessing.StandardScaler(),
            model=linear_model.LogisticRegression(optimizer=optim.SGD(config.learning_rate), l2=config.l2),
            accuracy=utils.Rolling(metrics.Accuracy, window_size=config.metric_window),
            roc_auc=utils.Rolling(metrics.ROCAUC, window_size=config.metric_window, n_thresholds=50),
        )

    @staticmethod
    def evidence_inputs(violation_type: str, features: dict[str, float]) -> dict[str, float]:
        """The evidence numbers, signed-log scaled and named by type (a ratio of one type is not of another)."""
        return {f"{violation_type}.{key}": signed_log(value) for key, value in features.items()}

    def inputs(self, violation_type: str, evidence: dict[str, float], detector_confidence: float) -> dict:
        """The model's input: standardised evidence, the type one-hot and the detector's confidence."""
        x = self.state.scaler.transform_one(evidence)
        x[f"type={violation_type}"] = 1.0
        x["detector_confidence"] = detector_confidence
        return x

    def p_overturned(self, violation_type: str, features: dict[str, float], detector_confidence: float) -> float:
        x = self.inputs(violation_type, self.evidence_inputs(violation_type, features), detector_confidence)
        return float(self.state.model.predict_proba_one(x).get(True, 0.5))

    # ---- new violations ------------------------------------------------------------------------

    def assess(self, violation: Violation) -> Violation:
        """The violation with its confidence set by the model (and unenforced if routed to review)."""
        return self.assess_and_route(violation)[0]

    def assess_and_route(self, violation: Violation) -> tuple[Violation, ReviewEntry | None]:
        features = evidence_features(violation.evidence)
        self._remember(violation, features)
        n = self.state.outcomes.get(violation.violation_type, 0)
        if n < self.config.min_outcomes:
            return violation, None
        p = self.p_overturned(violation.violation_type, features, violation.confidence)
        weight = n / (n + self.config.prior_outcomes)
        confidence = round(clamp01((1.0 - weight) * violation.confidence + weight * (1.0 - p)), 3)
        routed = (violation.enforced and violation.violation_type in self.review_types
                  and p >= self.config.review_threshold)
        note = {"p_overturned": round(p, 3), "detector_confidence": violation.confidence,
                "outcomes_learned": n, "routed_to_review": routed}
        assessed = msgspec.structs.replace(
            violation, confidence=confidence, evidence={**violation.evidence, "appeal_model": note},
            **({"enforced": False, "points": 0} if routed else {}))
        if not routed:
            return assessed, None
        review = ReviewEntry(
            review_id=review_id(violation.actor, APPEAL_MODEL, violation.violation_id),
            actor=violation.actor, score=round(p, 4), model=APPEAL_MODEL, ts=violation.detected_at,
            features={"violation_id": violation.violation_id, "violation_type": violation.violation_type,
                      "p_overturned": round(p, 3), "detector_confidence": violation.confidence})
        return assessed, review

    def _remember(self, violation: Violation, features: dict[str, float]) -> None:
        remembered = self.state.remembered
        remembered.pop(violation.violation_id, None)
        remembered[violation.violation_id] = (violation.detected_at, violation.violation_type, features,
                                              violation.confidence)
        horizon = violation.detected_at - self._remember_ms
        while remembered:
            oldest = next(iter(remembered))
            if len(remembered) <= self.config.max_remembered_violations and remembered[oldest][0] >= horizon:
                break
            del remembered[oldest]

    # ---- outcomes ---------------------------------------------------------------------------------

    def learn(self, violation: Violation, decision: str) -> float:
        """Learn one decided appeal of `violation`; returns the P(overturned) predicted before learning."""
        confidence = violation.evidence.get("appeal_model", {}).get("detector_confidence", violation.confidence)
        return self._learn(violation.violation_type, evidence_features(violation.evidence), confidence, decision)

    def learn_outcome(self, outcome: AppealOutcome) -> float:
        """Learn from the ledger's `AppealOutcome` (when the flow feeds them back to this model)."""
        note = outcome.evidence.get("appeal_model")
        confidence = note.get("detector_confidence", outcome.confidence) if isinstance(note, dict) \
            else outcome.confidence
        return self._learn(outcome.violation_type, outcome.features, confidence, outcome.outcome)

    def learn_decision(self, event: AppealDecided) -> bool:
        """Join an `appeal.decided` event to the violation it decides and learn it; False if not seen yet."""
        known = self.state.remembered.pop(event.violation_id, None)
        if known is None:
            waiting = self.state.waiting
            waiting[event.violation_id] = event
            while len(waiting) > self.config.max_waiting_decisions:
                del waiting[next(iter(waiting))]
            return False
        _ts, violation_type, features, confidence = known
        self._learn(violation_type, features, confidence, event.decision)
        return True

    def learn_waiting(self, violation: Violation) -> None:
        """A violation whose decision came first: learn it now."""
        event = self.state.waiting.pop(violation.violation_id, None)
        if event is not None:
            self.learn_decision(event)

    def _learn(self, violation_type: str, features: dict[str, float], confidence: float, decision: str) -> float:
        overturned = decision == "overturned"
        evidence = self.evidence_inputs(violation_type, features)
        p = float(self.state.model.predict_proba_one(self.inputs(violation_type, evidence, confidence))
                  .get(True, 0.5))
        # Progressive validation: the prediction is scored before the model sees the answer.
        self.state.accuracy.update(overturned, p >= 0.5)
        self.state.roc_auc.update(overturned, p)
        self.state.scaler.learn_one(evidence)
        self.state.model.learn_one(self.inputs(violation_type, evidence, confidence), overturned)
        self.state.outcomes[violation_type] = self.state.outcomes.get(violation_type, 0) + 1
        return p

    def quality(self) -> dict[tuple[str, str], float]:
        learned = sum(self.state.outcomes.values())
        out = {(APPEAL_MODEL, "outcomes_learned"): float(learned)}
        if learned:
            out[(APPEAL_MODEL, "accuracy")] = self.state.accuracy.get()
            out[(APPEAL_MODEL, "roc_auc")] = self.state.roc_auc.get()
        return out
