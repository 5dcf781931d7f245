"""All online models as one step: feature updates, violations and appeal decisions in; records out.

`OnlineModels` hosts the anomaly models (`anomaly.py`), the appeal classifier
(`appeals.py`), drift (`drift.py`) and rule agreement (`quality.py`) as one
keyed dataflow step (one key: the models are global); `publish(metrics)`
exports what happened to Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from detectors.models.anomaly import ANOMALY_MODELS, AnomalyModel, RoleModelState
from detectors.models.appeals import AppealClassifier, AppealState
from detectors.models.config import ModelsConfig
from detectors.models.drift import DriftMonitor, DriftState
from detectors.models.features import FeatureUpdate
from detectors.models.quality import AgreementState, RuleAgreement
from pipeline.contract.events import AppealDecided, ReviewDecided, ViolationOverturned
from pipeline.contract.records import AppealOutcome, ReviewEntry, Violation

# ---- the keyed step ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ModelsState:
    """Everything the online models keep; pickled into recovery snapshots."""

    anomaly: dict[str, RoleModelState]
    appeal: AppealState
    drift: DriftState
    agreement: AgreementState


@dataclass(slots=True)
class _Observed:
    """What happened since the last `publish` (not state: metrics are not restored)."""

    scores: list[tuple[str, float]] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)


class OnlineModels:
    """All online models: feature updates, violations and appeal decisions in; records out.

    - `score(update)`: the anomaly model scores a `FeatureUpdate`; may yield a `ReviewEntry`.
    - `watch(violation)`: drift and rule agreement count a violation as it arrives.
    - `assess(violation)`: the appeal classifier sets its confidence (and may route it to review).
    - `learn(decision)`: an `AppealDecided`, a reviewer's `ViolationOverturned` (or the ledger's
      `AppealOutcome`) teaches the classifier; a `ReviewDecided` verdict on a review entry
      teaches the anomaly model (a dismissal is usual behaviour).

    What the classifier says about a violation depends on the outcomes it
    learned before, so the engine's step (`pipeline.engine.ordered.ModelsShard`)
    assesses violations and learns decisions in event-time order; `process`
    applies a list in the order given (examples and tests).

    >>> from detectors.models.config import shipped_models_config
    >>> models = OnlineModels(shipped_models_config())
    >>> models.process([]), sorted(models.quality())[:1]
    ([], [('appeal_classifier_v1', 'outcomes_learned')])
    """

    def __init__(self, config: ModelsConfig, resume: ModelsState | None = None) -> None:
        self.config = config
        self.anomaly = AnomalyModel(config.anomaly, resume.anomaly if resume else None)
        self.appeals = AppealClassifier(config.appeal_classifier, resume.appeal if resume else None)
        self.drift = DriftMonitor(config.drift, resume.drift if resume else None)
        self.agreement = RuleAgreement(config.quality, resume.agreement if resume else None)
        self.observed = _Observed()
        self._children: dict[tuple, Any] = {}

    @property
    def state(self) -> ModelsState:
        return ModelsState(self.anomaly.state, self.appeals.state, self.drift.state, self.agreement.state)

    def process(self, items: Iterable[Any]) -> list[Violation | ReviewEntry]:
        """Apply feature updates, violations and decisions in the order given; violations come back assessed."""
        out: list[Any] = []
        for item in items:
            kind = type(item)
            if kind is FeatureUpdate:
                out += self.score(item)
            elif kind is Violation:
                self.watch(item)
                out += self.assess(item)
            else:
                self.learn(item)
        return out

    def score(self, update: FeatureUpdate) -> list[ReviewEntry]:
        """Score one feature update (first, then learn); a review entry if it flags its actor."""
        if not self.config.anomaly.enabled or update.role not in ANOMALY_MODELS:
            return []
        scored = self.anomaly.score(update.actor, update.role, update.features, update.ts)
        if scored.warm:
            self.observed.scores.append((scored.model, scored.score))
            self.agreement.observe_score(scored.model, update.actor, scored.score, update.ts)
            if self.config.drift.enabled:
                self.observed.drift += self.drift.observe_score(scored.model, scored.score, update.ts)
        if scored.review is None:
            return []
        self.observed.reviews.append(scored.model)
        return [scored.review]

    def watch(self, violation: Violation) -> None:
        """Drift and rule agreement watch violations as they arrive (in step with the feature updates)."""
        if self.config.drift.enabled:
            self.observed.drift += self.drift.observe_violation(violation.violation_type, violation.detected_at)
        self.agreement.observe_violation(violation.actor, violation.detected_at)

    def assess(self, violation: Violation) -> list[Violation | ReviewEntry]:
        """The violation with the appeal classifier's confidence, and a review entry if it routes it to review."""
        if not self.config.appeal_classifier.enabled:
            return [violation]
        assessed, review = self.appeals.assess_and_route(violation)
        self.appeals.learn_waiting(violation)  # its decision came first: learn it now that it is known
        if review is None:
            return [assessed]
        self.observed.reviews.append(review.model)
        return [assessed, review]

    def learn(self, decision: AppealDecided | ViolationOverturned | ReviewDecided | AppealOutcome) -> None:
        """A reviewer's decision teaches the models."""
        kind = type(decision)
        if kind is ReviewDecided:
            self.anomaly.learn_verdict(decision)
            return
        if not self.config.appeal_classifier.enabled:
            return
        if kind is ViolationOverturned:
            self.appeals.learn_decision(decision.as_decision())
        elif kind is AppealDecided:
            self.appeals.learn_decision(decision)
        else:
            self.appeals.learn_outcome(decision)

    def quality(self) -> dict[tuple[str, str], float]:
        """Progressive-validation quality of every model: `{(model, metric): value}`."""
        out = dict(self.appeals.quality())
        out.update(self.agreement.quality())
        for role_model in self.anomaly.state.values():
            if role_model.scored:
                out[(role_model.name, "threshold")] = role_model.threshold.get()
                out[(role_model.name, "flag_rate")] = role_model.flagged / role_model.scored
            judged = sum(role_model.verdicts.values())
            if judged:  # of the entries reviewers judged, the share they escalated
                out[(role_model.name, "reviewer_escalated_share")] = role_model.verdicts.get("escalated", 0) / judged
        return out

    def publish(self, metrics_sink: Any) -> None:
        """Export what happened since the last call to a `sinks.metrics.Metrics` (label children cached)."""
        observed, self.observed = self.observed, _Observed()
        child = self._child
        for model, score in observed.scores:
            child("score", model, lambda m=model: metrics_sink.anomaly_score.labels(m)).observe(score)
        for signal in observed.drift:
            child("drift", signal, lambda s=signal: metrics_sink.drift.labels(s)).inc()
        for model in observed.reviews:
            metrics_sink.review_child(model).inc()
        for (model, metric), value in self.quality().items():
            child("quality", (model, metric), lambda k=(model, metric): metrics_sink.model_quality_child(*k)).set(value)

    def _child(self, kind: str, key: Any, make):
        child = self._children.get((kind, key))
        if child is None:
            child = self._children[(kind, key)] = make()
        return child
