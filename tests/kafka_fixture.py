"""Pytest fixture `kafka_broker`: one real Kafka broker per test session.

The broker is the one of scripts/kafka_broker.py (KRaft, jars from Maven
Central, cached). It starts in a temporary folder the first time a test asks
for it and stops when the session ends. Missing java or mvn makes the tests
that need it fail with what to install: they are never skipped.

To use it from any test module, tests/conftest.py imports it::

    from tests.kafka_fixture import kafka_broker  # noqa: F401

The fixture yields a `KafkaTestBroker`: `.bootstrap` ("127.0.0.1:PORT") plus
small, strict helpers (`create_topics`, `produce`, `consume_all`, ...). The
broker is shared by the whole session, so give each test its own topics
(`unique_topic`).
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from pathlib import Path
from typing import Sequence

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BROKER_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kafka_broker.py"
CLIENT_TIMEOUT_S = 30.0


def _load_broker_script():
    """scripts/ is no package: load kafka_broker.py from its path, once."""
    name = "shopguard_kafka_broker"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BROKER_SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[name]


kafka_broker_script = _load_broker_script()


class KafkaTestBroker:
    """A running broker and the client calls tests need, failing loudly."""

    def __init__(self, broker) -> None:
        self.broker = broker
        self.bootstrap: str = broker.bootstrap
        # Kept for the broker's lifetime: a dropped AdminClient cancels the
        # futures it returned.
        self.admin = AdminClient(self.client_config())

    @property
    def log_path(self) -> Path:
        return self.broker.log_path

    def close(self) -> None:
        """Drop the client connections (before the broker stops, so that they
        do not log connection errors)."""
        del self.admin

    def client_config(self, **overrides) -> dict:
        return {"bootstrap.servers": self.bootstrap, **overrides}

    @staticmethod
    def unique_topic(prefix: str = "test") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def create_topics(self, names: Sequence[str], partitions: int = 1) -> None:
        """Create topics (existing ones are left as they are) and wait until
        every partition has a leader, so a produce right after succeeds."""
        new_topics = [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        for name, future in self.admin.create_topics(new_topics, operation_timeout=CLIENT_TIMEOUT_S).items():
            try:
                future.result(timeout=CLIENT_TIMEOUT_S)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        for name in names:
            self._wait_for_leaders(name)

    def delete_topics(self, names: Sequence[str]) -> None:
        for future in self.admin.delete_topics(list(names), operation_timeout=CLIENT_TIMEOUT_S).values():
            future.result(timeout=CLIENT_TIMEOUT_S)

    def topic_names(self) -> set[str]:
        return set(self.admin.list_topics(timeout=CLIENT_TIMEOUT_S).topics)

    def partitions(self, topic: str) -> list[int]:
        metadata = self.admin.list_topics(topic, timeout=CLIENT_TIMEOUT_S).topics[topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        return sorted(metadata.partitions)

    def produce(
        self,
        topic: str,
        values: Sequence[bytes],
        keys: Sequence[bytes | None] | None = None,
        timeout: float = CLIENT_TIMEOUT_S,
    ) -> None:
        """Write every value (with its key) and raise unless all are acknowledged."""
        if keys is not None and len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        producer = Producer(self.client_config(**{"acks": "all", "enable.idempotence": True}))
        failures: list[KafkaError] = []

        def on_delivery(error, _message) -> None:
            if error is not None:
                failures.append(error)

        for index, value in enumerate(values):
            key = keys[index] if keys is not None else None
            _produce_waiting_for_room(producer, topic, value, key, on_delivery)
        unsent = producer.flush(timeout)
        if unsent or failures:
            raise AssertionError(
                f"produce to {topic}: {unsent} messages unsent after {timeout} s, "
                f"{len(failures)} failed (first: {failures[:1]})"
            )

    def consume_all(
        self,
        topic: str,
        timeout: float = CLIENT_TIMEOUT_S,
        isolation_level: str = "read_committed",
    ) -> list[tuple[bytes | None, bytes | None]]:
        """Every (key, value) now in the topic, read from the beginning of each
        partition to its end (for read_committed: the last committed offset).

        No consumer group is joined (the partitions are assigned), which keeps
        it fast and leaves no committed offsets behind.
        """
        consumer = Consumer(self.client_config(**{
            "group.id": f"consume-all-{uuid.uuid4().hex}",  # required, never joined
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # tells us when a partition is drained
            "isolation.level": isolation_level,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,  # the last, empty fetch need not wait 500 ms
        }))
        partitions = self.partitions(topic)
        # Offset 0, not OFFSET_BEGINNING: that costs a ListOffsets round trip
        # (~0.5 s); if 0 is gone, auto.offset.reset moves to the earliest.
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        try:
            return _read_until_every_partition_ends(consumer, topic, set(partitions), timeout)
        finally:
            consumer.close()

    def _wait_for_leaders(self, topic: str) -> None:
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while time.monotonic() < deadline:
            metadata = self.admin.list_topics(topic, timeout=CLIENT_TIMEOUT_S).topics.get(topic)
            if metadata and metadata.error is None and metadata.partitions and all(
                p.leader >= 0 for p in metadata.partitions.values()
            ):
                return
            time.sleep(0.05)
        raise TimeoutError(f"topic {topic} has no leader after {CLIENT_TIMEOUT_S} s")


def _produce_waiting_for_room(producer: Producer, topic, value, key, on_delivery) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            producer.poll(0)
            return
        except BufferError:  # local queue full: let deliveries drain it
            producer.poll(0.1)


def _read_until_every_partition_ends(
    consumer: Consumer, topic: str, pending: set[int], timeout: float
) -> list[tuple[bytes | None, bytes | None]]:
    records = []
    deadline = time.monotonic() + timeout
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"consume_all({topic!r}): partitions {sorted(pending)} not read to the end "
                f"within {timeout} s ({len(records)} records read)"
            )
        message = consumer.poll(min(remaining, 1.0))
        if message is None:
            continue
        if message.error() is None:
            records.append((message.key(), message.value()))
        elif message.error().code() == KafkaError._PARTITION_EOF:
            pending.discard(message.partition())
        else:
            raise KafkaException(message.error())
    return records


# One broker per test process, even if several modules import this fixture
# (each import registers its own copy of the fixture with pytest).
_session_broker: dict[str, KafkaTestBroker] = {}


@pytest.fixture(scope="session")
def kafka_broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> KafkaTestBroker:
    if "broker" not in _session_broker:
        _session_broker["broker"] = _start_or_fail(tmp_path_factory.mktemp("kafka"))
        request.config.add_cleanup(_stop_session_broker)
    return _session_broker["broker"]


def _start_or_fail(directory: Path) -> KafkaTestBroker:
    try:
        return KafkaTestBroker(kafka_broker_script.start_broker(directory))
    except kafka_broker_script.KafkaBrokerError as error:
        # Fail, never skip: a Kafka test that did not run has not passed.
        pytest.fail(f"cannot start the test Kafka broker: {error}", pytrace=False)


def _stop_session_broker() -> None:
    test_broker = _session_broker.pop("broker")
    test_broker.close()
    test_broker.broker.stop()
