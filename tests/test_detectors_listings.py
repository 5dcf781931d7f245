"""price_gouging, fake_discount and counterfeit_listing: pricing and goods, judged per category.

Each test builds a category the way a marketplace looks: a few hundred ordinary
listings around the category's going rate (the warm-up), then the behaviour
under test. Detectors run with the thresholds config/shopguard.toml ships.
"""

from __future__ import annotations

import math
import pickle
import random

import pytest

from detectors.registry import registry
from detectors.pricing.levels import ALL_LISTINGS, brand_key
from pipeline.contract.events import ListingCreated, ListingUpdated
from tests.detector_helpers import feed, shipped

T0 = 1_793_491_200_000
MIN = 60_000
NOUNS = ("Table Lamp", "Ceramic Vase", "Throw Blanket", "Wall Clock", "Scented Candle", "Storage Baskets")
ADJECTIVES = ("Handmade", "Minimalist", "Cozy", "Rustic", "Modern", "Soft")
COLORS = ("Black", "White", "Navy", "Beige", "Olive", "Red", "Sage", "Cream")


def upsert(listing, price, *, minute, seller="S1", was=None, stock=10, title=None, brand=None, created=False,
           category="home", eid=None):
    kind = ListingCreated if created else ListingUpdated
    return kind(event_id=eid or f"{listing}@{minute}:{price}:{was}:{stock}", ts=T0 + int(minute * MIN),
                seller_id=seller, listing_id=listing, title=title or "Minimalist Table Lamp - Navy",
                category=category, price=price, currency="USD", brand=brand, original_price=was,
                image_hash=None, stock=stock)


def ordinary_title(rng, brand=None):
    words = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} - {rng.choice(COLORS)}"
    return f"{brand} {words}" if brand else words


def warm_category(n=300, level=30.0, sigma=0.3, brand_levels=(("Harbor", 35.0),), premium=(), seed=1,
                  minutes=40.0):
    """`n` ordinary listings created over `minutes`: unbranded at `level`, each brand at its own level."""
    rng = random.Random(seed)
    groups = [(None, level, sigma)] + [(b, lv, sigma) for b, lv in brand_levels] + [(b, lv, 0.2) for b, lv in premium]
    events = []
    for i in range(n):
        brand, lv, sg = groups[i % len(groups)]
        price = round(lv * math.exp(sg * max(-2.0, min(2.0, rng.gauss(0, 1)))), 2)
        events.append(upsert(f"W{i}", price, minute=minutes * i / n, seller=f"H{i % 40}",
                             title=ordinary_title(rng, brand), brand=brand, created=True))
    return events


def run(name, events, **overrides):
    det = shipped(name, **overrides)
    states: dict = {}
    return det, states, feed(det, events, states)


# ---- registration ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["price_gouging", "fake_discount", "counterfeit_listing"])
def test_detectors_are_registered_and_keyed_by_category(name):
    cls = registry()[name].cls
    det = shipped(name)
    assert det.violation_type == name and det.name == f"{name}_v1"
    assert det.entity(upsert("L1", 9.0, minute=0, category="toys")) == "toys"
    assert {t.__name__ for t in cls.event_types} == {"ListingCreated", "ListingUpdated"}


# ---- price gouging -----------------------------------------------------------------------


def test_a_steep_raise_of_an_in_stock_listing_is_found_at_the_raise():
    events = [upsert("L1", 24.99, minute=50, seller="S9", created=True),
              upsert("L1", 25.99, minute=60, seller="S9"),
              upsert("L1", 99.0, minute=70, seller="S9", stock=12)]
    _, _, found = run("price_gouging", events)
    assert len(found) == 1
    v = found[0]
    assert (v.actor, v.violation_type, v.subject) == ("seller:S9", "price_gouging", "L1:sudden_raise")
    assert v.detected_at == v.window_end == T0 + 70 * MIN and v.window_start == T0 + 60 * MIN
    assert v.evidence["recent_price"] == 25.99 and v.evidence["raise_ratio"] == pytest.approx(3.809, abs=1e-3)
    assert 0.6 <= v.confidence <= 1 and "L1" in v.explanation and "99.00" in v.explanation


@pytest.mark.parametrize("prices, stock", [
    ((24.99, 27.99, 31.99), 10),  # honest raises of 5-15%
    ((24.99, 99.0), 0),  # out of stock: nobody can buy at that price
    ((24.99, 9.99, 24.99), 10),  # a clearance ends, back to the price it really had
    ((24.99, 59.0), 10),  # 2.4x: steep, but under the raise ratio
])
def test_ordinary_price_moves_are_clean(prices, stock):
    events = [upsert("L1", p, minute=50 + i, created=i == 0, stock=stock) for i, p in enumerate(prices)]
    assert run("price_gouging", events)[2] == []


