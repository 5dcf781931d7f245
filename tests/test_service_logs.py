"""One logging setup: JSON lines on demand, facts as fields, secrets masked, librdkafka routed through it."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer

from pipeline.kafka import quiet, reachability
from pipeline.logs import event, setup_logging
from tests.service_jobs import ROOT, start_run, wait_until


@pytest.fixture
def captured():
    out = io.StringIO()
    setup_logging("json", stream=out, environ={"SHOPGUARD_KAFKA_SASL_PASSWORD": "hunter2-secret"})
    yield out
    setup_logging("text")


def records(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_an_event_is_one_json_line_with_its_fields_and_no_secret(captured):
    log = logging.getLogger("shopguard.test")
    event(log, logging.WARNING, "login with hunter2-secret refused", partition=3, offset=42,
          error_class="KafkaException", sasl_password="hunter2-secret")
    (record,) = records(captured)
    assert record["msg"] == "login with **** refused" and record["level"] == "warning"
    assert (record["partition"], record["offset"], record["error_class"]) == (3, 42, "KafkaException")
    assert record["sasl_password"] == "****" and "hunter2" not in captured.getvalue()


def test_librdkafka_speaks_through_the_same_logs(captured):
    consumer = Consumer(quiet({"bootstrap.servers": "127.0.0.1:9", "group.id": "logs-test",
                               "sasl.password": "hunter2-secret", "socket.timeout.ms": 100,
                               "reconnect.backoff.max.ms": 100}))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and reachability.problem is None:
            consumer.poll(0.2)
    finally:
        consumer.close()
        reachability.reached()
    lines = records(captured)  # every line JSON (records() would fail otherwise)
    kafka = [r for r in lines if r["logger"].startswith("shopguard.kafka")]
    assert kafka and all(r["level"] in ("warning", "error", "info") for r in kafka)
    assert any(r.get("error_class") == "_ALL_BROKERS_DOWN" or "127.0.0.1:9" in r["msg"] for r in kafka)
    assert "hunter2" not in captured.getvalue() and "CONFWARN" not in captured.getvalue()


@pytest.mark.slow
def test_the_job_logs_json_lines_with_fields(tmp_path):
    job = start_run(tmp_path / "run.log", "--log-format", "json", "--hours", "4", "--scale", "0.2",
                    "--speedup", "1000", "--out", str(tmp_path / "out"), "--metrics-port", "0")
    wait_until(lambda: '"job starting"' in job.log(), job, "the start line")
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == 0
    text = job.log()
    logged = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    by_message = {r["msg"]: r for r in logged}
    start = by_message["job starting"]
    assert (start["source"], start["process"], start["processes"], start["level"]) == ("simulator", 0, 1, "info")
    assert by_message["job ended"]["stopped_by"] == "SIGTERM"
    assert any(m.startswith("stopping:") and r["signal"] == "SIGTERM" for m, r in by_message.items())
    # nothing but JSON lines and the closing summary (stdout)
    assert all(line.startswith("{") or line.startswith(("shopguard stopped", "  ")) for line in text.splitlines())


def test_an_expected_failure_is_one_line_without_a_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "run", "--process-id", "2", "--addresses",
                           "a:2101,b:2101"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RUST_BACKTRACE": "1"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("shopguard: error: --process-id 2 is not in 0..1: --addresses lists 2 processes, "
                                   "this one's index must be among them")
