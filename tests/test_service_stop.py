"""Stopping `shopguard run` like a service: SIGTERM and SIGINT drain it, a second signal or the grace period ends it.

The job reads a file of ~100,000 simulated events with recovery on; each
signal comes once it has read 10,000 of them (its metrics say so). The restart
resumes from the last snapshot, and the two runs together write exactly
what one uninterrupted run writes.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.request

import msgspec
import pytest

from pipeline.engine.cluster import free_ports
from simulator import SimConfig, iter_events
from tests.service_jobs import lines, start_run, summary_count, wait_until

pytestmark = pytest.mark.slow

SIM = SimConfig(seed=3, hours=6.0, scale=0.5)


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    with open(path, "wb") as f:
        for event in iter_events(SIM):
            f.write(msgspec.json.encode(event) + b"\n")
    return path


def file_job(events, out, *args, port: int = 0):
    return ["--source", "file", "--events", str(events), "--out", str(out), "--metrics-port", str(port), *args]


def records_read(port: int) -> float:
    """`shopguard_input_records_total` of the job serving metrics on `port` (0 before it serves)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("shopguard_input_records_total{"))


def start_and_wait_for_progress(log_path, events, out, *args):
    """Start a file job and wait until it has read a tenth of the file: a signal then comes mid-stream."""
    (port,) = free_ports(1)
    job = start_run(log_path, *file_job(events, out, *args, port=port))
    wait_until(lambda: records_read(port) >= 10_000, job, "10,000 records read")
    return job


@pytest.fixture(scope="module")
def uninterrupted(events, tmp_path_factory):
    """Violation and action ids of one run over the whole file."""
    folder = tmp_path_factory.mktemp("whole")
    job = start_run(folder / "run.log", *file_job(events, folder / "out"))
    assert job.wait(timeout=600) == 0, job.log()[-3000:]
    return {"violations": [v["violation_id"] for v in lines(folder / "out" / "violations.jsonl")],
            "actions": [a["action_id"] for a in lines(folder / "out" / "actions.jsonl")],
            "events": summary_count(job.log(), "events read")}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_drains_the_job_and_the_restart_resumes_exactly(events, uninterrupted, tmp_path, signum):
    out, recovery = tmp_path / "out", str(tmp_path / "recovery")
    job = start_and_wait_for_progress(tmp_path / "stopped.log", events, out, "--recovery-dir", recovery)
    job.send_signal(signum)
    assert job.wait(timeout=60) == 0, job.log()[-3000:]
    stopped = job.log()
    assert f"shopguard stopped by {signal.Signals(signum).name} (drained in" in stopped
    assert "Traceback" not in stopped and "panicked" not in stopped
    assert not re.search(r"^\S+ +(error|critical) ", stopped, re.MULTILINE), stopped[-3000:]  # no error logged

    job = start_run(tmp_path / "resumed.log", *file_job(events, out, "--recovery-dir", recovery))
    assert job.wait(timeout=600) == 0, job.log()[-3000:]
    assert "shopguard finished" in job.log()

    first, second = summary_count(stopped, "events read"), summary_count(job.log(), "events read")
    assert 0 < first < uninterrupted["events"] and first + second == uninterrupted["events"]
    for kind, key in (("violations", "violation_id"), ("actions", "action_id")):
        written = [r[key] for r in lines(out / f"{kind}.jsonl")]
        assert len(written) == len(set(written)), f"{kind}: an id written twice"
        assert sorted(written) == sorted(uninterrupted[kind]), kind


def test_a_second_signal_exits_at_once_with_one_line(events, tmp_path):
    job = start_and_wait_for_progress(tmp_path / "run.log", events, tmp_path / "out", "--recovery-dir",
                                      str(tmp_path / "recovery"))
    job.send_signal(signal.SIGTERM)
    job.send_signal(signal.SIGINT)  # another signal, so the two are not merged into one
    started = time.monotonic()
    code = job.wait(timeout=30)
    assert time.monotonic() - started < 10
    log = job.log()
    # both may be pending at once, and Python handles the lower signal number first
    second = re.search(r"(SIGINT|SIGTERM) again while stopping: exiting at once; the next start resumes from "
                       r"the last snapshot", log)
    assert second, log[-3000:]
    assert code == 128 + signal.Signals[second.group(1)]
    assert "Traceback" not in log and "shopguard finished" not in log and "shopguard stopped" not in log


def test_a_drain_longer_than_the_grace_period_exits_with_one_line(events, tmp_path):
    job = start_and_wait_for_progress(tmp_path / "run.log", events, tmp_path / "out", "--stop-grace-seconds", "0.001")
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=30) == 1
    assert "did not drain within 0.001 s of SIGTERM ([job] stop_grace_seconds): exiting at once" in job.log()
