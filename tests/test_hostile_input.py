"""Poison pills: no single input line can crash the job, hold it up or lose the valid events around it.

Each test performs the attack through the real dataflow (`shopguard replay`
in-process, or the command in a subprocess where memory is the point) and
checks what a user relies on: the job finishes, the bad line is a dead
letter whose reason names what was wrong, and the valid events around it
still make their findings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.contract.events import InvalidEvent, decode
from pipeline.engine.job import summary
from tests.conftest import replay

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_793_491_200_000


def listing(i: int, seller: str = "S2", **changes) -> dict:
    """One of a burst of near-duplicate listings: five of them within an hour are listing spam."""
    return {"event_id": f"{seller}-{i}", "type": "listing.created", "ts": T0 + i * 60_000, "seller_id": seller,
            "listing_id": f"{seller}-L{i}", "title": f"Phone case model {i}", "category": "phones", "price": 9.5,
            "currency": "USD", "brand": None, "original_price": None, "image_hash": "aaaaaaaaaaaaaaaa", "stock": 5,
            **changes}


def spam_burst(seller: str = "S2") -> list[bytes]:
    return [json.dumps(listing(i, seller)).encode() for i in range(6)]


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def around(poison: bytes) -> list[bytes]:
    """The poison line in the middle of a spam burst: the burst must still be found."""
    burst = spam_burst()
    return burst[:3] + [poison] + burst[3:]


def spam_found(out: dict) -> bool:
    return [(v["actor"], v["violation_type"]) for v in out["violations.jsonl"]] == [("seller:S2", "listing_spam")]


def deep(levels: int) -> bytes:
    """A valid event carrying an extra field nested `levels` deep."""
    body = json.dumps(listing(99, seller="S7"))[:-1]
    return body.encode() + b', "x": ' + b"[" * levels + b"]" * levels + b"}"


# ---- nesting, lines, fields ----------------------------------------------------------------------


def test_a_10000_deep_object_is_a_dead_letter_and_the_job_goes_on(tmp_path):
    metrics, out = replay(write(tmp_path / "deep.jsonl", around(deep(10_000))), tmp_path / "out")

    (dead,) = out["dead_letter.jsonl"]
    assert dead["reason"] == "too_deep" and dead["source"] == "deep.jsonl:4"
    assert "nested deeper than 64 levels" in dead["error"]
    assert spam_found(out)
    assert metrics.total(metrics.events) == 6


def test_nesting_is_limited_by_configuration(tmp_path):
    lines = around(deep(10)) + [deep(3).replace(b'"S7-99"', b'"S7-100"')]
    _, out = replay(write(tmp_path / "nested.jsonl", lines), tmp_path / "out", config={"input": {"max_depth": 5}})
    assert [(d["source"], d["reason"]) for d in out["dead_letter.jsonl"]] == [("nested.jsonl:4", "too_deep")]
    assert spam_found(out)


@pytest.mark.parametrize("poison, reason, words", [
    (listing(50, seller="S7", title="x" * 70_000), "field_too_long",
     "field `title`: 70,000 characters, more than the limit of 65,536"),
    (listing(50, seller="S7", ts=5), "ts_out_of_range", "field `ts`: 5 is not a plausible event time"),
    (listing(50, seller="S7", ts=2**70), "ts_out_of_range", f"field `ts`: {2**70} is not a plausible"),
    (listing(50, seller="S7", ts=32_503_680_000_000), "ts_out_of_range",  # the year 3000
     "field `ts`: 32503680000000 is not a plausible event time"),
])
def test_an_implausible_field_is_a_dead_letter_that_says_which(tmp_path, poison, reason, words):
    _, out = replay(write(tmp_path / "bad.jsonl", around(json.dumps(poison).encode())), tmp_path / "out")
    (dead,) = out["dead_letter.jsonl"]
    assert dead["reason"] == reason
    assert words in dead["error"]
    assert spam_found(out)


def test_a_line_over_the_limit_is_a_dead_letter_with_an_excerpt_and_its_size(tmp_path):
    poison = json.dumps(listing(50, seller="S7", title="y" * 5_000)).encode()
    config = {"input": {"max_line_bytes": 4_096, "dead_letter_raw_bytes": 100}}
    _, out = replay(write(tmp_path / "long.jsonl", around(poison)), tmp_path / "out", config=config)
    (dead,) = out["dead_letter.jsonl"]
    assert dead["reason"] == "line_too_long" and dead["source"] == "long.jsonl:4"
    assert dead["raw"] == poison[:100].decode() and dead["raw_bytes"] == len(poison)
    assert f"{len(poison):,} bytes, more than the limit of 4,096" in dead["error"]
    assert spam_found(out)


def test_a_dead_letter_quotes_only_the_beginning_of_a_long_invalid_line(tmp_path):
    poison = b'{"event_id": "broken", "title": "' + b"z" * 50_000  # not even JSON
    _, out = replay(write(tmp_path / "cut.jsonl", around(poison)), tmp_path / "out")
    (dead,) = out["dead_letter.jsonl"]
    assert dead["reason"] == "invalid_json"
    assert len(dead["raw"]) == 16_384 and dead["raw_bytes"] == len(poison)
    # short dead letters stay whole and carry no size
    _, out = replay(write(tmp_path / "short.jsonl", around(b"{not json")), tmp_path / "short")
    assert out["dead_letter.jsonl"][0]["raw"] == "{not json" and "raw_bytes" not in out["dead_letter.jsonl"][0]


def test_a_200_mb_line_is_neither_read_whole_nor_copied_into_its_dead_letter(tmp_path):
    """Memory, not speed: the job's peak RSS with the huge line stays near its peak without it."""
    burst = spam_burst()
    plain = write(tmp_path / "plain.jsonl", burst)
    huge = tmp_path / "huge.jsonl"
    start, chunk, end = b'{"event_id": "huge", "title": "', b"A" * (1 << 20), b'"}'
    with open(huge, "wb") as f:
        f.write(b"\n".join(burst[:3]) + b"\n" + start)
        for _ in range(200):
            f.write(chunk)
        f.write(end + b"\n" + b"\n".join(burst[3:]) + b"\n")

    base_kb, _ = _replay_peak_rss(plain, tmp_path / "plain-out")
    huge_kb, out = _replay_peak_rss(huge, tmp_path / "huge-out")

    assert huge_kb - base_kb < 64 * 1024, f"peak RSS grew by {(huge_kb - base_kb) // 1024} MB for a 200 MB line"
    (dead,) = [json.loads(line) for line in (out / "dead_letter.jsonl").read_text().splitlines()]
    assert dead["reason"] == "line_too_long" and dead["raw_bytes"] == len(start) + 200 * len(chunk) + len(end)
    assert dead["raw"].startswith('{"event_id": "huge"') and len(dead["raw"]) == 16_384
    assert [json.loads(line)["actor"] for line in (out / "violations.jsonl").read_text().splitlines()] == [
        "seller:S2"]


