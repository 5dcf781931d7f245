"""Oversized texts and records: bounded evidence, one normalisation per text, no record over the cap.

Before, a 1 MB `live.transcript` cost ~30 s of CPU (the text was lower-cased
once per match) and its violation copied the whole text (a 6.7 MB record);
a valid 600 KB listing made a 1.2 MB violation, over Kafka's message limit;
now every record is cut to `[output] max_record_bytes`.
The time is measured by `bench/bench.py` (a line for a 1 MB transcript);
these tests check the bounds a user sees.
"""

from __future__ import annotations

import json

import detectors.text as text_module
from pipeline.config import load
from pipeline.contract.events import LiveTranscript
from pipeline.engine.detect import DetectShard
from pipeline.enforce.policy import load_policy
from detectors.registry import registry
from sinks.metrics import Metrics
from tests.conftest import replay
from tests.test_hostile_input import T0, listing, write

SPEECH = "dm me on whatsapp for the deal, this tea cures diabetes! call me 555 0134. "


def transcript(text: str, i: int = 0) -> dict:
    return {"event_id": f"t{i}", "type": "live.transcript", "ts": T0 + i * 1000, "live_id": "V1",
            "creator_id": "C1", "text": text}


def test_a_long_transcript_gives_bounded_evidence_that_quotes_around_its_matches(tmp_path):
    speech = (SPEECH * 900)[:60_000]  # under [input] max_text_chars, a match every few words
    _, out = replay(write(tmp_path / "long.jsonl", [json.dumps(transcript(speech)).encode()]), tmp_path / "out")

    found = {v["violation_type"]: v for v in out["violations.jsonl"]}
    assert set(found) == {"off_platform_solicitation", "misleading_claims"}
    for v in found.values():
        evidence = v["evidence"]
        assert len(json.dumps(v)) < 10_000
        assert evidence["text_length"] == 60_000 and evidence["text"] == speech[:1_000] + "…"
        assert len(evidence["matched"]) <= 10
    solicitation = found["off_platform_solicitation"]["evidence"]
    assert solicitation["matched_total"] > 1_000  # every match counted, ten quoted
    assert "dm me on whatsapp for the deal" in solicitation["normalized_text"]


def test_a_short_text_is_quoted_whole_as_before(tmp_path):
    _, out = replay(write(tmp_path / "short.jsonl", [json.dumps(transcript(SPEECH)).encode()]), tmp_path / "out")
    for v in out["violations.jsonl"]:
        assert v["evidence"]["text"] == SPEECH and "text_length" not in v["evidence"]
        assert "evidence_truncated" not in v


def test_a_huge_listing_makes_a_violation_under_the_record_cap_that_says_it_was_cut(tmp_path):
    """A 1.2 MB title (the text limit raised to let it in): its counterfeit evidence quotes the title."""
    title = "Gucci replica bag, mirror quality " + "very nice leather " * 65_000
    line = json.dumps(listing(0, seller="S9", title=title, brand="Gucci", category="bags")).encode()
    config = {"input": {"max_text_chars": 2_000_000, "max_line_bytes": 4_000_000}}
    _, out = replay(write(tmp_path / "big.jsonl", [line]), tmp_path / "out", config=config)

    written = (tmp_path / "out" / "violations.jsonl").read_bytes().splitlines()
    assert written and all(len(record) <= load().output.max_record_bytes for record in written)
    counterfeit = next(v for v in out["violations.jsonl"] if v["violation_type"] == "counterfeit_listing")
    assert counterfeit["evidence_truncated"] is True
    assert counterfeit["evidence"]["listing_id"] == "S9-L0"  # what identifies the finding stays


def test_every_text_detector_shares_one_normalisation_of_a_long_text(monkeypatch):
    calls = []
    real = text_module._normalize
    monkeypatch.setattr(text_module, "_normalize", lambda text: calls.append(len(text)) or real(text))
    config = load()
    detectors = [(entry, d) for entry, d in registry().build(config.detectors) if LiveTranscript in d.event_types]
    shard = DetectShard(detectors, load_policy(None), Metrics(), allowed_lateness_ms=300_000,
                        dedupe_horizon_ms=7_200_000, idle_eviction_ms=21_600_000, shards=config.job.shards)
    event = LiveTranscript(**{k: v for k, v in transcript((SPEECH * 900)[:60_000]).items() if k != "type"})

    out = shard.on_batch([(0, [event])], now=0.0)

    assert len(detectors) >= 2 and len(out) == 2
    assert calls == [60_000]
