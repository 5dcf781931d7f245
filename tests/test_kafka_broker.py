"""The development Kafka broker (scripts/kafka_broker.py) works for real:
messages round-trip, transactions commit and abort, the command line starts,
restarts and stops it, and every failure says what to do."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import Producer
from tests.kafka_fixture import BROKER_SCRIPT, KafkaTestBroker, _start_or_fail, kafka_broker_script  # noqa: F401  (the `kafka_broker` fixture comes from conftest)

pytestmark = pytest.mark.kafka


def test_a_thousand_keyed_messages_round_trip(kafka_broker: KafkaTestBroker) -> None:
    topic = kafka_broker.unique_topic("smoke")
    kafka_broker.create_topics([topic], partitions=3)
    keys = [f"seller-{i % 17}".encode() for i in range(1000)]
    values = [f"event-{i}".encode() for i in range(1000)]

    kafka_broker.produce(topic, values, keys=keys)
    records = kafka_broker.consume_all(topic)

    assert sorted(records) == sorted(zip(keys, values))
    kafka_broker.delete_topics([topic])
    assert topic not in kafka_broker.topic_names()


def test_only_committed_transactions_reach_a_read_committed_consumer(kafka_broker: KafkaTestBroker) -> None:
    topic = kafka_broker.unique_topic("tx")
    kafka_broker.create_topics([topic])
    producer = Producer(kafka_broker.client_config(**{"transactional.id": f"{topic}-producer"}))
    producer.init_transactions(30)

    _write_in_transaction(producer, topic, [b"committed-1", b"committed-2"], commit=True)
    _write_in_transaction(producer, topic, [b"aborted"], commit=False)
    _write_in_transaction(producer, topic, [b"committed-3"], commit=True)

    committed = [value for _, value in kafka_broker.consume_all(topic)]
    everything = [value for _, value in kafka_broker.consume_all(topic, isolation_level="read_uncommitted")]
    assert committed == [b"committed-1", b"committed-2", b"committed-3"]
    assert b"aborted" in everything


def _write_in_transaction(producer: Producer, topic: str, values: list[bytes], commit: bool) -> None:
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, value)
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def test_command_line_starts_restarts_with_topics_kept_and_stops(tmp_path) -> None:
    try:
        start = _run_script("start", "--dir", str(tmp_path))
        state = json.loads((tmp_path / "broker.json").read_text())
        assert start.stdout.strip() == state["bootstrap"]
        broker = KafkaTestBroker(kafka_broker_script.Broker(tmp_path, state["bootstrap"], state["pid"]))
        broker.create_topics(["kept"])

        _run_script("stop", "--dir", str(tmp_path))
        assert not (tmp_path / "broker.json").exists()
        assert not kafka_broker_script.is_broker_process(state["pid"], kafka_broker_script.BrokerLayout(tmp_path))

        restart = _run_script("start", "--dir", str(tmp_path))
        assert restart.stdout.strip() == state["bootstrap"]  # same ports
        assert "kept" in broker.topic_names()
    finally:
        kafka_broker_script.stop_broker(tmp_path)  # whatever failed, leave no JVM behind


def _run_script(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(BROKER_SCRIPT), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_a_broker_that_is_not_up_in_time_is_killed_and_its_log_shown(tmp_path) -> None:
    with pytest.raises(kafka_broker_script.KafkaBrokerError) as failure:
        kafka_broker_script.start_broker(tmp_path, timeout_s=0.2)

    message = str(failure.value)
    assert "did not come up within" in message
    assert str(tmp_path / "broker.log") in message
    assert not (tmp_path / "broker.json").exists()


def test_cached_jars_are_not_fetched_again(kafka_broker: KafkaTestBroker) -> None:
    started = time.monotonic()
    libs = kafka_broker_script.fetch_jars()
    assert time.monotonic() - started < 1.0
    assert list(libs.glob("kafka_2.13-*.jar"))


def test_missing_java_says_what_to_install(monkeypatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(kafka_broker_script.KafkaBrokerError, match=r"apt-get install openjdk-17-jre-headless"):
        kafka_broker_script.find_java()


def test_missing_maven_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SHOPGUARD_KAFKA_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(kafka_broker_script.KafkaBrokerError, match=r"apt-get install maven"):
        kafka_broker_script.fetch_jars()


def test_the_fixture_fails_rather_than_skips_without_java(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="openjdk-17"):
        _start_or_fail(tmp_path)
