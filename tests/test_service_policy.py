"""Changing the policy of a running job: validated first, applied from the next event time, replayable."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tomllib

import msgspec
import pytest

from pipeline.config import DEFAULT_POLICY
from pipeline.contract.events import decode
from pipeline.engine.dataflow import policy_updates
from pipeline.enforce.policy import PolicyUpdate, content_version, load_policy
from pipeline.sources.raw import RawRecord
from simulator import SimConfig, iter_events
from sinks.metrics import Metrics
from tests.service_jobs import ROOT, lines, start_run, wait_until

SIM = SimConfig(seed=7, hours=6.0, scale=0.3)


def points_plus(text: str, extra: int) -> str:
    """The policy file with every type's points raised by `extra`."""
    return re.sub(r"^points = (\d+)$", lambda m: f"points = {int(m.group(1)) + extra}", text, flags=re.MULTILINE)


@pytest.mark.slow
def test_a_changed_policy_applies_from_the_next_event_time_and_a_broken_one_is_rejected(tmp_path):
    policy_file, out = tmp_path / "policy.toml", tmp_path / "out"
    original = DEFAULT_POLICY.read_text()
    policy_file.write_text(original)
    old, new = load_policy(DEFAULT_POLICY), tomllib.loads(points_plus(original, 1))
    job = start_run(tmp_path / "run.log", "--policy", str(policy_file), "--out", str(out), "--metrics-port", "0",
                    "--seed", str(SIM.seed), "--hours", str(SIM.hours), "--scale", str(SIM.scale), "--speedup", "800",
                    "--start", "2026-11-01T00:00:00Z")  # SIM's clock, so the replay below is the same stream

    wait_until(lambda: lines(out / "violations.jsonl"), job, "a first violation")
    policy_file.write_text(original.replace("points = 24", "points = twenty-four", 1))
    job.send_signal(signal.SIGHUP)
    wait_until(lambda: "policy reload rejected" in job.log(), job, "the broken policy's rejection")
    policy_file.write_text(points_plus(original, 1))
    job.send_signal(signal.SIGHUP)
    applied = wait_until(lambda: re.search(r"policy (\S+) applies from event time (\d+) on", job.log()), job,
                         "the new policy")
    assert job.wait(timeout=300) == 0, job.log()[-3000:]

    log = job.log()
    (rejected,) = [line for line in log.splitlines() if "policy reload rejected" in line]
    assert f"policy {old.version} stays" in rejected and "not valid TOML" in rejected and "Traceback" not in log
    version, since = applied.group(1), int(applied.group(2))
    assert version == content_version(new) != old.version
    violations = lines(out / "violations.jsonl")
    before = [v for v in violations if v["detected_at"] < since and v["enforced"]]
    after = [v for v in violations if v["detected_at"] >= since and v["enforced"]]
    assert before and after, (len(before), len(after))
    stale = [v for v in before if not (v["policy_version"] == old.version and
                                      v["points"] == old.types[v["violation_type"]].points)]
    assert not stale, (since, stale[:3])
    unchanged = [v for v in after if not (v["policy_version"] == version and
                                          v["points"] == new["types"][v["violation_type"]]["points"])]
    assert not unchanged, (since, unchanged[:3])
    (change,) = lines(out / "governance-events.jsonl")
    assert (change["type"], change["version"], change["ts"], change["previous_version"]) == (
        "policy.changed", version, since, old.version)

    # Deterministic on replay: the same events with the governance record give the same violations.
    events = tmp_path / "events.jsonl"
    with open(events, "wb") as f:
        for record in iter_events(SIM):
            f.write(msgspec.json.encode(record) + b"\n")
        f.write((out / "governance-events.jsonl").read_bytes())
    replayed = tmp_path / "replayed"
    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "replay", str(events), "--out", str(replayed),
                           "--policy", str(DEFAULT_POLICY)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    priced = {(v["violation_id"], v["points"], v["policy_version"]) for v in violations}
    assert {(v["violation_id"], v["points"], v["policy_version"])
            for v in lines(replayed / "violations.jsonl")} == priced


def test_a_policy_change_reaches_every_ledger_shard_and_the_models_once_checked():
    data = tomllib.loads(points_plus(DEFAULT_POLICY.read_text(), 1))
    version = content_version(data)
    change = msgspec.json.encode({"event_id": "p1", "type": "policy.changed", "ts": 5, "version": version,
                                  "policy": data})
    metrics = Metrics()
    updates = policy_updates(decode(change), RawRecord(change, "policy", 1, 0), 4, metrics, 512)
    assert [u.key for u in updates] == ["ledger/0", "ledger/1", "ledger/2", "ledger/3", "models"]
    assert all(isinstance(u, PolicyUpdate) and u.ts == 5 and u.policy.version == version for u in updates)

    forged = msgspec.json.encode({"event_id": "p2", "type": "policy.changed", "ts": 5, "version": "p-forged",
                                  "policy": data})
    (dead,) = policy_updates(decode(forged), RawRecord(forged, "governance-events/0", 7, 0), 4, metrics, 512)
    assert dead.reason == "invalid_policy" and "does not match its policy" in dead.error
    broken = msgspec.json.encode({"event_id": "p3", "type": "policy.changed", "ts": 5, "version": "v",
                                  "policy": {**data, "expiry_days": -1}})
    (dead,) = policy_updates(decode(broken), RawRecord(broken, "governance-events/0", 8, 0), 4, metrics, 512)
    assert dead.reason == "invalid_policy" and "expiry_days" in dead.error and dead.source == "governance-events/0:8"
