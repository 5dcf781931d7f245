"""Timestamp attacks: one event dated in the future must not move event time for anyone else.

Before, one event at `ts` + 1 day in a shared category moved that shard's
watermark a day ahead: the sweep cleared its dedupe ids and detector state
and every later valid event of the shard was "late" (violations and actions
lost from a single line). Now an event dated beyond the plausible range is a
dead letter (`ts_out_of_range`; `ts_in_future`: ahead of the wall clock for
`run`, of the stream's progress for a replay), and every step's watermark is
the 4th newest event time it has seen, so an event within the range still
cannot move it alone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import pytest

from pipeline.config import load
from pipeline.contract.events import ListingCreated
from pipeline.contract.routing import shard_of
from pipeline.engine.detect import DetectShard
from pipeline.engine.job import read_file, run_job
from pipeline.enforce.policy import load_policy
from simulator import SimConfig, iter_events, write_lines
from sinks.metrics import Metrics
from tests.conftest import read_jsonl, replay
from tests.test_hostile_input import listing, spam_burst, spam_found, write

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SIM = SimConfig(seed=7, hours=2.0, scale=0.5)  # ~56k events, every violation type


def as_set(records: list[dict]) -> set[str]:
    return {json.dumps(r, sort_keys=True) for r in records}


@pytest.fixture(scope="module")
def marketplace(tmp_path_factory):
    """The simulated marketplace as a file, and what a replay of it finds."""
    folder = tmp_path_factory.mktemp("marketplace")
    events = list(iter_events(SIM))
    write_lines(folder / "events.jsonl", events)
    metrics, out = replay(folder / "events.jsonl", folder / "out")
    return {"folder": folder, "events": events, "out": out, "late": metrics.total(metrics.late_events)}


def future_attack(events: list[dict], out: dict, ahead_ms: int) -> list[dict]:
    """Events dated `ahead_ms` ahead, each into a busy shard where a violation is found later.

    A listing in the category of a pricing violation, an order of a made-up
    seller in the same shard as an order-brushing ring, and a LIVE stats
    event of a made-up creator in the shard of an inflated LIVE.
    """
    first = {v["violation_type"]: v for v in sorted(out["violations.jsonl"], key=lambda v: -v["detected_at"])}
    category = next(e["category"] for e in events if e["type"] == "listing.created"
                    and f"seller:{e['seller_id']}" == first["price_gouging"]["actor"])
    brusher = first["order_brushing"]["actor"].split(":")[1]
    inflater = first["engagement_inflation"]["actor"].split(":")[1]
    seller = next(f"ATK{i}" for i in range(10_000) if shard_of(f"ATK{i}", 64) == shard_of(brusher, 64))
    creator = next(f"ATKC{i}" for i in range(10_000) if shard_of(f"ATKC{i}", 64) == shard_of(inflater, 64))
    at = events[len(events) // 10]["ts"] + ahead_ms
    return [
        {**listing(0, seller=seller), "event_id": f"atk-l-{ahead_ms}", "category": category, "ts": at},
        {"event_id": f"atk-o-{ahead_ms}", "type": "order.placed", "ts": at, "order_id": "O-ATK", "seller_id": seller,
         "buyer_id": "B-ATK", "listing_id": "L-ATK", "amount": 10.0, "currency": "USD", "creator_id": None,
         "live_id": None, "buyer_account_age_days": 400, "device_id": None, "shipping_address_hash": None,
         "payment_hash": None},
        {"event_id": f"atk-s-{ahead_ms}", "type": "live.stats", "ts": at, "live_id": "V-ATK", "creator_id": creator,
         "viewers": 10, "likes": 1, "comments": 1, "shares": 0, "new_followers": 0},
    ]


@pytest.mark.slow
def test_events_dated_beyond_the_lead_are_dead_letters_and_change_nothing(marketplace, tmp_path):
    """60 days ahead of the stream's progress (`max_stream_lead_seconds` is 30 days): dead letters."""
    events, expected = marketplace["events"], marketplace["out"]
    attack = future_attack(events, expected, 60 * DAY_MS)

    metrics, out = replay(inserted(events, attack, tmp_path / "attacked.jsonl"), tmp_path / "out")

    assert same_findings(out, expected)
    assert metrics.total(metrics.late_events) == marketplace["late"]
    assert [(d["reason"], json.loads(d["raw"])["event_id"]) for d in out["dead_letter.jsonl"]] == [
        ("ts_in_future", a["event_id"]) for a in attack]


@pytest.mark.slow
def test_events_dated_within_the_lead_cannot_blind_the_shards_they_land_in(marketplace, tmp_path):
    """20 h ahead: plausible, so used; but no watermark follows one event, so nothing else becomes late
    and every finding is what the same events dated now give (their content counts, their date does not)."""
    events = marketplace["events"]
    attack = future_attack(events, marketplace["out"], 20 * HOUR_MS)
    now = [{**a, "ts": a["ts"] - 20 * HOUR_MS} for a in attack]
    _, expected = replay(inserted(events, now, tmp_path / "dated-now.jsonl"), tmp_path / "expected")

    metrics, out = replay(inserted(events, attack, tmp_path / "attacked.jsonl"), tmp_path / "out")

    assert same_findings(out, expected)
    assert metrics.total(metrics.late_events) == marketplace["late"]
    assert out["dead_letter.jsonl"] == []


