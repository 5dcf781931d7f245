"""kill -9 and restart with file outputs: nothing lost, nothing twice (Bytewax recovery + truncating sinks).

All five outputs are compared with an uninterrupted run, record by record:
violations, actions, standings, the review queue (identified by actor, model
and window, and scored in event-time order, so a restart writes the same
entries with the same scores) and dead letters.
"""

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
# A short stream: the anomaly models warm up sooner, so the review queue has entries to compare.
MODELS = "[models.anomaly]\nwarmup_updates = 300\nthreshold_quantile = 0.99\n"
OUTPUTS = ("violations.jsonl", "actions.jsonl", "standing.jsonl", "review_queue.jsonl", "dead_letter.jsonl")


def shopguard_run(out: Path, config: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "run", *SIM, "--config", str(config),
                             "--out", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def has_lines(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def records(out: Path, name: str) -> list[str]:
    """Every record of an output file, sorted (file order across a restart is not part of the contract)."""
    with open(out / name) as f:
        return sorted(json.dumps(json.loads(line), sort_keys=True) for line in f if line.strip())


def test_a_killed_run_resumes_and_writes_every_output_exactly_once(tmp_path):
    config = tmp_path / "job.toml"
    config.write_text(MODELS)
    whole = tmp_path / "whole"
    assert shopguard_run(whole, config).wait(timeout=300) == 0

    out, recovery = tmp_path / "crashed", tmp_path / "recovery"
    written_before = []
    for pause in (2.5, 1.3):  # past at least one snapshot (epochs of 5 s), mid-stream; then once more
        job = shopguard_run(out, config, "--speedup", "400", "--recovery-dir", str(recovery))
        seen = len(records(out, "violations.jsonl")) if has_lines(out / "violations.jsonl") else 0
        deadline = time.monotonic() + 120
        while (not has_lines(out / "violations.jsonl") or len(records(out, "violations.jsonl")) <= seen) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(pause)
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
        written_before.append(len(records(out, "violations.jsonl")))

    resumed = shopguard_run(out, config, "--speedup", "400", "--recovery-dir", str(recovery))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()

    for name in OUTPUTS:
        expected, got = records(whole, name), records(out, name)
        assert len(got) == len(set(got)), f"{name}: a record written twice"
        assert got == expected, name
    assert all(records(whole, name) for name in OUTPUTS[:4])
    assert 0 < written_before[0] <= written_before[1]  # both crashes came after outputs were written
