"""The real dataflow over small files: nothing lost, nothing counted twice."""

from __future__ import annotations

import pytest

from pipeline.contract.events import DECODE_REASONS
from tests.conftest import replay


@pytest.fixture
def mixed_file(tmp_path, sample_events, malformed_events):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(sample_events.read_bytes() + b"\n" + malformed_events.read_bytes())
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_every_line_is_processed_duplicated_or_dead_lettered(tmp_path, mixed_file, workers):
    metrics, out = replay(mixed_file, tmp_path / "out", workers=workers)
    lines = sum(1 for line in mixed_file.read_bytes().splitlines() if line.strip())
    read = metrics.total(metrics.input_records)
    valid = metrics.total(metrics.events)
    duplicates = metrics.total(metrics.duplicates)
    by_reason = metrics.by_label(metrics.dead_letters, "reason")
    undecodable = sum(n for reason, n in by_reason.items() if reason in DECODE_REASONS)
    assert read == lines == 22
    assert valid + undecodable == read
    assert (valid - duplicates, duplicates, undecodable) == (15, 1, 6)
    # the sample's two appeal events name a violation this job never issued: rejected with a reason
    rejected = [d for d in out["dead_letter.jsonl"] if d["reason"] not in DECODE_REASONS]
    assert len(rejected) == 2 and all("v-abc" in d["raw"] for d in rejected)
    assert len(out["dead_letter.jsonl"]) == undecodable + len(rejected)


def test_dead_letters_carry_raw_error_source_and_time(tmp_path, mixed_file):
    _, out = replay(mixed_file, tmp_path / "out")
    letters = {d["source"]: d for d in out["dead_letter.jsonl"] if d["reason"] in DECODE_REASONS}
    # the malformed lines follow the 16 sample lines and one blank line
    assert set(letters) == {f"mixed.jsonl:{n}" for n in range(18, 24)}
    truncated = letters["mixed.jsonl:18"]
    assert truncated["raw"].startswith('{"event_id":"x-1"') and "not valid JSON" in truncated["error"]
    assert "buyer:B1" in letters["mixed.jsonl:22"]["error"]
    assert all(isinstance(d["ts"], int) and d["reason"] for d in letters.values())


def test_a_redelivered_event_id_is_counted_once(tmp_path, sample_events):
    path = tmp_path / "redelivered.jsonl"
    line = sample_events.read_bytes().splitlines()[4]  # a live.stats event
    path.write_bytes(b"\n".join([line] * 5) + b"\n")
    metrics, _ = replay(path, tmp_path / "out")
    assert metrics.total(metrics.events) == 5
    assert metrics.total(metrics.duplicates) == 4


def test_a_governance_redelivery_is_counted_once(tmp_path, sample_events):
    path = tmp_path / "appeals.jsonl"
    line = next(l for l in sample_events.read_bytes().splitlines() if b"education.completed" in l)
    path.write_bytes(line + b"\n" + line + b"\n")
    metrics, _ = replay(path, tmp_path / "out")
    assert metrics.total(metrics.duplicates) == 1


def test_an_empty_file_gives_empty_outputs(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    metrics, out = replay(path, tmp_path / "out")
    assert metrics.total(metrics.input_records) == 0
    assert set(out) == {"violations.jsonl", "actions.jsonl", "review_queue.jsonl", "standing.jsonl",
                        "dead_letter.jsonl", "incentives.jsonl"}
    assert all(records == [] for records in out.values())
