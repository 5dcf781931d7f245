"""The marketplace simulator: contract shape, determinism, delivery, ground truth, speed.

Most checks run on one small simulated marketplace (module fixture); one test
runs the default config end to end to pin its size and speed.
"""

from __future__ import annotations

import collections
import statistics
import time
import tracemalloc
from itertools import islice

import pytest

from simulator import (
    SCENARIOS,
    VIOLATION_TYPES,
    SimConfig,
    hard_negatives,
    iter_events,
    labels,
    paced,
    write,
)
from simulator.world import load_world
from tests.simulator_evidence import FIELDS, contract_problems, index_by_actor, insufficient_evidence

SMALL = SimConfig(seed=11, hours=4.0, scale=0.3, brand_registry=True)
TINY = SimConfig(seed=5, hours=2.0, scale=0.1, abusers_per_type=2)
HOME = load_world("home")
MINUTE = 60_000


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_events() -> list[dict]:
    return list(iter_events(SMALL))


@pytest.fixture(scope="module")
def small_labels() -> list[dict]:
    return labels(SMALL)


@pytest.fixture(scope="module")
def by_actor(small_events) -> dict[str, list[dict]]:
    return index_by_actor(small_events)


# ---- determinism ----------------------------------------------------------------------------------


def test_same_config_gives_identical_output():
    assert list(iter_events(TINY)) == list(iter_events(TINY))
    assert labels(TINY) == labels(TINY)
    assert hard_negatives(TINY) == hard_negatives(TINY)


def test_different_seed_gives_different_output():
    other = SimConfig(seed=6, hours=TINY.hours, scale=TINY.scale, abusers_per_type=TINY.abusers_per_type)
    assert list(islice(iter_events(TINY), 2000)) != list(islice(iter_events(other), 2000))
    assert labels(TINY) != labels(other)


def test_write_is_byte_identical_and_counts_lines(tmp_path):
    counts = write(TINY, tmp_path / "a")
    write(TINY, tmp_path / "b")
    for name, key in (("events.jsonl", "events"), ("labels.jsonl", "labels"),
                      ("hard_negatives.jsonl", "hard_negatives")):
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes(), name
        assert first.count(b"\n") == counts[key] > 0, name


# ---- the contract -------------------------------------------------------------------------------


def test_every_event_has_the_contract_fields_and_types(small_events):
    problems = collections.Counter()
    for event in small_events:
        for problem in contract_problems(event):
            problems[f"{event.get('type')}: {problem}"] += 1
    assert not problems, problems.most_common(10)
    assert {e["type"] for e in small_events} == set(FIELDS)


def test_live_stats_count_exactly_the_comments_of_their_interval(small_events):
    first_copies = {e["event_id"]: e for e in small_events}.values()
    per_live = collections.defaultdict(list)
    for event in first_copies:
        if event["type"] in ("live.stats", "live.comment"):
            per_live[event["live_id"]].append(event)
    for events in per_live.values():
        pending = 0
        for event in sorted(events, key=lambda e: (e["ts"], e["type"] == "live.stats")):
            if event["type"] == "live.comment":
                pending += 1
            else:
                assert event["comments"] == pending
                pending = 0


# ---- delivery -------------------------------------------------------------------------------------


def test_redeliveries_exist_and_are_identical_copies(small_events):
    first: dict[str, dict] = {}
    repeats = 0
    for event in small_events:
        if event["event_id"] in first:
            repeats += 1
            assert event == first[event["event_id"]]
            assert event is not first[event["event_id"]]
        else:
            first[event["event_id"]] = event
    assert 0.001 * len(first) < repeats < 0.01 * len(first)


def test_late_arrivals_exist_and_stay_within_the_bound(small_events):
    newest, late, worst = 0, 0, 0
    for event in small_events:
        if event["ts"] < newest:
            late += 1
            worst = max(worst, newest - event["ts"])
        newest = max(newest, event["ts"])
    assert late > 0.005 * len(small_events)
    assert 0 < worst <= SMALL.out_of_order_seconds * 1000


def test_brand_registrations_come_first_and_name_every_protected_brand(small_events, small_labels):
    registered = [e for e in small_events if e["type"] == "brand.registered"]
    assert {e["brand"] for e in registered} == set(HOME.protected)
    first_counterfeit = min(x["evidence_ts"] for x in small_labels if x["violation_type"] == "counterfeit_listing")
    late = [e for e in registered if HOME.protected[e["brand"]].registered == "late"]
    assert late and all(SMALL.start_ts < e["ts"] < first_counterfeit for e in late)
    assert small_events[:len(registered) - len(late)] == [e for e in registered if e not in late]


def test_brand_registrations_follow_the_contract_once_it_knows_them():
    from pipeline.contract.events import TOPIC_OF_TYPE

    has_registry = any(e["type"] == "brand.registered" for e in islice(iter_events(TINY), 100))
    assert has_registry == ("brand.registered" in TOPIC_OF_TYPE)


def test_events_stay_inside_the_simulated_span(small_events):
    end = SMALL.start_ts + int(SMALL.hours * 3_600_000)
    assert all(SMALL.start_ts <= e["ts"] < end for e in small_events)


# ---- ground truth -----------------------------------------------------------------------------------