def test_a_sale_that_ends_at_the_was_price_it_showed_is_not_a_raise():
    events = [upsert("L1", 30.0, minute=50, created=True), upsert("L1", 9.0, minute=60, was=30.0),
              upsert("L1", 30.0, minute=120)]
    assert run("price_gouging", events)[2] == []


def test_a_clearance_that_ends_after_many_restocks_is_still_not_a_raise():
    events = [upsert("L1", 30.0, minute=50, created=True), upsert("L1", 9.0, minute=60)]  # no "was" shown
    events += [upsert("L1", 9.0, minute=61 + i, stock=10 + i) for i in range(20)]  # restocks at the same price
    events += [upsert("L1", 30.0, minute=200)]
    assert run("price_gouging", events, history_points=3)[2] == []


def test_a_legitimate_clearance_is_clean_for_every_pricing_detector():
    events = warm_category()
    events += [upsert(f"C{i}", 30.0 + i, minute=45, seller="S5", created=True) for i in range(8)]
    events += [upsert(f"C{i}", round((30.0 + i) * 0.3, 2), was=30.0 + i, minute=60, seller="S5") for i in range(8)]
    for name in ("price_gouging", "fake_discount", "counterfeit_listing"):
        assert run(name, events)[2] == [], name


def test_a_price_far_above_the_going_rate_is_found_once_the_category_is_warm():
    gouge = upsert("G1", 149.0, minute=60, seller="S7", created=True, title="Cozy Throw Blanket - Red")
    _, _, found = run("price_gouging", warm_category() + [gouge])
    assert [(v.subject, v.detected_at) for v in found] == [("G1:far_above_going_rate", gouge.ts)]
    e = found[0].evidence
    assert e["going_rate"] == pytest.approx(30, rel=0.1) and e["ratio_to_going_rate"] >= 3.5
    assert e["level_observations"] >= 30 and e["title_familiarity"] >= 0.7


def test_premium_listings_in_the_category_do_not_lift_the_going_rate_of_ordinary_goods():
    luxury = tuple((f"Lux{i}", 1500.0 * (i + 1)) for i in range(6))  # a third of the listings are luxury
    gouge = upsert("G1", 125.0, minute=60, seller="S7", created=True, title="Cozy Throw Blanket - Red")
    found = run("price_gouging", warm_category(n=600, brand_levels=(), premium=luxury) + [gouge])[2]
    assert [v.subject for v in found] == ["G1:far_above_going_rate"]
    assert found[0].evidence["category_going_rate"] == pytest.approx(30, rel=0.1)


def test_a_sale_that_ends_at_an_invented_was_price_is_the_fake_discount_not_gouging():
    events = warm_category() + [
        upsert("L1", 30.0, minute=50, created=True, seller="S4"),
        upsert("L1", 29.0, minute=60, was=190.0, seller="S4"),  # invented "was" price
        upsert("L1", 190.0, minute=120, seller="S4")]  # the "sale" ends there
    assert run("price_gouging", events)[2] == []
    assert [v.subject for v in run("fake_discount", events)[2]] == ["L1:was_price_never_charged"]


def test_before_the_warm_up_nothing_is_judged_against_the_going_rate():
    gouge = upsert("G1", 149.0, minute=60, seller="S7", created=True, title="Cozy Throw Blanket - Red")
    assert run("price_gouging", warm_category(n=12) + [gouge])[2] == []


def test_near_miss_price_below_the_far_above_ratio_is_clean():
    high = upsert("G1", 85.0, minute=60, seller="S7", created=True, title="Cozy Throw Blanket - Red")  # ~2.8x
    assert run("price_gouging", warm_category() + [high])[2] == []


def test_a_premium_brand_at_its_own_premium_level_is_clean():
    events = warm_category(premium=(("Gucci", 1450.0),))
    events += [upsert(f"P{i}", 1500.0 + 10 * i, minute=60 + i, seller="SP", created=True, brand="Gucci",
                      title="Gucci Ceramic Vase - Black") for i in range(5)]
    for name in ("price_gouging", "fake_discount", "counterfeit_listing"):
        assert run(name, events)[2] == [], name


def test_a_brand_seen_for_the_first_time_is_never_judged_against_the_category():
    luxury = [upsert(f"P{i}", 4200.0, minute=60 + i, seller="SP", created=True, brand="Maison Nouvelle",
                     title="Maison Nouvelle Ceramic Vase - Black") for i in range(3)]
    assert run("price_gouging", warm_category() + luxury)[2] == []


