"""Drift: ADWIN alarms on violation rates and anomaly scores.

river `ADWIN` on each violation type's rate (violations per
`bucket_seconds` of event time) and on each anomaly model's mean score per
bucket; a change raises a drift signal (metric `shopguard_drift_total`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from river import drift

from detectors.models.config import DriftConfig

# ---- drift ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class DriftState:
    bucket: int | None = None  # index of the open event-time bucket
    counts: dict[str, int] = field(default_factory=dict)  # violation type -> count in the open bucket
    scores: dict[str, list[float]] = field(default_factory=dict)  # model -> [sum, n] in the open bucket
    detectors: dict[str, drift.ADWIN] = field(default_factory=dict)  # signal -> its ADWIN


class DriftMonitor:
    """ADWIN on per-bucket violation counts (each type) and mean anomaly scores (each model).

    A type is watched from its first violation on; every closed bucket feeds
    its count (0 included), so a detector that stops firing drifts too.

    >>> from detectors.models.config import shipped_models_config
    >>> mon = DriftMonitor(shipped_models_config().drift)
    >>> alarms = []
    >>> for minute in range(240):
    ...     for k in range(1 if minute < 180 else 12):  # 1 per minute, then 12
    ...         alarms += mon.observe_violation("listing_spam", minute * 60_000 + k)
    >>> alarms[:1]
    ['violation_rate:listing_spam']
    """

    def __init__(self, config: DriftConfig, resume: DriftState | None = None) -> None:
        self.config = config
        self._bucket_ms = int(config.bucket_seconds * 1000)
        self.state = resume or DriftState()

    def observe_violation(self, violation_type: str, ts: int) -> list[str]:
        alarms = self.advance(ts)
        self.state.counts[violation_type] = self.state.counts.get(violation_type, 0) + 1
        return alarms

    def observe_score(self, model: str, score: float, ts: int) -> list[str]:
        alarms = self.advance(ts)
        acc = self.state.scores.setdefault(model, [0.0, 0])
        acc[0] += score
        acc[1] += 1
        return alarms

    def advance(self, ts: int) -> list[str]:
        """Close every bucket before `ts`'s; return the signals that drifted. Late items join the open bucket."""
        st = self.state
        index = ts // self._bucket_ms
        if st.bucket is None:
            st.bucket = index
            return []
        if index <= st.bucket:
            return []
        alarms = self._close(st.counts, {m: acc[0] / acc[1] for m, acc in st.scores.items() if acc[1]})
        empty = {t: 0 for t in st.counts}
        for _ in range(min(index - st.bucket - 1, self.config.max_gap_buckets)):
            alarms += self._close(empty, {})
        st.bucket = index
        st.counts = {t: 0 for t in st.counts}
        st.scores = {}
        return alarms

    def _close(self, counts: dict[str, int], means: dict[str, float]) -> list[str]:
        alarms = []
        for signal, value in [*((f"violation_rate:{t}", float(c)) for t, c in counts.items()),
                              *((f"anomaly_score:{m}", v) for m, v in means.items())]:
            detector = self.state.detectors.get(signal)
            if detector is None:
                detector = self.state.detectors[signal] = drift.ADWIN(
                    delta=self.config.delta, clock=1, grace_period=self.config.min_buckets)
            detector.update(value)
            if detector.drift_detected:
                alarms.append(signal)
        return alarms