def test_labels_cover_every_catalog_type(small_labels):
    assert {label["violation_type"] for label in small_labels} == set(VIOLATION_TYPES)
    assert all(set(label) == {"actor", "violation_type", "evidence_ts"} for label in small_labels)
    assert len({(label["actor"], label["violation_type"]) for label in small_labels}) == len(small_labels)


def test_every_label_points_at_an_event_of_its_actor(small_labels, by_actor):
    for label in small_labels:
        events = by_actor[label["actor"]]
        assert events, label
        assert any(e["ts"] == label["evidence_ts"] for e in events), label


def test_abuse_starts_after_the_first_hour(small_labels):
    assert min(label["evidence_ts"] for label in small_labels) >= SMALL.start_ts + 3_600_000


def test_evidence_is_sufficient_as_documented(small_labels, by_actor):
    assert not insufficient_evidence(HOME, small_labels, by_actor)


@pytest.mark.parametrize("cfg", [SimConfig(seed=21, hours=0.5, scale=0.1), SimConfig(seed=24, hours=26.0, scale=0.05)],
                         ids=["half-hour", "26-hours"])
def test_evidence_holds_for_short_and_multi_day_streams(cfg):
    all_labels = labels(cfg)
    end = cfg.start_ts + int(cfg.hours * 3_600_000)
    assert {label["violation_type"] for label in all_labels} == set(VIOLATION_TYPES)
    assert all(cfg.start_ts < label["evidence_ts"] < end for label in all_labels)
    assert not insufficient_evidence(HOME, all_labels, index_by_actor(list(iter_events(cfg))))


# ---- hard negatives -------------------------------------------------------------------------------


def test_hard_negatives_cover_every_scenario_and_are_never_labelled(small_labels, by_actor):
    negatives = hard_negatives(SMALL)
    assert {n["scenario"] for n in negatives} == set(SCENARIOS)
    labelled = {label["actor"] for label in small_labels}
    assert not labelled & {n["actor"] for n in negatives}
    assert all(by_actor[n["actor"]] for n in negatives)


def test_hard_negatives_really_look_suspicious(by_actor):
    negatives = collections.defaultdict(list)
    for entry in hard_negatives(SMALL):
        negatives[entry["scenario"]].append(by_actor[entry["actor"]])
    for events in negatives["organic_viral_live"]:  # the audience grows >= 6x and chat grows with it
        lives = collections.defaultdict(list)
        for e in events:
            if e["type"] == "live.stats":
                lives[e["live_id"]].append(e)
        assert any(max(s["viewers"] for s in st) >= 6 * statistics.median(s["viewers"] for s in st[10:25])
                   and max(s["comments"] for s in st) >= 3 * max(1, max(s["comments"] for s in st[10:25]))
                   for st in lives.values() if len(st) > 30)
    for events in negatives["genuine_flash_sale"]:  # a burst of orders from old, distinct accounts
        orders = [e for e in events if e["type"] == "order.placed"]
        burst = max((sum(1 for o in orders if a["ts"] <= o["ts"] < a["ts"] + 30 * MINUTE), a["ts"]) for a in orders)
        in_burst = [o for o in orders if burst[1] <= o["ts"] < burst[1] + 30 * MINUTE]
        assert burst[0] >= 40 and len({o["device_id"] for o in in_burst}) >= 0.9 * len(in_burst)
    for events in negatives["traveller_login"]:  # abroad on a new device, no payout change soon after
        logins = [e for e in events if e["type"] == "account.login"]
        home = logins[0]["country"]
        abroad = next(e for e in logins if e["country"] != home)
        assert not any(e["type"] == "account.payout_changed" and 0 <= e["ts"] - abroad["ts"] <= 60 * MINUTE
                       for e in events)
    for events in negatives["viewer_asks_whatsapp"]:
        asks = [e for e in events if e["type"] == "live.comment" and e["text"] in HOME.wording.viewer_contact_asks]
        assert asks and not any(e["by_host"] for e in asks)


# ---- laziness, memory, pacing, speed -----------------------------------------------------------


def test_iter_events_is_lazy_for_long_runs():
    started = time.perf_counter()
    first = list(islice(iter_events(SimConfig(hours=48.0)), 1000))
    assert len(first) == 1000
    assert time.perf_counter() - started < 2.5  # ~0.2 s: nothing is generated ahead


def test_memory_does_not_grow_with_hours():
    def peak_bytes(hours: float) -> int:
        tracemalloc.start()
        for _ in iter_events(SimConfig(seed=3, hours=hours, scale=0.02, abusers_per_type=2)):
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    short, long = peak_bytes(1.5), peak_bytes(6.0)  # four times the hours, same memory
    assert long < 1.5 * short, (short, long)


def test_paced_follows_event_time_at_the_speedup():
    now = [100.0]
    sleeps = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    events = [{"ts": 0}, {"ts": 60_000}, {"ts": 30_000}, {"ts": 120_000}]
    out = list(paced(events, 60.0, clock=lambda: now[0], sleep=fake_sleep))
    assert out == events
    assert sleeps == [1.0, 1.0] and now[0] == 102.0
    with pytest.raises(ValueError):
        list(paced(events, 0.0))


def test_default_config_size():
    # Its speed is the benchmark's to measure (bench/bench.py), not a timed unit test's.
    assert 150_000 <= sum(1 for _ in iter_events(SimConfig())) <= 300_000  # 238k for seed 7