def test_a_premium_brand_far_above_its_own_level_is_gouging():
    events = warm_category(premium=(("Gucci", 1450.0),))
    events.append(upsert("P1", 9500.0, minute=60, seller="S8", created=True, brand="Gucci",
                         title="Gucci Ceramic Vase - Black"))
    found = run("price_gouging", events)[2]
    assert [(v.actor, v.subject) for v in found] == [("seller:S8", "P1:far_above_going_rate")]


def test_an_item_unlike_the_category_is_not_judged_by_its_going_rate():
    banned = upsert("X1", 900.0, minute=60, seller="S6", created=True, title="Genuine ivory carved bangle")
    disguised = upsert("X2", 900.0, minute=61, seller="S6", created=True, title="R h i n o  h o r n powder")
    assert run("price_gouging", warm_category() + [banned, disguised])[2] == []


def test_a_raise_that_arrives_before_the_price_it_raised_from_is_found_when_that_arrives():
    created = upsert("L1", 25.0, minute=50, created=True)
    raised = upsert("L1", 95.0, minute=52)
    _, _, found = run("price_gouging", [raised, created])  # arrival order: the raise first
    assert [(v.subject, v.detected_at, v.window_start) for v in found] == [
        ("L1:sudden_raise", raised.ts, created.ts)]


def test_one_violation_per_listing_per_cool_down_and_a_redelivery_adds_nothing():
    raised = upsert("L1", 95.0, minute=52)
    events = [upsert("L1", 25.0, minute=50, created=True), raised, raised,
              upsert("L1", 24.0, minute=60), upsert("L1", 90.0, minute=70),  # again within the cool-down
              upsert("L2", 20.0, minute=50, created=True), upsert("L2", 80.0, minute=71)]
    found = run("price_gouging", events)[2]
    assert [v.subject for v in found] == ["L1:sudden_raise", "L2:sudden_raise"]
    later = run("price_gouging", events + [upsert("L1", 25.0, minute=2000), upsert("L1", 300.0, minute=2001)])[2]
    assert [v.subject for v in later].count("L1:sudden_raise") == 2  # after the cool-down it counts again


def test_flagged_prices_do_not_move_the_going_rate():
    events = warm_category()
    events += [upsert(f"G{i}", 200.0, minute=60 + i, seller="S7", created=True, title="Cozy Throw Blanket - Red")
               for i in range(200)]
    det, states, found = run("price_gouging", events)
    assert len(found) == 200  # every one still far above: the gouger did not drag the level up
    level = states["home"].levels.levels[("USD", "")]
    assert math.exp(level.centre(1)) == pytest.approx(30, rel=0.1)


# ---- fake discount -----------------------------------------------------------------------


def test_an_honest_sale_whose_was_price_was_real_is_clean():
    events = warm_category() + [
        upsert("L1", 30.0, minute=50, created=True), upsert("L1", 33.99, minute=60),
        upsert("L1", 25.0, minute=70, was=33.99), upsert("L1", 33.99, minute=130)]
    assert run("fake_discount", events)[2] == []


def test_a_was_price_the_listing_never_had_is_found_at_once():
    claim = upsert("L1", 29.0, minute=90, was=89.0, seller="S4")
    events = [upsert("L1", 30.0, minute=50, created=True, seller="S4"), upsert("L1", 24.0, minute=60, was=30.0,
                                                                               seller="S4"),
              upsert("L1", 30.0, minute=80, seller="S4"), claim]
    found = run("fake_discount", events)[2]
    assert [(v.actor, v.subject, v.detected_at) for v in found] == [
        ("seller:S4", "L1:was_price_never_charged", claim.ts)]
    e = found[0].evidence
    assert e["highest_real_price"] == 30.0 and e["original_price"] == 89.0 and e["was_over_highest"] > 2.9
    assert "89.00" in found[0].explanation and "30.00" in found[0].explanation


def test_a_was_price_slightly_above_the_real_one_is_tolerated():
    events = [upsert("L1", 30.0, minute=50, created=True), upsert("L1", 25.0, minute=60, was=32.0)]
    assert run("fake_discount", events)[2] == []


def test_a_new_listing_is_judged_by_the_going_rate_only():
    invented = upsert("N1", 29.0, minute=60, was=149.0, seller="S3", created=True, title="Cozy Throw Blanket - Red")
    modest = upsert("N2", 29.0, minute=61, was=45.0, seller="S3", created=True, title="Cozy Throw Blanket - Red")
    found = run("fake_discount", warm_category() + [invented, modest])[2]
    assert [(v.subject, v.evidence["was_price_ratio_to_going_rate"] > 2.5) for v in found] == [
        ("N1:was_price_far_above_going_rate", True)]


