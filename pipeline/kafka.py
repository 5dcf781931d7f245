"""Kafka settings every client of the project shares, and the check before any of them starts.

The job's input (`pipeline/sources/kafka.py`), its output (`sinks/kafka.py`),
the workbench's publisher and the load generator all build their clients
from here.

Settings
--------
librdkafka settings come from `[kafka]` in the configuration (`brokers`,
`security`, `consumer`, `producer`) and then from the environment:
`SHOPGUARD_KAFKA_<NAME>` sets the librdkafka property `<name>` with `_` read
as `.` (`SHOPGUARD_KAFKA_SASL_PASSWORD` -> `sasl.password`), and
`SHOPGUARD_KAFKA_BROKERS` (comma-separated) replaces `kafka.brokers`.
Secrets belong in the environment; whenever settings are printed their
secret values are masked (`masked`).

`preflight` checks the cluster first: an unreachable broker or a missing
topic stops the job with one line that names the address and what to check,
instead of a hang or a page of librdkafka noise.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.config import KafkaConfig
from pipeline.errors import DeliveryError, SetupError
from pipeline.logs import event, is_secret

ENV_PREFIX = "SHOPGUARD_KAFKA_"
# SHOPGUARD_KAFKA_CACHE is the jar cache of scripts/kafka_broker.py, not a client setting.
ENV_NOT_SETTINGS = frozenset({"CACHE"})
PREFLIGHT_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 30.0
# The producer settings exactly-once output depends on.
REQUIRED_PRODUCER = {"acks": "all", "enable.idempotence": "true"}
log = logging.getLogger("shopguard.kafka")
# librdkafka's own log lines: errors only (its warnings include harmless
# "property X is a consumer property" notes for shared settings).
client_log = logging.getLogger("shopguard.kafka.client")
client_log.setLevel(logging.ERROR)


class KafkaSetupError(SetupError):
    """Kafka is unreachable, a topic is missing, or the settings are wrong; the message says what to do."""


class KafkaDeliveryError(DeliveryError):
    """The broker did not take an output record: the job stops rather than lose it."""


# ---- settings ---------------------------------------------------------------------


def env_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """librdkafka settings from `SHOPGUARD_KAFKA_*` variables.

    >>> env_settings({"SHOPGUARD_KAFKA_SASL_PASSWORD": "s3cret", "SHOPGUARD_KAFKA_BROKERS": "a:1,b:2", "HOME": "/"})
    {'sasl.password': 's3cret', 'bootstrap.servers': 'a:1,b:2'}
    """
    settings = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        suffix = name[len(ENV_PREFIX):]
        if suffix in ENV_NOT_SETTINGS:
            continue
        key = "bootstrap.servers" if suffix == "BROKERS" else suffix.lower().replace("_", ".")
        settings[key] = value
    return settings


def client_settings(kafka: KafkaConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings every client shares: brokers and security, then the environment."""
    settings = {"bootstrap.servers": ",".join(kafka.brokers), **kafka.security}
    settings.update(env_settings(os.environ if environ is None else environ))
    return settings


def consumer_settings(kafka: KafkaConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**client_settings(kafka, environ), **kafka.consumer}


def producer_settings(kafka: KafkaConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Producer settings; `acks=all` and idempotence are required, not defaults."""
    settings = {**client_settings(kafka, environ), **kafka.producer}
    for key, value in REQUIRED_PRODUCER.items():
        given = str(settings.get(key, value)).lower()
        if given != value and not (key == "acks" and given == "-1"):
            raise KafkaSetupError(
                f"[kafka.producer] {key} = {settings[key]!r}: exactly-once output needs {key}={value}; remove the key"
            )
        settings[key] = value
    return settings


def masked(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings safe to print: secret values replaced by `****`.

    >>> masked({"bootstrap.servers": "k:9092", "sasl.password": "s3cret"})
    {'bootstrap.servers': 'k:9092', 'sasl.password': '****'}
    """
    return {key: "****" if is_secret(key) else value for key, value in settings.items()}


def describe(settings: Mapping[str, Any]) -> str:
    """One line for logs: `key=value` pairs, secrets masked."""
    return ", ".join(f"{key}={value}" for key, value in sorted(masked(settings).items())
                     if key not in ("logger", "error_cb"))


class Reachability:
    """Whether this process's Kafka clients reach their brokers, from librdkafka's error callbacks.

    `/readyz` reports `problem` until a client hears from the brokers again
    (`reached`). Each distinct error is logged once, with its class.
    """

    UNREACHABLE = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._SSL,
                             KafkaError._RESOLVE})

    def __init__(self) -> None:
        self.problem: str | None = None
        self._logged: set[str] = set()

    def error_cb(self, error: KafkaError) -> None:
        text = error.str()
        if error.code() in self.UNREACHABLE:
            self.problem = f"cannot reach the brokers ({text})"
        if text not in self._logged:
            self._logged.add(text)
            event(log, logging.WARNING, f"Kafka client: {text}", error_class=error.name())

    def reached(self) -> None:
        if self.problem is not None:
            self.problem = None
            self._logged.clear()
            event(log, logging.INFO, "Kafka brokers reachable again")


reachability = Reachability()


def quiet(settings: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka logs through Python logging (`shopguard.kafka.client`) instead of raw stderr lines,
    and its errors reach `reachability`."""
    return {**settings, "logger": client_log, "error_cb": reachability.error_cb}


def _silent(settings: Mapping[str, Any]) -> dict[str, Any]:
    """No librdkafka logs at all: for checks whose failure we report ourselves."""
    silent = logging.getLogger("shopguard.kafka.preflight")
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    return {**settings, "logger": silent}


def topic_partitions(client: Any, topics: Iterable[str], kind: str) -> dict[str, list[int]]:
    """Each topic's partition numbers, sorted (`kind`: "input" or "output", for the error)."""
    found = {}
    for topic in topics:
        metadata = client.list_topics(topic, timeout=CLIENT_TIMEOUT_S).topics[topic]
        if metadata.error is not None:
            raise KafkaSetupError(f"{kind} topic {topic}: {metadata.error.str()}")
        found[topic] = sorted(metadata.partitions)
    return found


# ---- pre-flight ---------------------------------------------------------------------


def preflight(settings: Mapping[str, str], topics: Iterable[str], timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Fail with one clear line unless the brokers answer and every topic exists."""
    bootstrap = settings.get("bootstrap.servers", "")
    admin = AdminClient(_silent(settings))
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as err:
        raise KafkaSetupError(
            f"cannot reach Kafka at {bootstrap} within {timeout_s:g} s ({_short(err)}): check that the broker "
            "is running and reachable from here, kafka.brokers (or SHOPGUARD_KAFKA_BROKERS), and the TLS/SASL "
            "settings ([kafka.security], SHOPGUARD_KAFKA_*)"
        ) from None
    missing = [t for t in dict.fromkeys(topics) if t not in metadata.topics or metadata.topics[t].error is not None]
    if missing:
        raise KafkaSetupError(
            f"Kafka at {bootstrap} has no topic {', '.join(missing)}: create "
            f"{'it' if len(missing) == 1 else 'them'} (kafka-topics.sh --bootstrap-server {bootstrap} --create "
            "--topic NAME --partitions N), or name existing ones in [kafka] input_topics / output_topics"
        )


def _short(err: KafkaException) -> str:
    error = err.args[0] if err.args else None
    return error.str() if hasattr(error, "str") else str(err)


