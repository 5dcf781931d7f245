"""The marketplace simulator: contract shape, determinism, delivery, ground truth, speed.

Most checks run on one small simulated marketplace (module fixture); one test
runs the default config end to end to pin its size and speed.
"""

from __future__ import annotations

import collections
import re
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
from simulator.catalog import CATEGORY_BY_NAME, LUXURY_BRANDS
from simulator.phrases import PROHIBITED_ITEMS, REPLICA_WORDS, VIEWER_CONTACT_ASKS

SMALL = SimConfig(seed=11, hours=4.0, scale=0.3)
TINY = SimConfig(seed=5, hours=2.0, scale=0.1, abusers_per_type=2)
MINUTE = 60_000

# ---- the contract, as a table: field -> allowed Python types ------------------------------

STR, INT, NUM, BOOL, NONE = (str,), (int,), (int, float), (bool,), (type(None),)
FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "listing.created": {"seller_id": STR, "listing_id": STR, "title": STR, "category": STR, "price": NUM,
                        "currency": STR, "brand": STR + NONE, "original_price": NUM + NONE,
                        "image_hash": STR + NONE, "stock": INT},
    "listing.removed": {"seller_id": STR, "listing_id": STR},
    "live.started": {"live_id": STR, "creator_id": STR, "seller_id": STR + NONE, "title": STR},
    "live.stats": {"live_id": STR, "creator_id": STR, "viewers": INT, "likes": INT, "comments": INT,
                   "shares": INT, "new_followers": INT},
    "live.transcript": {"live_id": STR, "creator_id": STR, "text": STR},
    "live.comment": {"live_id": STR, "creator_id": STR, "user_id": STR, "text": STR, "by_host": BOOL},
    "live.ended": {"live_id": STR, "creator_id": STR},
    "order.placed": {"order_id": STR, "seller_id": STR, "buyer_id": STR, "listing_id": STR, "amount": NUM,
                     "currency": STR, "creator_id": STR + NONE, "live_id": STR + NONE,
                     "buyer_account_age_days": INT, "device_id": STR + NONE,
                     "shipping_address_hash": STR + NONE, "payment_hash": STR + NONE},
    "order.refunded": {"order_id": STR, "seller_id": STR, "buyer_id": STR, "amount": NUM, "reason": STR + NONE},
    "account.login": {"actor": STR, "device_id": STR, "ip": STR, "country": STR},
    "account.payout_changed": {"actor": STR, "payout_hash": STR},
}
FIELDS["listing.updated"] = FIELDS["listing.created"]
POSITIVE = {"price", "amount"}
NON_NEGATIVE = {"stock", "viewers", "likes", "comments", "shares", "new_followers", "buyer_account_age_days"}
PATTERNS = {"image_hash": re.compile(r"[0-9a-f]{16}"), "currency": re.compile(r"[A-Z]{3}"),
            "country": re.compile(r"[A-Z]{2}"), "actor": re.compile(r"(seller|creator):[^\s:]+")}
LUXURY_LEVEL = {(category, brand): level for category, brands in LUXURY_BRANDS.items() for brand, level in brands}


def contract_problems(event: dict) -> list[str]:
    """What is wrong with one event, per the table above (empty when it is fine)."""
    fields = FIELDS.get(event.get("type"))
    if fields is None:
        return [f"unknown type {event.get('type')!r}"]
    problems = []
    if not isinstance(event.get("event_id"), str) or not 1 <= len(event["event_id"]) <= 128:
        problems.append("event_id")
    if type(event.get("ts")) is not int:
        problems.append("ts")
    expected = set(fields) | {"event_id", "type", "ts"}
    if set(event) != expected:
        problems.append(f"fields {sorted(set(event) ^ expected)}")
    for name, types in fields.items():
        value = event.get(name)
        if type(value) not in types:  # exact types: a bool is not an int here
            problems.append(f"{name}={value!r}")
        elif name in POSITIVE and not value > 0 or name in NON_NEGATIVE and value < 0:
            problems.append(f"{name}={value!r} out of range")
        elif name in PATTERNS and value is not None and not PATTERNS[name].fullmatch(value):
            problems.append(f"{name}={value!r} malformed")
    return problems