def test_a_new_listing_claim_before_the_warm_up_is_clean():
    invented = upsert("N1", 29.0, minute=60, was=149.0, created=True, title="Cozy Throw Blanket - Red")
    assert run("fake_discount", warm_category(n=10) + [invented])[2] == []


def test_a_listing_first_seen_mid_life_is_not_judged_by_a_history_we_never_saw():
    events = warm_category() + [upsert("M1", 24.0, minute=60, was=33.0), upsert("M1", 22.0, minute=70, was=33.0)]
    assert run("fake_discount", events)[2] == []


def test_an_invented_was_price_that_arrives_before_the_creation_is_found_when_the_creation_arrives():
    created = upsert("L1", 30.0, minute=50, created=True)
    claim = upsert("L1", 28.0, minute=51, was=90.0)
    found = run("fake_discount", [claim, created])[2]
    assert [(v.subject, v.detected_at) for v in found] == [("L1:was_price_never_charged", claim.ts)]


def test_fake_discounts_are_issued_once_per_listing_per_cool_down():
    events = [upsert("L1", 30.0, minute=50, created=True)] + [
        upsert("L1", 28.0 - i, minute=60 + i, was=90.0 + i) for i in range(5)]
    assert len(run("fake_discount", events)[2]) == 1


# ---- counterfeit listing ----------------------------------------------------------------------


@pytest.mark.parametrize("title, brand", [
    ("Gucci Tote Bag replica", "Gucci"),
    ("1:1 Louis Vuitton Crossbody Bag", None),
    ("Crossbody Bag Chanel style, mirror copy", None),
    ("Hermes tote AAA quality - top grade", "Hermès"),
    ("LV tote r3pl1ca", "Louis Vuitton"),
    ("Prada shoulder bag R E P L I C A", "Prada"),
    ("Tote by T1FFANY & CO. - dupe", None),
])
def test_a_protected_brand_offered_as_a_copy_is_found_at_its_first_listing(title, brand):
    event = upsert("F1", 45.0, minute=60, seller="S2", title=title, brand=brand, created=True, category="bags")
    found = run("counterfeit_listing", [event])[2]
    assert [(v.actor, v.detected_at) for v in found] == [("seller:S2", event.ts)]
    assert found[0].evidence["replica_terms"] and found[0].evidence["brand_matched"]
    assert "replica" in found[0].explanation


@pytest.mark.parametrize("title, brand", [
    ("Nature-inspired ceramic mug", None),  # replica vocabulary without a protected brand
    ("Inspired Living tote bag", "Harbor"),
    ("Mirror with copy holder", None),
    ("Scale model 11:1 kit", None),
    ("Gucci Tote Bag - Black", "Gucci"),  # a protected brand, honestly listed
])
def test_replica_words_alone_or_a_brand_alone_are_clean(title, brand):
    event = upsert("F1", 45.0, minute=60, title=title, brand=brand, created=True, category="bags")
    assert run("counterfeit_listing", [event])[2] == []


def premium_bags(n=30, level=1450.0, brand="Gucci"):
    rng = random.Random(3)
    return [upsert(f"P{i}", round(level * math.exp(0.2 * max(-2, min(2, rng.gauss(0, 1)))), 2), minute=i,
                   seller=f"SP{i % 3}", brand=brand, title=f"{brand} Leather Tote Bag - Black", created=True,
                   category="bags") for i in range(n)]


def test_a_protected_brand_at_an_impossible_price_is_found():
    fake = upsert("F1", 120.0, minute=60, seller="S2", brand="Gucci", title="Gucci Leather Tote Bag - Red",
                  created=True, category="bags")
    found = run("counterfeit_listing", premium_bags() + [fake])[2]
    assert [(v.subject, v.evidence["reference"]) for v in found] == [("F1:impossible_price", "median")]
    assert found[0].evidence["brand_price_ratio"] < 0.1 and found[0].evidence["brand_robust_z"] <= -3


def test_a_discounted_genuine_item_is_not_an_impossible_price():
    sale = upsert("F1", 700.0, minute=60, seller="S2", brand="Gucci", title="Gucci Leather Tote Bag - Red",
                  created=True, category="bags")
    assert run("counterfeit_listing", premium_bags() + [sale])[2] == []


