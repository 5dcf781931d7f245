"""A record the broker refuses is a dead letter, never a crash loop; real failures stop the job in one line.

Before, a valid listing could make a violation over the broker's message
limit; `MSG_SIZE_TOO_LARGE` escaped the sink as a traceback, and the job
crashed again on every restart (it re-made the same record). Against the
real broker, with topics whose `max.message.bytes` is small: the refused
record goes to the dead-letter topic with the reason and its size, the
records batched with it are written, the job goes on; a dead-letter topic
that refuses too gets the error and size alone, and if even that is refused
the job stops with one line. Transient failures are retried with backoff
(a unit test with a scripted producer: a real broker cannot be made to fail
on cue).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic

import sinks.kafka as kafka_sink
from pipeline.kafka import KafkaDeliveryError
from sinks.kafka import KafkaOutputSink, sink_partition_of
from tests.kafka_fixture import KafkaTestBroker
from tests.kafka_jobs import ROOT, input_topics, job_overrides, new_outputs, read_topic, run_in_process, toml
from tests.test_kafka_pipeline import _near_duplicate_listings

KEYS = [k for k in (f"seller:S{i}" for i in range(200)) if sink_partition_of(k) == 0]  # all in sink partition 0


def small_topic(broker: KafkaTestBroker, max_bytes: int) -> str:
    topic = broker.unique_topic("small")
    broker.admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": str(max_bytes)})])[topic] \
        .result(30)
    broker.create_topics([topic])  # waits for its leader
    return topic


def partition(broker: KafkaTestBroker, topics: list[str], dead_letter_topic: str | None, excerpt: int = 100):
    sink = KafkaOutputSink(broker.client_config(acks="all", **{"enable.idempotence": "true"}),
                           broker.client_config(), topics, dead_letter_topic=dead_letter_topic,
                           excerpt_bytes=excerpt)
    return sink.build_part("write_kafka", "kafka-out-000", None)


def record(i: int, topic: str, rid: str, size: int = 10) -> tuple[str, str, bytes, str]:
    return KEYS[i], topic, json.dumps({"id": rid, "pad": "x" * size}).encode(), rid


@pytest.mark.kafka
def test_a_record_too_big_for_its_topic_is_a_dead_letter_and_its_batch_mates_are_written(kafka_broker):
    tiny, dead = small_topic(kafka_broker, 1_024), kafka_broker.unique_topic("dead")
    kafka_broker.create_topics([dead])
    part = partition(kafka_broker, [tiny, dead], dead)
    big = record(1, tiny, "v-big", size=5_000)

    part.write_batch([record(0, tiny, "a"), big, record(2, tiny, "b")])
    part.snapshot()  # everything is delivered or dead-lettered: no error
    part.write_batch([record(3, tiny, "c")])  # and the sink goes on
    part.snapshot()

    assert [rid for _, _, rid in read_topic(kafka_broker, tiny)] == ["a", "b", "c"]
    ((key, letter, rid),) = read_topic(kafka_broker, dead)
    assert (key.decode(), rid) == (big[0], "output-refused:v-big")
    assert letter["reason"] == "output_refused" and letter["source"] == f"{tiny}:v-big"
    assert letter["raw"] == big[2][:100].decode() and letter["raw_bytes"] == len(big[2])
    assert "MSG_SIZE_TOO_LARGE" in letter["error"] and "max.message.bytes" in letter["error"]


@pytest.mark.kafka
def test_a_dead_letter_too_big_for_the_dead_letter_topic_keeps_only_its_error_and_size(kafka_broker):
    tiny, dead = small_topic(kafka_broker, 1_024), small_topic(kafka_broker, 1_024)
    part = partition(kafka_broker, [tiny, dead], dead, excerpt=4_000)
    big = record(0, tiny, "v-big", size=5_000)
    too_big_letter = record(1, dead, "dead-letter:in.jsonl:7", size=3_000)  # a dead letter of the job's own

    part.write_batch([big, too_big_letter])
    part.snapshot()

    letters = {rid: letter for _, letter, rid in read_topic(kafka_broker, dead)}
    assert set(letters) == {"output-refused:v-big", "output-refused:dead-letter:in.jsonl:7"}
    assert all(letter["raw"] == "" and letter["reason"] == "output_refused" for letter in letters.values())
    assert letters["output-refused:v-big"]["raw_bytes"] == len(big[2])


@pytest.mark.kafka
def test_when_the_dead_letter_topic_refuses_even_that_the_sink_stops_with_one_line(kafka_broker):
    tiny, dead = small_topic(kafka_broker, 1_024), small_topic(kafka_broker, 200)
    part = partition(kafka_broker, [tiny, dead], dead)
    part.write_batch([record(0, tiny, "v-big", size=5_000)])
    with pytest.raises(KafkaDeliveryError) as err:
        part.snapshot()
    message = str(err.value)
    assert "\n" not in message
    assert f"the dead-letter topic {dead} refused even a" in message and f"max.message.bytes of {dead}" in message


def refusing_job(broker: KafkaTestBroker, violations_max_bytes: int, dead_letters_max_bytes: int | None = None):
    """Job settings on a listing-spam burst whose output topics for violations (and dead letters) are small."""
    prefix = broker.unique_topic("refuse") + "."
    broker.create_topics(input_topics(prefix))
    broker.produce(prefix + "listing-events", _near_duplicate_listings("S9", 6))
    outputs = new_outputs(broker, partitions=1)
    outputs["violations"] = small_topic(broker, violations_max_bytes)
    if dead_letters_max_bytes is not None:
        outputs["dead_letter"] = small_topic(broker, dead_letters_max_bytes)
    return job_overrides(broker, prefix, outputs), outputs


@pytest.mark.kafka
def test_the_job_keeps_running_when_kafka_refuses_its_violations(kafka_broker):
    overrides, outputs = refusing_job(kafka_broker, violations_max_bytes=300)

    metrics = run_in_process(overrides)

    assert read_topic(kafka_broker, outputs["violations"]) == []
    ((_, letter, _),) = read_topic(kafka_broker, outputs["dead_letter"])
    refused = json.loads(letter["raw"])
    assert (letter["reason"], refused["violation_type"], refused["actor"]) == (
        "output_refused", "listing_spam", "seller:S9")
    assert letter["source"] == f"{outputs['violations']}:{refused['violation_id']}"
    assert [s["actor"] for _, s, _ in read_topic(kafka_broker, outputs["standing"])] == ["seller:S9"]
    assert {r: n for r, n in metrics.by_label(metrics.dead_letters, "reason").items() if n} == {"output_refused": 1}


@pytest.mark.kafka
def test_a_delivery_the_job_cannot_recover_ends_the_command_with_one_line(kafka_broker, tmp_path):
    overrides, outputs = refusing_job(kafka_broker, violations_max_bytes=300, dead_letters_max_bytes=150)
    config_file = tmp_path / "job.toml"
    config_file.write_text(toml(overrides))

    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "run", "--config", str(config_file), "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("shopguard: error:")]
    assert errors == [done.stderr.strip().splitlines()[-1]]
    assert f"the dead-letter topic {outputs['dead_letter']} refused even a" in errors[0]
    assert "Traceback" not in done.stderr


# ---- transient failures: a unit test with a scripted producer -----------------------------------------


class ScriptedProducer:
    """Fails the first deliveries with the errors given, then delivers; records what reached 'Kafka'."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = list(errors)
        self.pending: list = []
        self.delivered: list[str] = []

    def produce(self, topic, value, key, headers, on_delivery) -> None:
        self.pending.append((topic, dict(headers)[kafka_sink.ID_HEADER].decode(), on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return self.flush(timeout)

    def flush(self, timeout: float = 0) -> int:
        pending, self.pending = self.pending, []
        for topic, rid, on_delivery in pending:
            if self.errors:
                on_delivery(KafkaError(self.errors.pop(0)), None)
            else:
                self.delivered.append(rid)
                on_delivery(None, DeliveredMessage(topic, len(self.delivered)))
        return 0


class DeliveredMessage:
    def __init__(self, topic: str, offset: int) -> None:
        self._topic, self._offset = topic, offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class ScriptedSink:
    dead_letter_topic, excerpt_bytes, metrics = "dead", 100, None

    def __init__(self, producer: ScriptedProducer) -> None:
        self.main = producer

    def producer(self):
        return self.main

    def producer_alone(self):
        return self.main

    def producers(self):
        return [self.main]


def test_transient_failures_are_retried_with_backoff_until_delivered(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(kafka_sink.time, "sleep", pauses.append)
    producer = ScriptedProducer([KafkaError._MSG_TIMED_OUT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT])
    part = kafka_sink._KafkaOutputPartition(ScriptedSink(producer), {}, {})

    part.write_batch([("seller:S1", "violations", b"{}", "v-1")])
    state = part.snapshot()

    assert producer.delivered == ["v-1"]
    assert pauses == list(kafka_sink.BACKOFF_S[:3])
    assert state["offsets"] == {("violations", 0): 2}


def test_a_record_failing_transiently_for_too_long_stops_the_job_with_one_line(monkeypatch):
    monkeypatch.setattr(kafka_sink.time, "sleep", lambda _s: None)
    monkeypatch.setattr(kafka_sink, "RETRY_FOR_S", 0.0)
    part = kafka_sink._KafkaOutputPartition(ScriptedSink(ScriptedProducer([KafkaError._MSG_TIMED_OUT] * 3)), {}, {})
    part.write_batch([("seller:S1", "violations", b"{}", "v-1")])
    with pytest.raises(KafkaDeliveryError, match=r"did not take output records for violations for 0 s \(last error"):
        part.snapshot()


def test_a_fatal_error_stops_the_job_at_once(monkeypatch):
    monkeypatch.setattr(kafka_sink.time, "sleep", lambda _s: pytest.fail("a fatal error is not retried"))
    part = kafka_sink._KafkaOutputPartition(
        ScriptedSink(ScriptedProducer([KafkaError.TOPIC_AUTHORIZATION_FAILED])), {}, {})
    with pytest.raises(KafkaDeliveryError, match="TOPIC_AUTHORIZATION_FAILED"):
        part.write_batch([("seller:S1", "violations", b"{}", "v-1")])
        part.snapshot()
