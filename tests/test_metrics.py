"""sinks/metrics.py: what Prometheus scrapes from one job process.

The exposition text is read back with prometheus_client's own parser, as
Prometheus would see it.
"""

from __future__ import annotations

from importlib import metadata

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detectors.registry import registry
from pipeline.contract.events import DECODE_REASONS
from pipeline.engine.job import new_metrics
from pipeline.enforce.ledger import REJECTION_REASONS
from pipeline.enforce.policy import ACTION_KINDS
from sinks.metrics import LATENCY_BUCKETS, MODEL_QUALITY_GAUGES, Metrics
from tests.conftest import replay



def scraped(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of everything the registry exposes."""
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_build_info_names_the_versions_running():
    samples = scraped(Metrics())
    (labels, value), = [(dict(k[1]), v) for k, v in samples.items() if k[0] == "shopguard_build_info"]
    assert value == 1
    assert labels["version"] == metadata.version("shopguard")
    assert labels["bytewax_version"] == metadata.version("bytewax")
    assert labels["python_version"].count(".") == 2


def test_process_and_python_collectors_feed_the_use_panels():
    samples = {name: value for (name, _), value in scraped(Metrics()).items()}
    assert samples["process_resident_memory_bytes"] > 1_000_000
    assert samples["process_cpu_seconds_total"] > 0
    assert 0 < samples["process_open_fds"] < samples["process_max_fds"]
    assert samples["python_info"] == 1
    assert "python_gc_collections_total" in samples


def test_labelled_counters_start_at_zero_for_every_known_label_value():
    samples = scraped(new_metrics())

    def zero(name: str, **labels: str) -> bool:
        return samples.get((name, tuple(sorted(labels.items())))) == 0.0

    assert zero("shopguard_violations_total", violation_type="listing_spam", detector="listing_spam_v1",
                enforced="false")
    assert zero("shopguard_violations_total", violation_type="linked_accounts", detector="linked_accounts_v1",
                enforced="true")
    assert zero("shopguard_appeals_total", outcome="overturned", violation_type="fake_discount")
    assert all(zero("shopguard_actions_total", action=a) for a in ACTION_KINDS)
    assert all(zero("shopguard_dead_letters_total", reason=r) for r in [*DECODE_REASONS, *REJECTION_REASONS])
    assert zero("shopguard_events_total", topic="governance-events", type="appeal.decided")
    assert zero("shopguard_late_events_total", topic="live-events")
    assert zero("shopguard_duplicates_total", topic="order-events")
    assert zero("shopguard_review_queue_entries_total", model="seller_anomaly_v1")
    assert zero("shopguard_drift_total", signal="violation_rate:order_brushing")
    violation_series = [k for k in samples if k[0] == "shopguard_violations_total"]
    issued = sum(len(types) for types in registry().detector_ids().values())
    assert len(violation_series) == 2 * issued  # enforced and shadow of each detector's types


def test_initialised_counters_still_count_and_sum_across_processes():
    one, other = new_metrics(), Metrics()
    one.actions_child("warning").inc(3)
    other.absorb(one.counter_values())
    assert other.by_label(other.actions, "action")["warning"] == 3
    assert other.by_label(other.actions, "action")["suspension"] == 0


def test_latency_buckets_resolve_sub_millisecond_work():
    assert LATENCY_BUCKETS[0] <= 0.0001 and sum(b < 0.001 for b in LATENCY_BUCKETS) >= 3
    metrics = Metrics()
    metrics.observe_latency(0.0003, events=5)
    buckets = {dict(k[1])["le"]: v for k, v in scraped(metrics).items()
               if k[0] == "shopguard_processing_latency_seconds_bucket"}
    assert (buckets["0.00025"], buckets["0.0005"], buckets["10.0"]) == (0, 5, 5)


@pytest.mark.parametrize("seconds", [0.0, 0.0001, 0.00037, 0.001, 0.7, 10.0, 42.0, -0.5])
def test_observe_latency_of_a_group_equals_one_observation_per_event(seconds):
    grouped, single = Metrics(), Metrics()
    grouped.observe_latency(seconds, events=7)
    for _ in range(7):
        single.processing_latency.observe(max(0.0, seconds))

    def histogram(m: Metrics) -> dict:
        return {k: v for k, v in scraped(m).items() if k[0].startswith("shopguard_processing_latency_seconds")
                and not k[0].endswith("_created")}

    assert histogram(grouped) == pytest.approx(histogram(single))


def test_each_model_quality_meaning_has_its_own_gauge_and_the_old_one_still_works():
    metrics = Metrics()
    metrics.model_quality_child("appeal_classifier_v1", "roc_auc").set(0.81)
    metrics.model_quality_child("seller_anomaly_v1", "threshold").set(0.62)
    samples = scraped(metrics)
    assert samples[("shopguard_model_roc_auc", (("model", "appeal_classifier_v1"),))] == 0.81
    assert samples[("shopguard_anomaly_threshold_score", (("model", "seller_anomaly_v1"),))] == 0.62
    assert samples[("shopguard_model_quality", (("metric", "roc_auc"), ("model", "appeal_classifier_v1")))] == 0.81
    with pytest.raises(ValueError, match="add it to MODEL_QUALITY_GAUGES in sinks/metrics.py"):
        metrics.model_quality_child("m", "f1")


def test_every_quality_metric_the_job_exports_has_a_split_gauge(sample_events, tmp_path):
    """A new (model, metric) pair in detectors/models.py must get a gauge of its own here."""
    metrics, _ = replay(sample_events, tmp_path / "out")
    exported = {s.labels["metric"] for family in metrics.model_quality.collect() for s in family.samples}
    assert exported, "the sample replay exported no model quality at all"
    assert exported <= set(MODEL_QUALITY_GAUGES), exported - set(MODEL_QUALITY_GAUGES)
