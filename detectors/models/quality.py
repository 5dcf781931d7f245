"""Quality of the anomaly models online: progressive validation against the rules.

The appeal classifier's rolling accuracy and ROC AUC on appeal outcomes,
each scored before the model learns the outcome. The anomaly models have
no reviewer labels online, so their quality is their agreement with the
rules: a sample of scores is labelled, `label_horizon_hours` later,
positive if the actor got a rule violation within that horizon, and fed to
a rolling ROC AUC (`rule_agreement_auc`). Also exported: each anomaly
model's current threshold and flag rate. `OnlineModels.quality()` returns
them as `{(model, metric): value}` for the `shopguard_model_quality` gauge.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from river import metrics, utils

from detectors.base import HOUR_MS
from detectors.models.config import QualityConfig

# ---- agreement of the anomaly scores with the rules (progressive validation) ----------------------


@dataclass(slots=True)
class AgreementState:
    pending: deque = field(default_factory=deque)  # (ts, actor, model, score), oldest first
    violations: dict[str, int] = field(default_factory=dict)  # actor -> ts of its latest violation
    auc: dict[str, Any] = field(default_factory=dict)  # model -> rolling ROC AUC
    seen: int = 0


class RuleAgreement:
    """Rolling ROC AUC of anomaly scores against "the rules found something on this actor"."""

    def __init__(self, config: QualityConfig, resume: AgreementState | None = None) -> None:
        self.config = config
        self._horizon_ms = int(config.label_horizon_hours * HOUR_MS)
        self.state = resume or AgreementState()

    def observe_score(self, model: str, actor: str, score: float, ts: int) -> None:
        st = self.state
        st.seen += 1
        if st.seen % self.config.sample_every == 0 and len(st.pending) < self.config.max_pending:
            st.pending.append((ts, actor, model, score))
        self.resolve(ts)

    def observe_violation(self, actor: str, ts: int) -> None:
        violations = self.state.violations
        previous = violations.pop(actor, None)
        violations[actor] = max(ts, previous or ts)
        self.resolve(ts)

    def resolve(self, now: int) -> None:
        st, horizon = self.state, self._horizon_ms
        while st.pending and st.pending[0][0] + horizon <= now:
            ts, actor, model, score = st.pending.popleft()
            violated = st.violations.get(actor)
            positive = violated is not None and abs(violated - ts) <= horizon
            auc = st.auc.get(model)
            if auc is None:
                auc = st.auc[model] = utils.Rolling(metrics.ROCAUC, window_size=self.config.metric_window,
                                                    n_thresholds=50)
            auc.update(positive, score)
        cutoff = now - 2 * horizon  # an older violation labels nothing still pending
        while st.violations:
            oldest = next(iter(st.violations))
            if st.violations[oldest] >= cutoff:
                break
            del st.violations[oldest]

    def quality(self) -> dict[tuple[str, str], float]:
        return {(model, "rule_agreement_auc"): auc.get() for model, auc in self.state.auc.items()}