def inserted(events: list[dict], attack: list[dict], path: Path) -> Path:
    """The stream with the attack a tenth of the way in."""
    cut = len(events) // 10
    write_lines(path, events[:cut] + attack + events[cut:])
    return path


def same_findings(out: dict, expected: dict) -> bool:
    return all(as_set(out[name]) == as_set(expected[name])
               for name in ("violations.jsonl", "actions.jsonl", "standing.jsonl"))


def test_2_to_the_70_on_an_abusers_own_seller_cannot_date_its_violation_in_the_far_future(tmp_path):
    lines = spam_burst() + [json.dumps(listing(6, ts=2**70)).encode()]
    _, out = replay(write(tmp_path / "events.jsonl", lines), tmp_path / "out")
    assert spam_found(out)
    assert out["violations.jsonl"][0]["detected_at"] < listing(6)["ts"]
    assert [d["reason"] for d in out["dead_letter.jsonl"]] == ["ts_out_of_range"]


def test_run_judges_event_time_against_the_wall_clock(tmp_path):
    now = int(time.time() * 1000)
    lines = [json.dumps(listing(i, ts=now - HOUR_MS + i * 60_000)).encode() for i in range(6)]
    lines.insert(3, json.dumps(listing(50, seller="S7", ts=now + 2 * HOUR_MS)).encode())
    lines.append(json.dumps(listing(51, seller="S7", ts=now + HOUR_MS // 2)).encode())  # within the skew
    config = load(None, {"source": {"kind": "file", "file": {"path": str(write(tmp_path / "e.jsonl", lines))}},
                         "output": {"dir": str(tmp_path / "out")}, "metrics": {"port": 0}})

    metrics = run_job(config, source=read_file, replay=False, workers=1, serve_metrics=False, progress=False)

    (dead,) = read_jsonl(tmp_path / "out" / "dead_letter.jsonl")
    assert dead["reason"] == "ts_in_future" and dead["source"] == "e.jsonl:4"
    assert "is more than [input] max_clock_skew_seconds = 3,600 s ahead of the wall clock" in dead["error"]
    assert metrics.total(metrics.events) == 7
    assert [v["actor"] for v in read_jsonl(tmp_path / "out" / "violations.jsonl")] == ["seller:S2"]


def test_a_replay_follows_a_real_jump_forward_once_four_events_show_it(tmp_path):
    """The price of judging by the stream: after a jump beyond the lead, three events are dead letters."""
    before = [listing(i, seller=f"A{i}") for i in range(5)]
    after = [listing(i, seller=f"B{i}", ts=listing(0)["ts"] + 45 * DAY_MS + i) for i in range(6)]
    _, out = replay(write(tmp_path / "jump.jsonl", [json.dumps(e).encode() for e in before + after]),
                    tmp_path / "out")
    assert [(d["reason"], d["source"]) for d in out["dead_letter.jsonl"]] == [
        ("ts_in_future", f"jump.jsonl:{n}") for n in (6, 7, 8)]
    assert "ahead of the stream's progress (its 4th newest event time, 1793491320000)" in \
        out["dead_letter.jsonl"][0]["error"]


def test_three_future_events_cannot_make_a_busy_shards_later_events_late():
    """The watermark defence alone (the decode step's range check bypassed): a quorum of four moves it."""
    config = load()
    shard = DetectShard([], load_policy(None), Metrics(), allowed_lateness_ms=300_000, dedupe_horizon_ms=7_200_000,
                        idle_eviction_ms=21_600_000, shards=config.job.shards)
    metrics = shard.metrics

    def feed(events: list[ListingCreated]) -> float:
        late_before = metrics.total(metrics.late_events)
        shard.on_batch([(0, events)], now=0.0)
        return metrics.total(metrics.late_events) - late_before

    busy = [msgspec.convert(listing(i, seller=f"S{i % 7}"), ListingCreated) for i in range(300)]
    future = [msgspec.convert(listing(1000 + i, ts=listing(0)["ts"] + 10 * 24 * HOUR_MS), ListingCreated)
              for i in range(3)]
    later = [msgspec.convert(listing(300 + i, seller=f"S{i % 7}"), ListingCreated) for i in range(100)]
    assert config.job.allowed_lateness_seconds == 300
    assert (feed(busy[:200]), feed(future), feed(busy[200:] + later)) == (0, 0, 0)
    fourth = [msgspec.convert(listing(2000, ts=listing(0)["ts"] + 10 * 24 * HOUR_MS), ListingCreated)]
    assert (feed(fourth), feed([msgspec.convert(listing(500), ListingCreated)])) == (0, 1)
