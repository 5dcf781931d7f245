"""Prometheus metrics: the one place every shopguard metric is defined.

Names follow the Prometheus conventions (`_total` for counters, base units
in the name, no actor ids in labels so cardinality stays low). Ids are
permanent: a metric, once shipped, is never renamed (add `_v2` instead).

Steps increment metrics through the cached children of `Metrics` rather
than calling `labels(...)` on the hot path: a cached child `.inc()` is about
six times cheaper than a label lookup.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
    write_to_textfile,
)

NAMESPACE = "shopguard"

HEALTH_BUCKETS = (100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)
POINTS_BUCKETS = (0, 1, 4, 8, 12, 24, 36, 48, 96)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    """Every metric of the job, registered in one registry.

    A fresh `Metrics()` has its own registry, so tests and several jobs in
    one process never share counts.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
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
            "model_quality", "Progressive-validation quality of each online model, by model and metric.",
            ["model", "metric"], namespace=NAMESPACE, registry=r,
        )
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
        self.policy_version = Gauge(
            "policy_version", "1 for the policy version in force (the newest change applied), by version.",
            ["version"], namespace=NAMESPACE, registry=r,
        )
        self.policy_reloads = Counter(
            "policy_reloads", "Policy file changes seen by `run`: applied, or rejected as invalid.",
            ["outcome"], namespace=NAMESPACE, registry=r,
        )
        self._lock = threading.Lock()
        self._state_keys: dict[str, dict[str, int]] = {}

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
    def detector_errors_child(self, detector: str):
        return self.detector_errors.labels(detector)

    @lru_cache(maxsize=None)
    def review_child(self, model: str):
        return self.review_queue.labels(model)

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
            shards = self._state_keys.setdefault(step, {})
            shards[shard] = keys
            self.state_keys.labels(step).set(sum(shards.values()))

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