def actors_of(event: dict) -> set[str]:
    kind = event["type"]
    if kind.startswith("account."):
        return {event["actor"]}
    if kind.startswith("live."):
        return {f"creator:{event['creator_id']}"}
    return {f"seller:{event['seller_id']}"}


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_events() -> list[dict]:
    return list(iter_events(SMALL))


@pytest.fixture(scope="module")
def small_labels() -> list[dict]:
    return labels(SMALL)


def index_by_actor(events: list[dict]) -> dict[str, list[dict]]:
    """Each actor's events (first deliveries only) in event-time order."""
    seen, out = set(), collections.defaultdict(list)
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        for actor in actors_of(event):
            out[actor].append(event)
    for events in out.values():
        events.sort(key=lambda e: e["ts"])
    return out


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


def _evidence_event(label: dict, by_actor: dict, kinds: tuple[str, ...]) -> dict:
    return next(e for e in by_actor[label["actor"]] if e["ts"] == label["evidence_ts"] and e["type"] in kinds)


def _engagement_is_bought(label, by_actor) -> bool:
    stats = _evidence_event(label, by_actor, ("live.stats",))
    live = [e for e in by_actor[label["actor"]] if e["type"] == "live.stats" and e["live_id"] == stats["live_id"]]
    at = live.index(stats)
    before = live[max(0, at - 15):at - 2]
    viewers = statistics.median(e["viewers"] for e in before)
    likes = statistics.mean(e["likes"] for e in before)
    follows = statistics.mean(e["new_followers"] for e in before)
    bought_viewers = stats["viewers"] >= 4 * viewers and stats["likes"] <= 3 * likes + 10
    bought_follows = stats["new_followers"] >= max(5, 10 * follows)
    bought_likes = stats["likes"] >= 8 * max(likes, 1) and stats["viewers"] <= 2 * viewers
    return bought_viewers or bought_follows or bought_likes


def _brushing_is_visible(label, by_actor) -> bool:
    fresh = [e for e in by_actor[label["actor"]] if e["type"] == "order.placed"
             and e["ts"] <= label["evidence_ts"] and e["buyer_account_age_days"] <= 3
             and e["ts"] >= label["evidence_ts"] - 40 * MINUTE]
    devices, payments = {e["device_id"] for e in fresh}, {e["payment_hash"] for e in fresh}
    return len(fresh) >= 10 and len(devices) <= 4 and len(payments) <= 3


def _price_history(label, by_actor, listing_id) -> list[float]:
    return [e["price"] for e in by_actor[label["actor"]] if e["type"].startswith("listing.")
            and e.get("listing_id") == listing_id and e["ts"] < label["evidence_ts"] and "price" in e]


