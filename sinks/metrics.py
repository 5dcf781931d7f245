"""Prometheus metrics: the one place every shopguard metric is defined.

Names follow the Prometheus conventions (`_total` for counters, base units
in the name, no actor ids in labels so cardinality stays low). Ids are
permanent: a metric, once shipped, is never renamed (add `_v2` instead).

Steps increment metrics through the cached children of `Metrics` rather
than calling `labels(...)` on the hot path: a cached child `.inc()` is about
six times cheaper than a label lookup.

Besides the job's own metrics the registry carries the process and platform
collectors (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
`process_open_fds`, `python_info`, `python_gc_*`: the dashboards' USE panels)
and `shopguard_build_info`. `init_label_values` creates every known label
set of the labelled counters at 0, so a rate or an alert sees a type, reason
or action before its first increment.
"""

from __future__ import annotations

import bisect
import platform
import threading
from functools import lru_cache
from importlib import metadata
from typing import Any, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
    write_to_textfile,
)
from prometheus_client.gc_collector import GCCollector

NAMESPACE = "shopguard"

HEALTH_BUCKETS = (100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)
POINTS_BUCKETS = (0, 1, 4, 8, 12, 24, 36, 48, 96)
# Per-event latency: most events are detected well under a millisecond after
# their batch is read, so the low buckets resolve tenths of a millisecond.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                   5, 10)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

APPEAL_OUTCOMES = ("filed", "upheld", "overturned")
INCENTIVE_CHANGES = ("granted", "revoked", "restored")

# `shopguard_model_quality{metric}` mixed an AUC, a ratio, a threshold and a
# count in one gauge; each meaning now has its own gauge (metric key -> name,
# help). The old gauge is still set for one release (deprecated).
MODEL_QUALITY_GAUGES: dict[str, tuple[str, str]] = {
    "roc_auc": ("model_roc_auc", "Progressive-validation ROC AUC of the appeal classifier (0..1), by model."),
    "accuracy": ("model_accuracy_ratio", "Progressive-validation accuracy of the appeal classifier (0..1), by model."),
    "outcomes_learned": ("model_outcomes_learned", "Appeal decisions the appeal classifier has learned from, by model."),
    "rule_agreement_auc": ("model_rule_agreement_auc",
                           "ROC AUC of an anomaly model's scores against rule violations (0..1), by model."),
    "threshold": ("anomaly_threshold_score", "Learned anomaly-score threshold above which an actor is queued, by model."),
    "flag_rate": ("anomaly_flagged_ratio", "Share of scored feature updates put on the review queue (0..1), by model."),
    "reviewer_escalated_share": ("review_escalated_ratio",
                                 "Of the review-queue entries reviewers judged, the share they escalated (0..1), by model."),
}


