"""The job against a real Kafka broker: events in, violations out, exactly once across kill -9.

Every test gets its own topics on the session's broker (tests/kafka_fixture.py).
The simulated marketplace is published once per module; each run of the job
writes to fresh output topics.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from confluent_kafka.admin import NewTopic

from pipeline.config import load
from pipeline.contract.events import TOPIC_OF_TYPE, TOPICS
from pipeline.kafka import (
    KafkaDeliveryError,
    KafkaSetupError,
    consumer_settings,
    describe,
    env_settings,
    preflight,
    producer_settings,
)
from sinks.kafka import KafkaOutputSink, sink_partition_of
from simulator import SimConfig, iter_events, labels
from tests.kafka_fixture import KafkaTestBroker
from tests.service_jobs import summary_count
from tests.kafka_jobs import (
    BAD_BYTES, OUTPUT_IDS, OUTPUT_KEYS, POISON, REVIEWING, ROOT, SIM, T0, assert_same_outputs, every_output, ids,
    input_topics, job_overrides, new_outputs, read_topic, run_in_process, start_job, toml, wait_for,
)

pytestmark = pytest.mark.kafka


# ---- end to end -------------------------------------------------------------------------------


def test_the_job_reads_kafka_and_writes_the_violations_a_replay_finds(kafka_broker, marketplace):
    outputs = new_outputs(kafka_broker)
    metrics = run_in_process(job_overrides(kafka_broker, marketplace["prefix"], outputs))

    violations = read_topic(kafka_broker, outputs["violations"])
    assert metrics.total(metrics.input_records) == marketplace["records"]
    assert {v["violation_id"] for _, v, _ in violations} == {
        v["violation_id"] for v in marketplace["replayed"]["violations.jsonl"]}
    # keyed by actor, with the deterministic id in a header
    assert all(key.decode() == v["actor"] and rid == v["violation_id"] for key, v, rid in violations)
    # every violation is a labelled abuser, and most labelled abusers (of the types found) are found
    labelled = {(x["actor"], x["violation_type"]) for x in labels(SIM)}
    found = {(v["actor"], v["violation_type"]) for _, v, _ in violations}
    assert found and found <= labelled
    assert len(found) >= 0.8 * len({x for x in labelled if x[1] in {t for _, t in found}})
    # every output kind reaches its topic
    actions = read_topic(kafka_broker, outputs["actions"])
    assert actions and all(key.decode() == a["actor"] for key, a, _ in actions)
    assert read_topic(kafka_broker, outputs["standing"])
    # consumer lag is exported per input topic, and is zero once everything is read
    lag = {s.labels["topic"]: s.value for f in metrics.kafka_consumer_lag.collect() for s in f.samples}
    assert set(lag) == {marketplace["prefix"] + t for t in ("listing-events", "live-events", "order-events",
                                                             "account-events", "governance-events")}
    assert all(v == 0 for v in lag.values())


def test_bad_bytes_reach_dead_letter_with_topic_partition_offset(kafka_broker):
    prefix = kafka_broker.unique_topic("bad") + "."
    kafka_broker.create_topics(input_topics(prefix), partitions=1)
    good = _near_duplicate_listings("S9", 5)
    kafka_broker.produce(prefix + "listing-events", [good[0], *BAD_BYTES, *good[1:]])
    outputs = new_outputs(kafka_broker, partitions=1)

    run_in_process(job_overrides(kafka_broker, prefix, outputs))

    dead = sorted((record for _, record, _ in read_topic(kafka_broker, outputs["dead_letter"])),
                  key=lambda d: d["source"])
    assert [(d["source"], d["reason"]) for d in dead] == [
        (f"{prefix}listing-events/0:1", "invalid_json"), (f"{prefix}listing-events/0:2", "unknown_type")]
    assert "no.such.type" in dead[1]["raw"] and "event type" in dead[1]["error"]
    # the good events around them still make their finding
    (spam,) = [record for _, record, _ in read_topic(kafka_broker, outputs["violations"])]
    assert (spam["actor"], spam["violation_type"]) == ("seller:S9", "listing_spam")


def _near_duplicate_listings(seller: str, count: int) -> list[bytes]:
    """`count` listings of one seller within an hour: same photo, titles apart from numbers."""
    return [msgspec.json.encode({
        "event_id": f"{seller}-{i}", "type": "listing.created", "ts": T0 + i * 60_000, "seller_id": seller,
        "listing_id": f"{seller}-L{i}", "title": f"Phone case model {i}", "category": "phones", "price": 9.5,
        "currency": "USD", "brand": None, "original_price": None, "image_hash": "aaaaaaaaaaaaaaaa", "stock": 10,
    }) for i in range(count)]


# ---- kill -9 and restart ----------------------------------------------------------------------


def test_kill_9_at_any_point_and_restart_writes_every_output_exactly_once(kafka_broker, marketplace, tmp_path):
    prefix = marketplace["prefix"]
    expected_outputs = new_outputs(kafka_broker)
    run_in_process({**job_overrides(kafka_broker, prefix, expected_outputs), **REVIEWING})
    expected = every_output(kafka_broker, expected_outputs)
    total = sum(expected["violations"].values())
    assert total >= 10 and all(expected[kind] for kind in OUTPUT_IDS)
    assert len(expected["dead_letter"]) == len(BAD_BYTES) + len(POISON)

    outputs = new_outputs(kafka_broker)
    recovery = tmp_path / "recovery"
    config_file = tmp_path / "job.toml"
    # Small input batches: a slower job, so that every kill point comes while it runs.
    config_file.write_text(toml({**job_overrides(kafka_broker, prefix, outputs, batch_size=100), **REVIEWING}))
    violations_topic = outputs["violations"]

    # Kill points: at the first output (before the first snapshot), then at five points through the stream,
    # each after a random pause, so that some kills land while a snapshot is being written (one per second).
    jitter = random.Random(15)
    kill_points = [("dead letters", outputs["dead_letter"], 1)] + [
        ("violations", violations_topic, k * total // 8) for k in range(1, 6)]
    kills, logs = [], []
    for what, topic, at_least in kill_points:
        job = start_job(config_file, tmp_path / f"job-{len(logs)}.log", "--recovery-dir", str(recovery))
        seen = wait_for(kafka_broker, topic, at_least, job)
        assert job.poll() is None, f"the job ended before the kill point ({what} >= {at_least})"
        time.sleep(jitter.uniform(0.0, 0.5))
        os.kill(job.pid, signal.SIGKILL)
        logs.append(job.log_path)
        if job.wait() != -signal.SIGKILL:
            break  # it finished within the pause: no more kill points ahead
        kills.append((what, seen))
    job = start_job(config_file, tmp_path / "job-final.log", "--recovery-dir", str(recovery))
    assert job.wait(timeout=120) == 0, job.log_path.read_text()[-3000:]
    logs.append(job.log_path)

    assert len(kills) >= 5, kills
    assert_same_outputs(every_output(kafka_broker, outputs), expected, f"after {len(kills)} kills")
    # no crash loop: every restart ran on (each was killed by the test, or finished)
    assert not any("Traceback" in log.read_text() for log in logs), [log.read_text()[-2000:] for log in logs]
    # the restarts did find records written after their snapshot and skipped them
    assert any("will not be written again" in log.read_text() for log in logs), kills


# ---- SIGTERM and SIGINT: drain, summary, exit 0; the restart resumes exactly -------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_drains_the_job_and_a_restart_resumes_exactly(kafka_broker, marketplace, tmp_path, signum):
    outputs = new_outputs(kafka_broker)
    config_file, recovery = tmp_path / "job.toml", tmp_path / "recovery"
    config_file.write_text(toml(job_overrides(kafka_broker, marketplace["prefix"], outputs)))
    name = signal.Signals(signum).name

    job = start_job(config_file, tmp_path / "stopped.log", "--recovery-dir", str(recovery))
    wait_for(kafka_broker, outputs["dead_letter"], 1, job)  # the bad bytes are the first records read
    signalled = time.monotonic()
    job.send_signal(signum)
    assert job.wait(timeout=60) == 0, job.log_path.read_text()[-3000:]
    drained_in = time.monotonic() - signalled
    stopped = job.log_path.read_text()
    assert f"shopguard stopped by {name}" in stopped
    assert "Traceback" not in stopped and "panicked" not in stopped

    job = start_job(config_file, tmp_path / "resumed.log", "--recovery-dir", str(recovery))
    assert job.wait(timeout=120) == 0, job.log_path.read_text()[-3000:]
    resumed = job.log_path.read_text()
    assert "shopguard finished" in resumed

    # the stop came mid-stream, and the two runs read every record once between them
    total = marketplace["records"]
    first, second = summary_count(stopped, "events read"), summary_count(resumed, "events read")
    assert 0 < first < total and first + second == total, (first, second, drained_in)
    violations = ids(kafka_broker, outputs["violations"], "violation_id")
    assert max(violations.values()) == 1, "a violation written twice"
    assert set(violations) == {v["violation_id"] for v in marketplace["replayed"]["violations.jsonl"]}
    assert max(ids(kafka_broker, outputs["actions"], "action_id").values()) == 1


# ---- workers and processes --------------------------------------------------------------------


def test_the_same_outputs_on_one_two_four_workers_and_two_processes(kafka_broker, marketplace):
    """Actions, standings, the review queue and dead letters are identical; violations are the same verdicts
    (their evidence cites what had arrived when judged, which the cluster's shape may reorder)."""
    prefix = marketplace["prefix"]
    found, read = {}, {}
    for name, workers, processes in (("1 worker", 1, 1), ("2 workers", 2, 1), ("4 workers", 4, 1),
                                     ("2 processes", 1, 2)):
        outputs = new_outputs(kafka_broker)
        metrics = run_in_process({**job_overrides(kafka_broker, prefix, outputs), **REVIEWING}, workers=workers,
                                 processes=processes)
        found[name] = every_output(kafka_broker, outputs, verdicts=True)
        read[name] = metrics.total(metrics.input_records)

    # the input is read once, not once per process
    assert set(read.values()) == {marketplace["records"]}
    one = found["1 worker"]
    assert all(one[kind] for kind in OUTPUT_IDS)
    for name, got in found.items():
        assert_same_outputs(got, one, name)


# ---- setup errors and delivery failures -------------------------------------------------------


def test_an_unreachable_broker_fails_fast_with_one_line_naming_it():
    started = time.monotonic()
    with pytest.raises(KafkaSetupError) as err:
        preflight({"bootstrap.servers": "127.0.0.1:9"}, ["listing-events"], timeout_s=2)
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert "\n" not in message and "cannot reach Kafka at 127.0.0.1:9" in message and "kafka.brokers" in message


def test_missing_topics_are_named_with_how_to_create_them(kafka_broker):
    present = kafka_broker.unique_topic("here")
    kafka_broker.create_topics([present])
    with pytest.raises(KafkaSetupError) as err:
        preflight(kafka_broker.client_config(), [present, "nope-1", "nope-2"])
    message = str(err.value)
    assert "no topic nope-1, nope-2" in message and "--create" in message and present not in message


def test_the_cli_reports_a_missing_topic_in_one_line(kafka_broker, tmp_path):
    config_file = tmp_path / "job.toml"
    overrides = job_overrides(kafka_broker, "missing-", {k: "missing-" + v for k, v in OUTPUT_KEYS.items()})
    config_file.write_text(toml(overrides))
    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "run", "--config", str(config_file), "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert f"Kafka at {kafka_broker.bootstrap} has no topic missing-listing-events" in done.stderr


def _sink(broker: KafkaTestBroker, topics: list[str], recovery: Path | None = None) -> KafkaOutputSink:
    return KafkaOutputSink(producer_settings(load(None, {"kafka": {"brokers": [broker.bootstrap]}}).kafka, environ={}),
                           broker.client_config(), topics, recovery_dir=str(recovery) if recovery else None)


def _items(topic: str, names: list[str]) -> list[tuple[str, str, bytes, str]]:
    # every key of these items belongs to sink partition 0 (see sink_partition_of)
    keys = [k for k in (f"seller:S{i}" for i in range(200)) if sink_partition_of(k) == 0]
    return [(keys[i % len(keys)], topic, json.dumps({"id": name}).encode(), name) for i, name in enumerate(names)]


def test_after_a_crash_the_sink_skips_what_it_wrote_after_its_last_snapshot(kafka_broker, tmp_path):
    topic = kafka_broker.unique_topic("exactly-once")
    kafka_broker.create_topics([topic], partitions=2)
    part = _sink(kafka_broker, [topic], tmp_path).build_part("write_kafka", "kafka-out-000", None)
    part.write_batch(_items(topic, ["a", "b"]))
    state = part.snapshot()
    part.write_batch(_items(topic, ["c", "d"]))
    part._flush()  # delivered, then the process dies before the next snapshot

    resumed = _sink(kafka_broker, [topic], tmp_path).build_part("write_kafka", "kafka-out-000", state)
    resumed.write_batch(_items(topic, ["c", "d", "e"]))  # the replayed epoch, then something new
    resumed.snapshot()

    written = collections.Counter(rid for _, _, rid in read_topic(kafka_broker, topic))
    assert written == {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}


def test_a_crash_before_the_first_snapshot_writes_nothing_twice(kafka_broker, tmp_path):
    topic = kafka_broker.unique_topic("first-epoch")
    kafka_broker.create_topics([topic])
    kafka_broker.produce(topic, [b"{}"], keys=[b"seller:OLD"])  # from an earlier job: not ours to skip
    part = _sink(kafka_broker, [topic], tmp_path).build_part("write_kafka", "kafka-out-000", None)
    part.write_batch(_items(topic, ["a", "b"]))
    part._flush()  # no snapshot yet: Bytewax will resume with no state at all

    again = _sink(kafka_broker, [topic], tmp_path).build_part("write_kafka", "kafka-out-000", None)
    again.write_batch(_items(topic, ["a", "b", "c"]))
    again.snapshot()

    assert [rid for _, _, rid in read_topic(kafka_broker, topic)[1:]] == ["a", "b", "c"]


def test_a_record_the_broker_refuses_stops_the_job(kafka_broker):
    topic = kafka_broker.unique_topic("tiny")
    future = kafka_broker.admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "200"})])[topic]
    future.result(30)
    sink = KafkaOutputSink(kafka_broker.client_config(acks="all", **{"enable.idempotence": "true"}),
                           kafka_broker.client_config(), [topic])
    part = sink.build_part("write_kafka", "kafka-out-000", None)
    part.write_batch([("seller:S1", topic, b"x" * 1000, "v-1")])
    with pytest.raises(KafkaDeliveryError, match="no dead-letter topic is configured"):
        part.snapshot()


