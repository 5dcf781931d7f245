"""/healthz, /readyz and the service gauges on the metrics port of a running job."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request

import pytest
from confluent_kafka import KafkaError

from pipeline.engine.cluster import free_ports
from pipeline.kafka import Reachability
from sinks.health import Health, serve
from sinks.metrics import Metrics
from tests.service_jobs import start_run, wait_until


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


@pytest.mark.slow
def test_a_running_job_is_alive_and_ready_and_says_so_in_its_metrics(tmp_path):
    (port,) = free_ports(1)
    job = start_run(tmp_path / "run.log", "--hours", "6", "--scale", "0.2", "--speedup", "1000",
                    "--out", str(tmp_path / "out"), "--metrics-port", str(port))
    try:
        wait_until(lambda: get(port, "/readyz") == (200, "ok\n"), job, "a ready job")
        assert get(port, "/healthz") == (200, "ok\n")
        status, metrics = get(port, "/metrics")
        assert status == 200
        for line in ("shopguard_up 1.0", "shopguard_ready 1.0", 'shopguard_build_info{bytewax_version="0.21.1"',
                     "shopguard_policy_version{version=\"p-"):
            assert line in metrics, line
        assert get(port, "/nope")[0] == 404
    finally:
        job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == 0, job.log()[-3000:]


def test_readiness_names_what_is_missing_and_liveness_a_wedged_input():
    clock = [0.0]
    health = Health(stall_seconds=30, clock=lambda: clock[0])
    reachability = Reachability()
    health.add_check("kafka", lambda: reachability.problem)
    metrics = Metrics()
    health.register(metrics)
    (port,) = free_ports(1)
    server = serve(metrics, health, port)
    try:
        assert get(port, "/healthz") == (200, "starting\n")
        assert get(port, "/readyz") == (503, "starting: loading recovery and building inputs\n")
        health.polled("kafka-input", records=10, waiting=True)
        assert get(port, "/readyz") == (200, "ok\n")

        reachability.error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN, "2/2 brokers are down"))
        status, why = get(port, "/readyz")
        assert status == 503 and why.startswith("kafka: cannot reach the brokers") and "brokers are down" in why
        reachability.reached()
        assert get(port, "/readyz")[0] == 200

        clock[0] = 31.0  # records waiting, none read for longer than stall_seconds: wedged
        assert get(port, "/healthz") == (503, "input kafka-input: nothing polled for 31 s (a step is stuck)\n")
        health.polled("kafka-input", records=0, waiting=False)  # polled again, and idle: alive
        assert get(port, "/healthz") == (200, "ok\n")

        health.stopping = "SIGTERM received, draining"
        assert get(port, "/readyz") == (503, "stopping: SIGTERM received, draining\n")
        assert "shopguard_ready 0.0" in get(port, "/metrics")[1]
    finally:
        server.shutdown()


def test_a_port_in_use_is_one_line_that_says_what_to_do():
    from pipeline.errors import SetupError

    (port,) = free_ports(1)
    server = serve(Metrics(), Health(), port)
    try:
        with pytest.raises(SetupError, match=rf"cannot serve metrics on 127.0.0.1:{port} .*--metrics-port"):
            serve(Metrics(), Health(), port)
    finally:
        server.shutdown()
