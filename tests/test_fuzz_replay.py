"""Property-based attack on a whole replay (Hypothesis): generated files through the real dataflow.

A file mixes valid contract events (some redelivered), near-valid ones,
arbitrary bytes and blank lines. Whatever it holds, the replay finishes, and
every line is accounted for: a blank line is counted, every other line is a
record that is either an event (used, a duplicate or late) or a dead letter,
and exactly the lines the decoder refuses are dead letters, once each.
Fewer cases than the decoder-level properties: each one runs the flow.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.contract.events import DECODE_REASONS, InvalidEvent
from pipeline.engine.dataflow import InputGate
from pipeline.sources.raw import RawRecord
from tests.conftest import replay
from tests.test_fuzz_decode import CONFIG, LIMITS, SAMPLES, inputs

valid = st.builds(lambda event, n: json.dumps({**event, "event_id": f"{event['event_id']}-{n}"}).encode(),
                  st.sampled_from(SAMPLES), st.integers(0, 3))  # few ids: redeliveries happen
lines = st.lists(valid | inputs | st.just(b""), min_size=1, max_size=40)


def refused_lines(data: bytes) -> tuple[set[int], int]:
    """Line numbers the decoder refuses, read as the file source reads them, and the count of blank lines."""
    gate = InputGate(CONFIG.input, wall_clock=False)
    refused, blank = set(), 0
    for number, line in enumerate(data.split(b"\n")[:-1], 1):
        line = line.rstrip(b"\r\n")
        if not line or line.isspace():
            blank += 1
            continue
        try:
            gate.admit(RawRecord(line, "fuzz.jsonl", number, 0), now_ms=0)
        except InvalidEvent:
            refused.add(number)
    return refused, blank


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines)
def test_a_replay_of_any_file_accounts_for_every_line(generated):
    data = b"\n".join(generated) + b"\n"
    refused, blank = refused_lines(data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.jsonl"
        path.write_bytes(data)
        metrics, out = replay(path, Path(folder) / "out", config={"input": LIMITS})

    records = data.count(b"\n") - blank
    assert metrics.total(metrics.blank_records) == blank
    assert metrics.total(metrics.input_records) == records
    undecodable = [d for d in out["dead_letter.jsonl"] if d["reason"] in DECODE_REASONS]
    assert {int(d["source"].rsplit(":", 1)[1]) for d in undecodable} == refused
    assert len(undecodable) == len(refused)
    events = metrics.total(metrics.events)
    assert events + len(refused) == records
    assert metrics.total(metrics.duplicates) + metrics.total(metrics.late_events) <= events