def _replay_peak_rss(events: Path, out: Path) -> tuple[int, Path]:
    """`shopguard replay` in a fresh process; its peak RSS in kB."""
    code = ("import resource, sys; from pipeline.cli.main import main; "
            f"rc = main(['replay', {str(events)!r}, '--out', {str(out)!r}]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1]), out


# ---- byte-order mark, blank lines, repeated keys ---------------------------------------------------


def test_a_byte_order_mark_at_the_start_of_a_file_is_tolerated(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(spam_burst()) + b"\n")
    metrics, out = replay(path, tmp_path / "out")
    assert out["dead_letter.jsonl"] == []
    assert metrics.total(metrics.events) == 6 and spam_found(out)


def test_blank_lines_are_counted_in_a_metric_and_the_summary(tmp_path):
    burst = spam_burst()
    path = tmp_path / "blank.jsonl"
    path.write_bytes(burst[0] + b"\n\n" + burst[1] + b"\r\n   \n\t\r\n" + b"\n".join(burst[2:]) + b"\n\n")
    metrics, out = replay(path, tmp_path / "out")

    assert metrics.by_label(metrics.blank_records, "source") == {"file": 4}
    assert metrics.total(metrics.input_records) == 6 and out["dead_letter.jsonl"] == [] and spam_found(out)
    assert "  blank lines      4\n" in summary(metrics, str(tmp_path / "out"), 1.0)


def test_a_repeated_type_key_names_every_type_it_was_given():
    raw = (b'{"event_id": "e", "type": "live.ended", "ts": 1793491200000, "live_id": "V", "creator_id": "C", '
           b'"type": "listing.removed"}')
    with pytest.raises(InvalidEvent) as err:
        decode(raw)
    assert err.value.reason == "duplicate_type"
    assert "the key `type` is given 2 times ('live.ended', 'listing.removed')" in str(err.value)


def test_an_unknown_type_names_the_type_that_was_sent():
    with pytest.raises(InvalidEvent, match="unknown event type 'live.teleport'"):
        decode(b'{"event_id": "e", "type": "live.teleport", "ts": 1793491200000, "extra": {"type": "live.ended"}}')


def test_a_poison_pill_sampled_for_the_kafka_reader_pace_is_skipped_not_raised():
    """The Kafka reader samples one record in `Pace.EVERY` for its pace; a 10,000-deep one crashed the job
    (and every restart) when it fell on a sample."""
    from pipeline.sources.kafka import Pace
    from pipeline.sources.raw import RawRecord
    from tests.kafka_jobs import poison_pills

    for pill in poison_pills():
        pace = Pace()
        for offset in range(Pace.EVERY):
            pace.see(RawRecord(pill, "listing-events/0", offset, offset))
        assert pace.broker_ms(30_000) == 1  # nothing learned from it