# ---- settings --------------------------------------------------------------------------------


def test_settings_come_from_config_then_environment_and_secrets_are_masked(monkeypatch):
    config = load(None, {"kafka": {"security": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"},
                                   "consumer": {"fetch.min.bytes": "1"}}})
    monkeypatch.setenv("SHOPGUARD_KAFKA_SASL_USERNAME", "shopguard")
    monkeypatch.setenv("SHOPGUARD_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("SHOPGUARD_KAFKA_BROKERS", "k1:9093,k2:9093")
    monkeypatch.setenv("SHOPGUARD_KAFKA_CACHE", "/tmp/jars")  # the broker script's, not a client setting

    consumer = consumer_settings(config.kafka)
    producer = producer_settings(config.kafka)
    assert consumer["bootstrap.servers"] == "k1:9093,k2:9093" and consumer["sasl.password"] == "hunter2"
    assert consumer["fetch.min.bytes"] == "1" and "cache" not in consumer
    assert producer["acks"] == "all" and producer["enable.idempotence"] == "true"
    line = describe(producer)
    assert "hunter2" not in line and "sasl.password=****" in line and "sasl.username=shopguard" in line
    assert env_settings({"SHOPGUARD_KAFKA_SSL_KEY_PASSWORD": "x"}) == {"ssl.key.password": "x"}


def test_a_producer_setting_that_breaks_exactly_once_is_refused():
    config = load(None, {"kafka": {"producer": {"acks": "1"}}})
    with pytest.raises(KafkaSetupError, match="acks"):
        producer_settings(config.kafka, environ={})


# ---- load generator --------------------------------------------------------------------------


def test_the_load_generator_publishes_each_event_to_its_topic_at_the_rate_with_labels(kafka_broker, tmp_path):
    from pipeline.cli.main import main

    prefix = kafka_broker.unique_topic("load") + "."
    kafka_broker.create_topics(input_topics(prefix), partitions=2)
    cfg = SimConfig(seed=3, hours=0.5, scale=0.1)
    events = list(iter_events(cfg))

    started = time.monotonic()
    assert main(["simulate", "--seed", "3", "--hours", "0.5", "--scale", "0.1", "--out", str(tmp_path),
                 "--to-kafka", kafka_broker.bootstrap, "--rate", "4000", "--topic-prefix", prefix]) == 0
    assert time.monotonic() - started >= 0.9 * len(events) / 4000  # paced, not as fast as possible

    published = {}
    for topic in TOPICS:
        for key, value in kafka_broker.consume_all(prefix + topic):
            event = json.loads(value)
            published[event["event_id"]] = (topic, key)
    assert len(published) == len({e["event_id"] for e in events})
    assert published[events[0]["event_id"]][0] == TOPIC_OF_TYPE[events[0]["type"]]
    assert [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()] == labels(cfg)