class Metrics:
    """Every metric of the job, registered in one registry.

    A fresh `Metrics()` has its own registry, so tests and several jobs in
    one process never share counts.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        _register_runtime_collectors(r)
        self.build_info = Gauge(
            "build_info", "Always 1: the versions this process runs (shopguard, Bytewax, Python).",
            ["version", "bytewax_version", "python_version"], namespace=NAMESPACE, registry=r,
        )
        self.build_info.labels(_version("shopguard"), _version("bytewax"), platform.python_version()).set(1)
        self.events = Counter(
            "events", "Valid contract events read, by topic and type (duplicates included).",
            ["topic", "type"], namespace=NAMESPACE, registry=r,
        )
        self.duplicates = Counter(
            "duplicates", "Redelivered events (an event_id already seen), counted once and not processed again.",
            ["topic"], namespace=NAMESPACE, registry=r,
        )
        self.dead_letters = Counter(
            "dead_letters", "Inputs the job could not use, by reason.",
            ["reason"], namespace=NAMESPACE, registry=r,
        )
        self.late_events = Counter(
            "late_events", "Events older than the allowed lateness: counted, not used for windows.",
            ["topic"], namespace=NAMESPACE, registry=r,
        )
        self.violations = Counter(
            "violations", "Violations issued, by type, detector and enforced (true) or shadow (false).",
            ["violation_type", "detector", "enforced"], namespace=NAMESPACE, registry=r,
        )
        self.actions = Counter(
            "actions", "Enforcement actions issued, by action.",
            ["action"], namespace=NAMESPACE, registry=r,
        )
        self.review_queue = Counter(
            "review_queue_entries", "Actors put on the review queue, by model.",
            ["model"], namespace=NAMESPACE, registry=r,
        )
        self.appeals = Counter(
            "appeals", "Appeals by outcome (filed, upheld, overturned) and violation type.",
            ["outcome", "violation_type"], namespace=NAMESPACE, registry=r,
        )
        self.health_score = Histogram(
            "health_score", "Health score (0..1000) of actors whose standing changed.",
            buckets=HEALTH_BUCKETS, namespace=NAMESPACE, registry=r,
        )
        self.active_points = Histogram(
            "active_points", "Active penalty points of actors whose standing changed.",
            buckets=POINTS_BUCKETS, namespace=NAMESPACE, registry=r,
        )
        self.event_time_lag = Gauge(
            "event_time_lag_seconds", "Wall clock minus the newest event time seen.",
            namespace=NAMESPACE, registry=r,
        )
        self.newest_event_time = Gauge(
            "newest_event_timestamp_seconds", "Event time of the newest event seen (Unix seconds).",
            namespace=NAMESPACE, registry=r,
        )
        self.processing_latency = Histogram(
            "processing_latency_seconds",
            "Wall time from reading a record (file, simulator) or its broker timestamp (Kafka) to its detection.",
            buckets=LATENCY_BUCKETS, namespace=NAMESPACE, registry=r,
        )
        self.state_keys = Gauge(
            "state_keys", "Keys held in state, by step.",
            ["step"], namespace=NAMESPACE, registry=r,
        )
        self.anomaly_score = Histogram(
            "anomaly_score", "Anomaly scores of actors as their features update, by model.",
            ["model"], buckets=SCORE_BUCKETS, namespace=NAMESPACE, registry=r,
        )
        self.model_quality = Gauge(
            "model_quality", "DEPRECATED (removed in the next release): use the shopguard_model_* and "
            "shopguard_anomaly_* gauges, one per meaning.",
            ["model", "metric"], namespace=NAMESPACE, registry=r,
        )
        self.model_quality_gauges = {
            metric: Gauge(name, text, ["model"], namespace=NAMESPACE, registry=r)
            for metric, (name, text) in MODEL_QUALITY_GAUGES.items()
        }
        self.drift = Counter(
            "drift", "Drift events raised by ADWIN, by signal.",
            ["signal"], namespace=NAMESPACE, registry=r,
        )
        self.kafka_consumer_lag = Gauge(
            "kafka_consumer_lag_messages", "Messages behind the partition's high watermark, by topic.",
            ["topic"], namespace=NAMESPACE, registry=r,
        )
        self.detector_errors = Counter(
            "detector_errors", "Events a detector raised an error on (dead-lettered with reason detector_error).",
            ["detector"], namespace=NAMESPACE, registry=r,
        )
        self.input_records = Counter(
            "input_records", "Records read from the source (valid or not), by source kind.",
            ["source"], namespace=NAMESPACE, registry=r,
        )
        self.blank_records = Counter(
            "blank_records", "Empty or whitespace-only input records (blank lines of a file, empty Kafka "
            "messages): not events and not in input_records; counted, never used.",
            ["source"], namespace=NAMESPACE, registry=r,
        )
        self.policy_version = Gauge(
            "policy_version", "1 for the policy version in force (the newest change applied), by version.",
            ["version"], namespace=NAMESPACE, registry=r,
        )
        self.policy_reloads = Counter(
            "policy_reloads", "Policy file changes seen by `run`: applied, or rejected as invalid.",
            ["outcome"], namespace=NAMESPACE, registry=r,
        )
        self.incentive_changes = Counter(
            "incentive_changes", "Incentive program changes (granted, revoked, restored), by program; shadow "
            "programs included.",
            ["program", "change"], namespace=NAMESPACE, registry=r,
        )
        self.incentive_eligible = Gauge(
            "incentive_eligible_actors", "Actors holding each incentive program now (shadow programs included), "
            "by program; sum over processes.",
            ["program"], namespace=NAMESPACE, registry=r,
        )
        self.credits_forfeited = Counter(
            "credits_forfeited", "Incentive credits taken by enforced violations, by violation type.",
            ["violation_type"], namespace=NAMESPACE, registry=r,
        )
        self._lock = threading.Lock()
        self._state_keys: dict[str, dict[str, int]] = {}  # step -> shard -> keys
        self._state_keys_total: dict[str, int] = {}  # step -> the sum of its shards' keys
        self._state_keys_child: dict[str, Any] = {}  # step -> its gauge child (`labels` costs a lookup)

    # Cached children: the hot path calls these, never `labels(...)`.
    @lru_cache(maxsize=None)
    def events_child(self, topic: str, type_: str):
        return self.events.labels(topic, type_)

    @lru_cache(maxsize=None)
    def duplicates_child(self, topic: str):
        return self.duplicates.labels(topic)

    @lru_cache(maxsize=None)
    def dead_letters_child(self, reason: str):
        return self.dead_letters.labels(reason)

    @lru_cache(maxsize=None)
    def late_child(self, topic: str):
        return self.late_events.labels(topic)

    @lru_cache(maxsize=None)
    def violations_child(self, violation_type: str, detector: str, enforced: bool):
        return self.violations.labels(violation_type, detector, "true" if enforced else "false")

    @lru_cache(maxsize=None)
    def actions_child(self, action: str):
        return self.actions.labels(action)

    @lru_cache(maxsize=None)
    def appeals_child(self, outcome: str, violation_type: str):
        return self.appeals.labels(outcome, violation_type)

    @lru_cache(maxsize=None)
    @lru_cache(maxsize=None)
    def incentive_child(self, program: str, change: str):
        return self.incentive_changes.labels(program, change)

    @lru_cache(maxsize=None)
    def eligible_child(self, program: str):
        return self.incentive_eligible.labels(program)

    @lru_cache(maxsize=None)
    def credits_forfeited_child(self, violation_type: str):
        return self.credits_forfeited.labels(violation_type)

    def detector_errors_child(self, detector: str):
        return self.detector_errors.labels(detector)

    @lru_cache(maxsize=None)
    def review_child(self, model: str):
        return self.review_queue.labels(model)

    @lru_cache(maxsize=None)
    def model_quality_child(self, model: str, metric: str) -> "_QualityChild":
        """The gauge child of one model's quality `metric` (a key of MODEL_QUALITY_GAUGES).

        Setting it sets the split gauge and, for one release, the deprecated
        `shopguard_model_quality{model,metric}`.
        """
        gauge = self.model_quality_gauges.get(metric)
        if gauge is None:
            raise ValueError(f"unknown model-quality metric {metric!r}: add it to MODEL_QUALITY_GAUGES "
                             f"in sinks/metrics.py (known: {', '.join(MODEL_QUALITY_GAUGES)})")
        return _QualityChild(gauge.labels(model), self.model_quality.labels(model, metric))

    def init_label_values(self, *, detectors: Mapping[str, Iterable[str]], event_types: Mapping[str, str],
                          actions: Iterable[str], dead_letter_reasons: Iterable[str],
                          anomaly_models: Iterable[str] = (), drift_signals: Iterable[str] = (),
                          appeal_outcomes: Iterable[str] = APPEAL_OUTCOMES, programs: Iterable[str] = ()) -> None:
        """Create every known label set of the labelled counters at 0.

        A counter series exists only from its first increment, so without this
        `rate()` and the alerts cannot tell "none yet" from "not exported".

        Parameters
        ----------
        detectors
            detector id -> the violation types it issues (from the detector registry).
        event_types
            contract event type -> its topic (`pipeline.contract.events.TOPIC_OF_TYPE`).
        actions
            enforcement action kinds (`pipeline.enforce.policy.ACTION_KINDS`).
        dead_letter_reasons
            every `reason` a dead letter can carry (decoding and ledger rejections).
        anomaly_models
            the models that put actors on the review queue.
        drift_signals
            the signals ADWIN watches (`violation_rate:TYPE`, `anomaly_score:MODEL`).
        programs
            the incentive programs of the policy (`[incentives.programs]`).
        """
        types = sorted({t for issued in detectors.values() for t in issued})
        for event_type, topic in event_types.items():
            self.events_child(topic, event_type)
        for topic in sorted(set(event_types.values())):
            self.duplicates_child(topic)
            self.late_child(topic)
        for detector, issued in detectors.items():
            for violation_type in issued:
                for enforced in (True, False):
                    self.violations_child(violation_type, detector, enforced)
        for outcome in appeal_outcomes:
            for violation_type in types:
                self.appeals_child(outcome, violation_type)
        for action in actions:
            self.actions_child(action)
        for reason in dead_letter_reasons:
            self.dead_letters_child(reason)
        for model in anomaly_models:
            self.review_child(model)
        for signal in drift_signals:
            self.drift.labels(signal)
        self.init_programs(programs)
        for violation_type in types:
            self.credits_forfeited_child(violation_type)

    def init_programs(self, programs: Iterable[str]) -> None:
        """Create the incentive series of each program at 0 (the policy names them, so the job calls this)."""
        for program in programs:
            self.eligible_child(program)
            for change in INCENTIVE_CHANGES:
                self.incentive_child(program, change)

    def observe_latency(self, seconds: float, events: int = 1) -> None:
        """Record `events` events detected `seconds` after they were read (one histogram update per group).

        Equal to `events` calls of `processing_latency.observe(seconds)`, at the
        cost of one: the detect step observes a whole group of events that share
        a read time.
        """
        if events <= 0:
            return
        histogram = self.processing_latency
        seconds = max(0.0, seconds)
        with self._lock:
            histogram._sum.inc(seconds * events)
            histogram._buckets[bisect.bisect_left(histogram._upper_bounds, seconds)].inc(events)

    def observe_event_time(self, newest_ts_ms: int, now_s: float) -> None:
        """Record the newest event time seen and the lag behind the wall clock."""
        with self._lock:
            newest_s = newest_ts_ms / 1000.0
            if newest_s > self.newest_event_time._value.get():
                self.newest_event_time.set(newest_s)
            self.event_time_lag.set(max(0.0, now_s - self.newest_event_time._value.get()))

    def set_policy_version(self, version: str) -> None:
        """The policy version now in force (the gauge keeps one series)."""
        with self._lock:
            self.policy_version.clear()
            self.policy_version.labels(version).set(1)

    def set_state_keys(self, step: str, shard: str, keys: int) -> None:
        """Keys held by one shard of a step; the gauge shows the step's total."""
        with self._lock:
            shards = self._state_keys.get(step)
            if shards is None:
                shards = self._state_keys[step] = {}
                self._state_keys_child[step] = self.state_keys.labels(step)
            previous = shards.get(shard)
            if previous == keys:
                return  # called after every batch of every shard: most batches change nothing
            shards[shard] = keys
            # A running total, not a sum over the step's shards per call.
            self._state_keys_total[step] = total = self._state_keys_total.get(step, 0) + keys - (previous or 0)
            self._state_keys_child[step].set(total)

    def serve(self, port: int, addr: str = "127.0.0.1"):
        """Serve /metrics on `addr:port`; returns the server so it can be shut down."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server

    def write_textfile(self, path: str) -> None:
        """Write the metrics once in the text exposition format (end of a replay)."""
        write_to_textfile(path, self.registry)

    def total(self, counter: Counter) -> float:
        """Sum of a counter over all its label sets (for summaries and tests)."""
        return sum(
            s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")
        )

    def series_names(self) -> set[str]:
        """Every metric name and every series name it exports (`_total`, `_bucket`...):
        what rules and dashboards may query."""
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
        names = set()
        for family in self.registry.collect():
            names.add(family.name)
            names.update(family.name + s for s in suffixes.get(family.type, ()))
        return names

    def counter_values(self) -> list[tuple[str, tuple[str, ...], float]]:
        """Every counter's value per label set, picklable (a cluster process sends these home)."""
        out = []
        for attr, metric in vars(self).items():
            if isinstance(metric, Counter):
                for family in metric.collect():
                    for s in family.samples:
                        if s.name.endswith("_total"):
                            out.append((attr, tuple(s.labels[n] for n in metric._labelnames), s.value))
        return out

    def absorb(self, values: list[tuple[str, tuple[str, ...], float]]) -> None:
        """Add another process's `counter_values()` to these counters."""
        for attr, labels, value in values:
            counter = getattr(self, attr)
            (counter.labels(*labels) if labels else counter).inc(value)

    def by_label(self, counter: Counter, label: str) -> dict[str, float]:
        """A counter summed by one label, e.g. violations by `violation_type`."""
        out: dict[str, float] = {}
        for m in counter.collect():
            for s in m.samples:
                if s.name.endswith("_total"):
                    key = s.labels[label]
                    out[key] = out.get(key, 0.0) + s.value
        return out


class _QualityChild:
    """Sets a split model-quality gauge and its deprecated `shopguard_model_quality` twin."""

    __slots__ = ("_gauge", "_legacy")

    def __init__(self, gauge, legacy) -> None:
        self._gauge, self._legacy = gauge, legacy

    def set(self, value: float) -> None:
        self._gauge.set(value)
        self._legacy.set(value)


def _register_runtime_collectors(registry: CollectorRegistry) -> None:
    """CPU, memory, open fds and start time of this process; Python's version and GC (the USE panels)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"
