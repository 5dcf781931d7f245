"""A reproducible review queue: the same entries, ids and scores on any number of workers or processes.

Before, a review entry's id was a hash of its bytes and feature updates were
scored in arrival order, so 1, 2, 4 workers or 2 processes gave different
queues (and a restart wrote duplicates; the kill -9 tests in
`test_recovery_files.py` and `test_kafka_pipeline.py` check restarts). Now
an entry is identified by (actor, model, window) and the updates are scored
in event-time order, at points that depend only on the input. The stream
carries poison lines too, so every one of the five outputs has records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detectors.base import HOUR_MS
from pipeline.config import load
from pipeline.contract.records import review_id
from pipeline.engine.job import read_file, run_job
from simulator import SimConfig, iter_events
from tests.conftest import read_jsonl
from tests.test_hostile_input import deep

pytestmark = pytest.mark.slow

SIM = SimConfig(seed=7, hours=2.0, scale=0.5)
# A short stream: the anomaly models warm up sooner, so the queue has entries to compare.
MODELS = {"anomaly": {"warmup_updates": 300, "threshold_quantile": 0.99}}
OUTPUTS = ("violations.jsonl", "actions.jsonl", "standing.jsonl", "review_queue.jsonl", "dead_letter.jsonl")


def with_poison(events: list[dict]) -> list[bytes]:
    lines = [json.dumps(e).encode() for e in events]
    future = {**events[500], "event_id": "future", "ts": events[500]["ts"] + 60 * 24 * HOUR_MS}
    for at, poison in ((100, b"{not json"), (2_000, deep(10_000)), (5_000, json.dumps(future).encode())):
        lines.insert(at, poison)
    return lines


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stream") / "events.jsonl"
    path.write_bytes(b"\n".join(with_poison(list(iter_events(SIM)))) + b"\n")
    return path


def run(stream: Path, out: Path, workers: int = 1, processes: int = 1) -> dict[str, set[str]]:
    config = load(None, {"source": {"kind": "file", "file": {"path": str(stream)}}, "output": {"dir": str(out)},
                         "models": MODELS})
    run_job(config, source=read_file, replay=True, workers=workers, processes=processes, serve_metrics=False,
            progress=False)
    return {name: {as_line(r, name) for r in read_jsonl(out / name)} for name in OUTPUTS}


def as_line(record: dict, name: str) -> str:
    if name == "dead_letter.jsonl":
        record.pop("ts")  # when the line was read: the wall clock
    return json.dumps(record, sort_keys=True)


def test_every_output_is_the_same_on_1_2_4_workers_and_2_processes(stream, tmp_path):
    one = run(stream, tmp_path / "w1")
    assert all(one[name] for name in OUTPUTS), {name: len(one[name]) for name in OUTPUTS}
    for name, got in (("2 workers", run(stream, tmp_path / "w2", workers=2)),
                      ("4 workers", run(stream, tmp_path / "w4", workers=4)),
                      ("2 processes", run(stream, tmp_path / "p2", processes=2))):
        for output in OUTPUTS:
            assert got[output] == one[output], f"{name}: {output} differs"


def test_a_review_entry_is_identified_by_actor_model_and_window(stream, tmp_path):
    entries = [json.loads(line) for line in run(stream, tmp_path / "out")["review_queue.jsonl"]]
    cooldown_ms = int(load().models.anomaly.cooldown_hours * HOUR_MS)
    assert entries and len({e["review_id"] for e in entries}) == len(entries)
    assert all(e["review_id"] == review_id(e["actor"], e["model"], e["ts"] // cooldown_ms) for e in entries)