def test_a_young_brand_level_judges_by_its_lowest_price_and_an_empty_one_not_at_all():
    fake = upsert("F1", 140.0, minute=60, seller="S2", brand="Gucci", title="Gucci Leather Tote Bag - Red",
                  created=True, category="bags")
    found = run("counterfeit_listing", premium_bags(n=2) + [fake])[2]
    assert [(v.subject, v.evidence["reference"]) for v in found] == [("F1:impossible_price", "lowest")]
    assert run("counterfeit_listing", premium_bags(n=1) + [fake])[2] == []


def test_counterfeit_prices_do_not_become_the_brand_level():
    fakes = [upsert(f"F{i}", 120.0, minute=60 + i, seller="S2", brand="Gucci", title="Gucci Leather Tote Bag - Red",
                    created=True, category="bags") for i in range(60)]
    assert len(run("counterfeit_listing", premium_bags() + fakes)[2]) == 60


def test_a_counterfeit_listing_is_issued_once_per_cool_down_even_when_updated():
    first = upsert("F1", 45.0, minute=60, title="Gucci Tote Bag replica", brand="Gucci", created=True, stock=20)
    events = [first, upsert("F1", 45.0, minute=61, title="Gucci Tote Bag replica", brand="Gucci", stock=19),
              upsert("F1", 39.0, minute=62, title="Gucci Tote Bag replica!!", brand="Gucci", stock=19)]
    assert len(run("counterfeit_listing", events)[2]) == 1


# ---- state: bounded, picklable ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["price_gouging", "fake_discount", "counterfeit_listing"])
def test_state_survives_pickling_and_keeps_judging_the_same(name):
    warm = warm_category(premium=(("Gucci", 1450.0),))
    tail = [upsert("L1", 30.0, minute=50, created=True, brand="Gucci", title="Gucci Tote replica"),
            upsert("L1", 120.0, minute=51, was=400.0, brand="Gucci", title="Gucci Tote replica"),
            upsert("G1", 149.0, minute=60, created=True, was=600.0, title="Cozy Throw Blanket - Red")]
    det, states, _ = run(name, warm)
    copy = pickle.loads(pickle.dumps(states))
    expected = feed(det, tail, states)
    assert feed(shipped(name), tail, copy) == expected


@pytest.mark.parametrize("name", ["price_gouging", "fake_discount", "counterfeit_listing"])
def test_state_stays_bounded_over_many_listings_and_brands(name):
    rng = random.Random(5)
    events = [upsert(f"L{i}", round(rng.uniform(5, 50), 2), minute=i / 10, created=True,
                     brand=f"Brand {i % 97}" if name != "counterfeit_listing" else ("Gucci", "Prada", "Dior")[i % 3],
                     title=f"Gadget {i} thing {rng.random():.6f}") for i in range(3000)]
    det, states, _ = run(name, events, max_listings=500, max_levels=20, level_window=64)
    state = states["home"]
    assert len(state.listings) == 500
    assert len(state.levels.levels) <= 20
    assert all(len(level.ring) <= 64 for level in state.levels.levels.values())
    if hasattr(state, "vocabulary"):
        assert len(state.vocabulary.counts) <= det.config.max_vocabulary


def test_the_whole_category_level_and_brand_keys():
    assert brand_key("Tiffany & Co.") == brand_key("TIFFANY & CO.") != ALL_LISTINGS
    assert brand_key(None) == "" and brand_key("Hermès") == brand_key("HERMES")


# ---- the real flow ----------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_the_dataflow_issues_one_violation_per_abuse_and_none_to_honest_sellers(tmp_path, workers):
    import msgspec

    from tests.conftest import replay

    events = warm_category() + [
        upsert("G1", 25.0, minute=50, seller="SG", created=True),
        upsert("G1", 95.0, minute=52, seller="SG"),  # sudden raise
        upsert("D1", 30.0, minute=50, seller="SD", created=True),
        upsert("D1", 29.0, minute=53, seller="SD", was=99.0),  # a "was" price it never had
        upsert("F1", 45.0, minute=54, seller="SF", created=True, brand="Gucci", title="Gucci Tote replica",
               category="bags"),
    ]
    events.insert(len(events) - 2, events[-4])  # a redelivery of the raise
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(msgspec.json.encode(e) for e in events) + b"\n")
    _, out = replay(path, tmp_path / "out", workers=workers)
    found = sorted((v["actor"], v["violation_type"], v["detector"]) for v in out["violations.jsonl"]
                   if v["violation_type"] in {"price_gouging", "fake_discount", "counterfeit_listing"})
    assert found == [("seller:SD", "fake_discount", "fake_discount_v1"),
                     ("seller:SF", "counterfeit_listing", "counterfeit_listing_v1"),
                     ("seller:SG", "price_gouging", "price_gouging_v1")]
