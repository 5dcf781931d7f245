"""kill -9 and restart with file outputs: nothing lost, nothing twice (Bytewax recovery + truncating sinks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# A fixed clock and no feedback: the whole run and the crashed one must see the same stream
# (feedback depends on when violations reach the file, i.e. on the wall clock).
SIM = ["--hours", "2", "--scale", "0.5", "--seed", "3", "--metrics-port", "0", "-q",
       "--start", "2026-11-01T00:00:00Z", "--no-feedback"]


def shopguard_run(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "run", *SIM, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def has_lines(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def ids(out: Path, name: str, key: str) -> list[str]:
    with open(out / name) as f:
        return [json.loads(line)[key] for line in f if line.strip()]


def test_a_killed_run_resumes_and_writes_every_output_exactly_once(tmp_path):
    whole = tmp_path / "whole"
    assert shopguard_run(whole).wait(timeout=300) == 0

    out, recovery = tmp_path / "crashed", tmp_path / "recovery"
    job = shopguard_run(out, "--speedup", "400", "--recovery-dir", str(recovery))
    deadline = time.monotonic() + 120
    while not has_lines(out / "violations.jsonl") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.5)  # past at least one snapshot (epochs of 5 s), mid-stream
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    written_before = len(ids(out, "violations.jsonl", "violation_id"))

    resumed = shopguard_run(out, "--speedup", "400", "--recovery-dir", str(recovery))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()

    for name, key in (("violations.jsonl", "violation_id"), ("actions.jsonl", "action_id")):
        expected, got = ids(whole, name, key), ids(out, name, key)
        assert expected, name
        assert len(got) == len(set(got)), f"{name}: an id written twice"
        assert sorted(got) == sorted(expected), name
    assert written_before > 0  # the crash happened after some outputs were written