def _gouged(label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created", "listing.updated"))
    history = _price_history(label, by_actor, event["listing_id"])
    if event["type"] == "listing.updated":
        return event["price"] >= 2.9 * history[-1] and event["stock"] > 0
    return event["price"] >= 3.9 * CATEGORY_BY_NAME[event["category"]].median_price


def _invented_was_price(label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created", "listing.updated"))
    history = _price_history(label, by_actor, event["listing_id"])
    if history:
        return event["original_price"] >= 1.9 * max(history)
    return event["original_price"] >= 2.9 * CATEGORY_BY_NAME[event["category"]].median_price


def _counterfeit(label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created",))
    level = LUXURY_LEVEL[(event["category"], event["brand"])]
    return event["price"] <= 0.21 * level or any(word in event["title"] for word in REPLICA_WORDS)


def _prohibited(label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created",))
    tails = [part.strip() for item in PROHIBITED_ITEMS for part in item[2].split("{kw}") if len(part.strip()) >= 3]
    return any(tail in event["title"] or tail.capitalize() in event["title"] for tail in tails)


def _spam_burst(label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created",))
    same = [e for e in by_actor[label["actor"]] if e["type"] == "listing.created"
            and e["image_hash"] == event["image_hash"] and label["evidence_ts"] - 60 * MINUTE <= e["ts"] <= event["ts"]]
    return len(same) >= 5


def _said_by_host_or_titled(label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("live.transcript", "live.comment", "listing.created"))
    return event["type"] != "live.comment" or event["by_host"]


def _taken_over(label, by_actor) -> bool:
    events = by_actor[label["actor"]]
    _evidence_event(label, by_actor, ("account.payout_changed",))
    logins = [e for e in events if e["type"] == "account.login" and e["ts"] <= label["evidence_ts"]]
    for login in logins:
        if label["evidence_ts"] - 60 * MINUTE <= login["ts"] <= label["evidence_ts"] - 5 * MINUTE:
            earlier = [e for e in logins if e["ts"] < login["ts"]]
            if earlier and all(e["device_id"] != login["device_id"] and e["country"] != login["country"]
                               for e in earlier):
                return True
    return False


def _tied_to_an_earlier_abuser(label, by_actor, small_labels) -> bool:
    event = _evidence_event(label, by_actor, ("account.login", "account.payout_changed"))
    key, value = ("device_id", event["device_id"]) if event["type"] == "account.login" else \
        ("payout_hash", event["payout_hash"])
    owners = {e["actor"] for events in by_actor.values() for e in events
              if e.get(key) == value and e["ts"] < event["ts"] and e.get("actor") not in (None, label["actor"])}
    severe = {x["actor"] for x in small_labels if x["violation_type"] in ("prohibited_listing", "counterfeit_listing")
              and x["evidence_ts"] < label["evidence_ts"]}
    first_seen = by_actor[label["actor"]][0]["ts"]
    return bool(owners & severe) and first_seen >= min(x["evidence_ts"] for x in small_labels if x["actor"] in owners)


def insufficient_evidence(all_labels: list[dict], by_actor: dict[str, list[dict]]) -> list[dict]:
    """Labels whose evidence event is missing or does not show what `abuse.py` documents."""
    checks = {
        "engagement_inflation": _engagement_is_bought, "order_brushing": _brushing_is_visible,
        "price_gouging": _gouged, "fake_discount": _invented_was_price, "counterfeit_listing": _counterfeit,
        "prohibited_listing": _prohibited, "listing_spam": _spam_burst,
        "off_platform_solicitation": _said_by_host_or_titled, "misleading_claims": _said_by_host_or_titled,
        "account_takeover": _taken_over,
        "linked_accounts": lambda label, events: _tied_to_an_earlier_abuser(label, events, all_labels),
    }
    return [label for label in all_labels
            if not any(e["ts"] == label["evidence_ts"] for e in by_actor[label["actor"]])
            or not checks[label["violation_type"]](label, by_actor)]


def test_evidence_is_sufficient_as_documented(small_labels, by_actor):
    assert not insufficient_evidence(small_labels, by_actor)


@pytest.mark.parametrize("cfg", [SimConfig(seed=21, hours=0.5, scale=0.1), SimConfig(seed=24, hours=26.0, scale=0.05)],
                         ids=["half-hour", "26-hours"])
def test_evidence_holds_for_short_and_multi_day_streams(cfg):
    all_labels = labels(cfg)
    end = cfg.start_ts + int(cfg.hours * 3_600_000)
    assert {label["violation_type"] for label in all_labels} == set(VIOLATION_TYPES)
    assert all(cfg.start_ts < label["evidence_ts"] < end for label in all_labels)
    assert not insufficient_evidence(all_labels, index_by_actor(list(iter_events(cfg))))


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
        asks = [e for e in events if e["type"] == "live.comment" and e["text"] in VIEWER_CONTACT_ASKS]
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
    assert 150_000 <= sum(1 for _ in iter_events(SimConfig())) <= 300_000
