"""The `pricing` detector: price gouging, fake discounts and counterfeit listings, judged on comparable items.

Each test builds a small category the way a marketplace looks (a few hundred
honest listings of a few product types, `tests.pricing_helpers.market`), then
plays the behaviour under test, with the thresholds config/shopguard.toml
ships. What is asserted is what a seller or a reviewer sees: honest sellers
get nothing; an abuser gets one violation, with the comparison that shows it.
"""

from __future__ import annotations

import pickle
import random

import pytest

from detectors.pricing import counterfeit, discount, gouging
from detectors.pricing.levels import title_words
from tests.pricing_helpers import (
    DAY, HOME_GOODS, HOUR, STANDING_DESK, Marketplace, brand_registered, judged, market, upsert, write_ndjson,
)

PRICING_TYPES = {gouging.VIOLATION_TYPE, discount.VIOLATION_TYPE, counterfeit.VIOLATION_TYPE}


def home(n: int = 300, **kw) -> list:
    """A warm "home" category: candles, mugs, vases and blankets."""
    return market(HOME_GOODS, n, **kw)


def home_with_desks(n: int = 400) -> list:
    """A "home" category that also sells standing desks, at 30x the price of a candle."""
    return market({**HOME_GOODS, **STANDING_DESK}, n)


def gouged_candle(listing: str = "G1", price: float = 120.0, minute: float = 60, seller: str = "S7"):
    return upsert(listing, price, minute=minute, seller=seller, created=True, title="Cozy Scented Candle - Black")


def summary(found) -> list[tuple[str, str, list[str]]]:
    """(actor, violation type, kinds of finding) of each signal."""
    return [(s.actor, s.violation_type, s.evidence["kinds"]) for s in found]


def history(listing: str, *prices: tuple[float, float] | tuple[float, float, float], seller: str = "S4",
            first_seen_created: bool = True, **kw) -> list:
    """A listing's price history: (minute, price) or (minute, price, was) points, the first its creation."""
    return [upsert(listing, p[1], minute=p[0], was=p[2] if len(p) > 2 else None, seller=seller,
                   created=first_seen_created and i == 0, **kw) for i, p in enumerate(prices)]


# ---- price gouging: a steep raise ---------------------------------------------------------------


def test_a_steep_raise_of_an_in_stock_listing_is_found_at_the_raise():
    events = history("L1", (50, 24.99), (60, 25.99), seller="S9") + [
        upsert("L1", 99.0, minute=70, seller="S9", stock=12)]
    found = judged(events)
    assert summary(found) == [("seller:S9", "price_gouging", ["sudden_raise"])]
    v = found[0]
    assert v.subject == "L1" and v.detected_at == events[-1].ts
    e = v.evidence
    assert (e["recent_price"], e["recent_low"], e["raised_price"]) == (25.99, 24.99, 99.0)
    assert e["raise_ratio"] == pytest.approx(3.962, abs=1e-3)
    assert 0.55 <= v.confidence <= 1 and "24.99" in v.explanation and "99.00" in v.explanation


def test_a_raise_in_steps_each_under_the_ratio_is_found_at_the_step_that_completes_it():
    events = history("L1", (50, 24.99), (60, 44.99), seller="S9") + [
        upsert("L1", 79.99, minute=70, seller="S9", stock=12)]  # 1.8x then 1.78x: 3.2x in 20 minutes
    found = judged(events)
    assert summary(found) == [("seller:S9", "price_gouging", ["sudden_raise"])]
    assert found[0].detected_at == events[-1].ts and found[0].evidence["recent_low"] == 24.99


@pytest.mark.parametrize("prices, stock", [
    ((24.99, 27.99, 31.99), 10),  # honest raises of 5-15%
    ((24.99, 99.0), 0),  # out of stock: nobody can buy at that price
    ((24.99, 9.99, 24.99), 10),  # a clearance ends, back to the price it really had
    ((24.99, 49.99), 10),  # doubled: steep, but a repricing, not gouging
    ((24.99, 39.99, 54.99), 10),  # raised twice, 2.2x in all: under the ratio
], ids=["small-raises", "out-of-stock", "clearance-ends", "doubled", "doubled-in-steps"])
def test_ordinary_price_moves_are_clean(prices, stock):
    events = [upsert("L1", p, minute=50 + 10 * i, created=i == 0, stock=stock) for i, p in enumerate(prices)]
    assert judged(events) == []


def test_a_sale_that_ends_at_the_was_price_it_really_charged_is_not_a_raise():
    events = history("L1", (50, 30.0), (60, 9.0, 30.0), (120, 30.0))
    assert judged(events) == []


def test_a_clearance_that_ends_after_many_restocks_is_still_not_a_raise():
    events = history("L1", (50, 30.0), (60, 9.0))  # no "was" shown
    events += [upsert("L1", 9.0, minute=61 + i, stock=10 + i) for i in range(20)]  # restocks at the same price
    events += [upsert("L1", 30.0, minute=200)]
    assert judged(events, history_points=3) == []


def test_a_legitimate_clearance_is_clean_for_every_pricing_judge():
    events = home()
    events += [upsert(f"C{i}", 30.0 + i, minute=45, seller="S5", created=True, title="Soft Throw Blanket - Navy")
               for i in range(8)]
    events += [upsert(f"C{i}", round((30.0 + i) * 0.3, 2), was=30.0 + i, minute=60, seller="S5",
                      title="Soft Throw Blanket - Navy") for i in range(8)]
    assert judged(events) == []


def test_a_raise_that_arrives_before_the_price_it_raised_from_is_found_when_that_arrives():
    created, raised = history("L1", (50, 25.0), (52, 95.0))
    found = judged([raised, created])  # arrival order: the raise first
    assert summary(found) == [("seller:S4", "price_gouging", ["sudden_raise"])]
    assert (found[0].evidence["recent_price"], found[0].evidence["raised_at"]) == (25.0, raised.ts)


def test_a_raise_found_late_is_dated_at_the_raise():
    created, raised = history("L1", (50, 25.0), (52, 95.0))
    found = judged([raised, created])
    assert [(v.detected_at, v.window_start) for v in found] == [(raised.ts, raised.ts)]


def test_one_violation_per_listing_per_cool_down_and_a_redelivery_adds_nothing():
    raised = upsert("L1", 95.0, minute=52)
    events = [upsert("L1", 25.0, minute=50, created=True), raised, raised,
              upsert("L1", 24.0, minute=60), upsert("L1", 90.0, minute=70),  # again within the cool-down
              upsert("L2", 20.0, minute=50, created=True), upsert("L2", 80.0, minute=71)]
    assert [v.subject for v in judged(events)] == ["L1", "L2"]
    again = [upsert("L1", 25.0, minute=2 * DAY), upsert("L1", 300.0, minute=2 * DAY + 1)]
    assert [v.subject for v in judged(events + again)].count("L1") == 2  # after the cool-down


# ---- price gouging: far above comparable items ---------------------------------------------------


def test_a_price_far_above_comparable_items_is_found_once_the_category_is_warm():
    found = judged(home() + [gouged_candle(price=120.0)])
    assert summary(found) == [("seller:S7", "price_gouging", ["far_above_comparable_items"])]
    e = found[0].evidence
    # The comparison a reviewer checks: which items, their going rate, how far above it.
    assert e["compared_with"] == f"{e['comparable_count']} similar listings" and e["comparable_count"] >= 6
    assert set(e["comparable_listings"]) <= {ev.listing_id for ev in home() if "Candle" in ev.title}
    assert 12 <= e["going_rate"] <= 30 and e["ratio_to_going_rate"] == pytest.approx(120 / e["going_rate"], rel=0.01)
    assert e["category_going_rate"] < 30
    assert "120.00" in found[0].explanation


def test_before_the_warm_up_nothing_is_judged_against_comparable_items():
    assert judged(home(n=12) + [gouged_candle(price=120.0)]) == []


def test_a_price_somewhat_above_comparable_items_is_clean():
    assert judged(home() + [gouged_candle(price=40.0)]) == []  # a premium candle, under 3x the going rate


def test_a_standing_desk_among_candles_is_not_gouging_but_a_gouged_candle_is():
    desks = [upsert(f"D{i}", 440.0 + 10 * i, minute=60 + i, seller="SD", created=True,
                    title="Modern Standing Desk - Oak") for i in range(5)]
    found = judged(home_with_desks() + desks + [gouged_candle(minute=70)])
    assert summary(found) == [("seller:S7", "price_gouging", ["far_above_comparable_items"])]
    assert found[0].evidence["going_rate"] < 60  # held to candles, not to the desks of its category


def test_an_expensive_product_type_new_to_the_category_is_not_gouging():
    desks = [upsert(f"D{i}", 450.0 + i, minute=60 + i, seller=f"SD{i}", created=True, title="Modern Desk - Black")
             for i in range(30)]
    assert judged(home() + desks) == []


def test_a_premium_brand_is_judged_against_its_own_level():
    luxe = market({"Ceramic Vase": 1450.0}, 30, brand="Maison Aurel", seed=2, prefix="P")
    at_its_level = upsert("P100", 1500.0, minute=60, seller="SP", created=True, brand="Maison Aurel",
                          title="Maison Aurel Ceramic Vase - Black")
    far_above_it = upsert("P101", 9500.0, minute=61, seller="S8", created=True, brand="Maison Aurel",
                          title="Maison Aurel Ceramic Vase - Black")
    found = judged(home() + luxe + [at_its_level, far_above_it])
    assert summary(found) == [("seller:S8", "price_gouging", ["far_above_comparable_items"])]
    assert 1000 < found[0].evidence["going_rate"] < 2000


def test_a_brand_seen_for_the_first_time_is_never_judged_against_the_category():
    luxury = [upsert(f"P{i}", 4200.0, minute=60 + i, seller="SP", created=True, brand="Maison Nouvelle",
                     title="Maison Nouvelle Ceramic Vase - Black") for i in range(3)]
    assert judged(home() + luxury) == []


def test_an_item_unlike_the_category_is_not_judged_by_its_going_rate():
    unlike = [upsert("X1", 900.0, minute=60, seller="S6", created=True, title="Genuine ivory carved bangle"),
              upsert("X2", 900.0, minute=61, seller="S6", created=True, title="R h i n o  h o r n powder")]
    assert judged(home() + unlike) == []


def test_flagged_prices_do_not_move_the_going_rate():
    gougers = [gouged_candle(f"G{i}", price=200.0, minute=60 + i, seller=f"S{i}") for i in range(150)]
    place = Marketplace()
    found = place.feed(home() + gougers)
    assert len(found) == 150  # the last still far above: 150 gougers did not drag the level up
    candle = title_words("Cozy Scented Candle - Sage", None)
    candles = place.states["home"].index.reference(place.detector.config.comparable, "", candle, "USD", 15.0)
    assert candles.level_price == pytest.approx(15, rel=0.15)


def test_the_comparison_is_with_listings_of_the_same_kind_of_product():
    gouged = upsert("G1", 200.0, minute=60, seller="S7", created=True, title="Soft Blanket - Black")
    found = judged(home() + [gouged])
    assert summary(found) == [("seller:S7", "price_gouging", ["far_above_comparable_items"])]
    blankets = {ev.listing_id for ev in home() if "Blanket" in ev.title}
    assert found[0].evidence["comparable_listings"] and set(found[0].evidence["comparable_listings"]) <= blankets


def test_a_rare_dear_kind_among_cheaper_ones_is_clean_and_the_cheap_kind_at_its_price_is_not():
    """A held-out world's honest case: a few waxed jackets at 5x the denim jackets of their category."""
    jackets = market({"Denim Jacket": 45.0, "Bomber Jacket": 60.0, "Rain Jacket": 50.0}, 240, category="fashion")
    waxed = [upsert(f"X{i}", 240.0 + 7 * i, minute=41 + i, seller=f"SW{i}", created=True, category="fashion",
                    title="Waxed Jacket - Olive") for i in range(3)]

    def offered(title: str, seller: str) -> list:
        return judged(jackets + waxed + [upsert("N1", 255.0, minute=60, seller=seller, created=True,
                                                category="fashion", title=title)])

    assert offered("Waxed Jacket - Navy", "S5") == []
    found = offered("Modern Denim Jacket - Navy", "S6")
    assert summary(found) == [("seller:S6", "price_gouging", ["far_above_comparable_items"])]
    assert found[0].evidence["going_rate"] < 60 and found[0].evidence["most_alike_going_rate"] < 60


def test_a_colour_shared_with_a_dearer_product_does_not_make_it_comparable():
    """Words after a title's first separator are variants: "- Black" ties a serum to no hair dryer."""
    hair = market({"Hair Serum": 14.0, "Hair Dryer": 90.0, "Hair Brush": 10.0}, 240, category="beauty")
    titles = {e.listing_id: e.title for e in hair}
    dryer = upsert("D1", 95.0, minute=60, seller="S5", created=True, category="beauty", title="Soft Hair Dryer - Black")
    serum = upsert("D2", 95.0, minute=61, seller="S6", created=True, category="beauty", title="Soft Hair Serum - Black")
    assert judged(hair + [dryer]) == []
    found = judged(hair + [serum])
    assert summary(found) == [("seller:S6", "price_gouging", ["far_above_comparable_items"])]
    assert all("Serum" in titles[i] for i in found[0].evidence["comparable_listings"])


def test_a_colour_half_the_sellers_run_on_without_a_separator_still_weighs_as_a_colour():
    """ "Soft Throw Blanket Sage" and "Soft Throw Blanket - Sage": a word written as a variant in half its
    titles is an attribute, so it never ties a listing to another kind of product."""
    events = market({"Scented Candle": 15.0, "Ceramic Mug": 12.0, "Throw Blanket": 35.0, "Desk Organizer": 60.0}, 300)
    events = [e if i % 2 else upsert(e.listing_id, e.price, minute=(e.ts - events[0].ts) / 60_000,
                                     seller=e.seller_id, created=True, title=e.title.replace(" - ", " "))
              for i, e in enumerate(events)]
    place = Marketplace()
    place.feed(events)
    weight = place.states["home"].index._weigher(place.detector.config.comparable)
    kinds = title_words("Scented Candle Ceramic Mug Throw Blanket Desk Organizer", None)
    colours = title_words("Black White Navy Beige Olive Sage", None)
    assert max(weight[c] for c in colours) < min(weight[k] for k in kinds) / 20


# ---- fake discount ------------------------------------------------------------------------------


def test_an_honest_sale_whose_was_price_was_really_charged_is_clean():
    events = home() + history("L1", (50, 30.0), (60, 33.99), (2 * DAY, 25.0, 33.99), (3 * DAY, 33.99))
    assert judged(events) == []


def test_raise_then_discount_back_is_a_fake_discount_from_the_listing_own_history():
    events = history("L1", (0, 30.0), (DAY, 60.0), (3 * DAY, 30.0, 60.0))
    found = judged(events)
    assert summary(found) == [("seller:S4", "fake_discount", ["was_above_recent_prices"])]
    e = found[0].evidence
    assert (e["was_price"], e["lowest_recent_price"], e["was_over_lowest"]) == (60.0, 30.0, 2.0)
    assert e["lowest_recent_price_since"] == events[0].ts and e["reference_window_days"] == 30
    assert "60.00" in found[0].explanation and "30.00" in found[0].explanation


def test_raise_then_discount_back_is_found_on_a_listing_first_seen_mid_life():
    events = history("L1", (0, 30.0), (DAY, 60.0), (3 * DAY, 30.0, 60.0), first_seen_created=False)
    found = judged(events)
    assert summary(found) == [("seller:S4", "fake_discount", ["was_above_recent_prices"])]
    assert found[0].evidence["history_complete"] is False


def test_a_sale_marked_with_a_price_shown_for_a_minute_is_clean_when_it_barely_overstates_the_discount():
    """25.99, 26.99 for a minute, then 20.99 "was 26.99": 22% claimed, 19% real off the regular price."""
    events = history("L1", (0, 25.99), (HOUR, 26.99), (HOUR + 1, 20.99, 26.99))
    assert judged(events) == []
    raised_far = history("L2", (0, 25.99), (HOUR, 31.99), (HOUR + 1, 20.99, 31.99))  # 34% claimed, 19% real
    assert [v.evidence["kinds"] for v in judged(raised_far)] == [["was_never_charged"]]


def test_a_was_price_the_listing_never_charged_is_found_at_once():
    events = history("L1", (0, 30.0), (HOUR, 24.0, 30.0), (2 * HOUR, 30.0), (3 * HOUR, 29.0, 89.0))
    found = judged(events)
    assert [(v.subject, v.detected_at) for v in found] == [("L1", events[-1].ts)]
    assert (found[0].evidence["was_price"], found[0].evidence["lowest_recent_price"]) == (89.0, 30.0)


def test_a_sale_that_ends_at_an_invented_was_price_is_the_fake_discount_not_gouging():
    events = home() + history("L1", (50, 30.0), (60, 29.0, 190.0), (120, 190.0))
    assert [v.violation_type for v in judged(events)] == ["fake_discount"]


def test_a_deepening_sale_keeps_the_regular_price_as_its_reference():
    events = history("L1", (0, 40.0), (2 * DAY, 25.0, 40.0), (5 * DAY, 15.0, 40.0))
    assert judged(events) == []


def test_a_was_price_below_the_price_really_charged_is_not_flagged():
    events = history("L1", (0, 50.0), (2 * DAY, 40.0, 45.0))
    assert judged(events) == []


def test_a_typo_fixed_within_minutes_is_not_a_reference_price():
    typo = history("L1", (0, 30.0), (DAY, 3.0), (DAY + 2, 30.0), (2 * DAY, 20.0, 30.0))
    assert judged(typo) == []
    held = history("L1", (0, 30.0), (DAY, 3.0), (DAY + 120, 30.0), (2 * DAY, 20.0, 30.0))
    assert [v.violation_type for v in judged(held)] == ["fake_discount"]  # 3.00 held two hours: a real price


def test_a_new_listing_without_history_is_judged_against_comparable_items_only():
    invented = upsert("N1", 29.0, minute=60, was=149.0, seller="S3", created=True, title="Cozy Throw Blanket - Navy")
    modest = upsert("N2", 29.0, minute=61, was=45.0, seller="S3", created=True, title="Cozy Throw Blanket - Navy")
    found = judged(home() + [invented, modest])
    assert summary(found) == [("seller:S3", "fake_discount", ["was_far_above_comparable_items"])]
    e = found[0].evidence
    assert e["listing_id"] == "N1" and e["was_price_ratio_to_going_rate"] >= 2.5
    assert e["was_price_compared_with"] == f"{e['was_price_comparable_count']} similar listings"


def test_a_new_listing_claim_before_the_warm_up_is_clean():
    invented = upsert("N1", 29.0, minute=60, was=149.0, created=True, title="Cozy Throw Blanket - Red")
    assert judged(home(n=10) + [invented]) == []


def test_a_listing_first_seen_mid_life_with_a_plausible_was_price_is_clean():
    events = home() + history("M1", (60, 24.0, 33.0), (70, 22.0, 33.0), first_seen_created=False,
                              title="Soft Throw Blanket - Navy")
    assert judged(events) == []


def test_an_invented_was_price_that_arrives_before_the_creation_is_found_when_the_creation_arrives():
    created, claim = history("L1", (0, 30.0), (HOUR, 28.0, 90.0))
    assert [v.violation_type for v in judged([claim, created])] == ["fake_discount"]


def test_fake_discounts_are_issued_once_per_listing_per_cool_down():
    events = history("L1", (0, 30.0), *[(HOUR + i, 28.0 - i, 90.0 + i) for i in range(5)])
    assert [v.violation_type for v in judged(events)] == ["fake_discount"]


# ---- counterfeit listing ------------------------------------------------------------------------

PROTECTED = [brand_registered("Gucci"), brand_registered("Louis Vuitton", "LV"), brand_registered("Chanel"),
             brand_registered("Hermès"), brand_registered("Prada"), brand_registered("Tiffany & Co.", "Tiffany"),
             brand_registered("Luma", "LUMA Paris"), brand_registered("Acme")]


def bag(title: str, price: float = 45.0, *, listing: str = "F1", minute: float = 60, seller: str = "S2",
        created: bool = True, **kw):
    return upsert(listing, price, minute=minute, seller=seller, title=title, created=created, category="bags", **kw)


@pytest.mark.parametrize("title, brand", [
    ("Gucci Tote Bag replica", "Gucci"),
    ("1:1 Louis Vuitton Crossbody Bag", None),
    ("Crossbody Bag Chanel style, mirror copy", None),
    ("Hermes tote AAA quality - top grade", "Hermès"),
    ("LV tote r3pl1ca", None),
    ("Prada shoulder bag R E P L I C A", "Prada"),
    ("Tote by T1ffany - dupe", None),
    ("Tote inspired by LUMA Paris", None),
])
def test_a_protected_brand_offered_as_a_copy_is_found_at_its_first_listing(title, brand):
    found = judged(PROTECTED + [bag(title, brand=brand)])
    assert summary(found) == [("seller:S2", "counterfeit_listing", ["replica_wording"])]
    e = found[0].evidence
    assert e["brand_matched"] and e["brand_registered"] is True and e["replica_terms"]
    assert e["brand_matched"] in found[0].explanation and "copy" in found[0].explanation


def test_lookalike_wording_after_a_brand_ending_in_a_period_is_found():
    found = judged(PROTECTED + [bag("Tiffany & Co. dupe tote")])
    assert summary(found) == [("seller:S2", "counterfeit_listing", ["replica_wording"])]


@pytest.mark.parametrize("title, brand", [
    ("Nature-inspired ceramic mug", None),  # look-alike wording, no brand
    ("Inspired Living tote bag", "Harbor"),  # a brand, look-alike wording not next to it
    ("Acme candle inspired by nature", "Acme"),  # a registered brand; inspired by nature, not by a brand
    ("Mirror with copy holder", None),
    ("Scale model 11:1 kit", None),
    ("Gucci Tote Bag - Black", "Gucci"),  # a protected brand, honestly listed
    ("Harbor tote replica", None),  # copy wording, but no brand anyone registered or sells here
])
def test_replica_words_alone_or_a_brand_alone_are_clean(title, brand):
    assert judged(PROTECTED + [bag(title, brand=brand)]) == []


def test_a_brand_is_protected_once_registered_and_by_its_aliases():
    copy = bag("LUMA tote bag replica", listing="F1", minute=60)
    alias = bag("Luma Paris shoulder bag, 1:1", listing="F2", minute=62)
    assert judged([copy, alias]) == []  # nobody said Luma is a brand yet
    found = judged([copy, brand_registered("Luma", "LUMA Paris", minute=61), alias])
    assert [(v.evidence["listing_id"], v.evidence["brand_matched"], v.evidence["brand_registered"])
            for v in found] == [("F2", "Luma", True)]


def test_a_brand_sellers_name_on_genuine_listings_is_protected_without_registration():
    genuine = [bag(f"Aster & Vale Leather Tote - {c}", 180.0, brand="Aster & Vale", listing=f"G{i}",
                   minute=i, seller=f"H{i}") for i, c in enumerate(("Black", "Tan", "Navy"))]
    copy = bag("Aster & Vale tote, mirror quality", listing="F1")
    assert judged([copy]) == []
    found = judged(genuine + [copy])
    assert [(v.evidence["brand_matched"], v.evidence["brand_registered"]) for v in found] == [("Aster & Vale", False)]


def test_lookalike_wording_counts_only_next_to_a_brand_named_in_the_title():
    found = judged(PROTECTED + [bag("Tote inspired by Luma", listing="F1"), bag("Luma dupe tote", listing="F2"),
                                bag("Acme candle inspired by nature", brand="Acme", listing="F3")])
    assert [(v.evidence["listing_id"], v.evidence["replica_terms"]) for v in found] == [
        ("F1", ["inspired"]), ("F2", ["dupe"])]


def luma_line(n: int = 30) -> list:
    """Genuine Luma totes (~1,450) and key charms (~90): two product lines of one brand, its cheapest
    charm listed first (a cheaper line listed after the brand's level is known: see the xfail below)."""
    cheapest = luma("Key Charm", 50.0, listing="P-1", minute=-1, seller="H0")
    return [cheapest] + market({"Leather Tote": 1450.0, "Key Charm": 90.0}, 2 * n, brand="Luma", category="bags",
                               seed=3, prefix="P")


def luma(item: str, price: float, listing: str = "F1", minute: float = 60, **kw):
    return bag(f"Luma {item} - Black", price, brand="Luma", listing=listing, minute=minute, **kw)


def test_a_brand_at_an_impossible_price_for_comparable_items_is_found():
    found = judged(luma_line() + [luma("Leather Tote", 90.0)])
    assert summary(found) == [("seller:S2", "counterfeit_listing", ["impossible_price"])]
    e = found[0].evidence
    assert e["brand_matched"] == "Luma" and 1000 < e["going_rate"] < 2000 and e["brand_price_ratio"] < 0.1
    assert "Luma" in found[0].explanation and "90.00" in found[0].explanation


def test_a_brand_cheaper_product_line_is_not_an_impossible_price():
    assert judged(luma_line() + [luma("Key Charm", 85.0)]) == []


def test_a_cheaper_line_new_to_a_known_brand_is_not_counterfeit():
    totes = [luma("Leather Tote", 1450.0 + i, listing=f"T{i}", minute=i, seller=f"H{i}") for i in range(10)]
    charms = [luma("Key Charm", 90.0 - i, listing=f"C{i}", minute=20 + i, seller=f"K{i}") for i in range(20)]
    assert judged(totes + charms) == []


def test_a_discounted_genuine_item_is_not_an_impossible_price():
    assert judged(luma_line() + [luma("Leather Tote", 700.0)]) == []


def test_an_outlet_clearance_of_goods_it_sold_at_full_price_is_not_an_impossible_price():
    outlet = [luma("Leather Tote", 1400.0, minute=0, seller="SO"),
              luma("Leather Tote", 280.0, was=1400.0, minute=2 * DAY, seller="SO", created=False)]
    assert judged(luma_line() + outlet) == []


def test_counterfeit_prices_do_not_become_the_brand_level():
    fakes = [luma("Leather Tote", 90.0, listing=f"F{i}", minute=60 + i, seller=f"S{i}") for i in range(60)]
    assert len(judged(luma_line() + fakes)) == 60


def test_a_counterfeit_listing_is_issued_once_per_cool_down_even_when_updated():
    events = [bag("Gucci Tote Bag replica", brand="Gucci", minute=60),
              bag("Gucci Tote Bag replica", brand="Gucci", minute=61, created=False),
              bag("Gucci Tote Bag replica!!", 39.0, brand="Gucci", minute=62, created=False)]
    assert [v.violation_type for v in judged(PROTECTED + events)] == ["counterfeit_listing"]


# ---- state: bounded, picklable ------------------------------------------------------------------


def test_state_survives_pickling_and_keeps_judging_the_same():
    place = Marketplace()
    place.feed(PROTECTED + home() + luma_line())
    tail = history("L1", (0, 30.0), (DAY, 60.0), (3 * DAY, 30.0, 60.0)) + [
        gouged_candle(minute=3 * DAY), luma("Leather Tote", 90.0, minute=3 * DAY), bag("LV tote replica")]
    copy = Marketplace()
    copy.states, copy.registry = pickle.loads(pickle.dumps((place.states, place.registry)))
    expected = place.feed(tail)
    assert {v.violation_type for v in expected} == PRICING_TYPES
    assert copy.feed(tail) == expected


def test_state_stays_bounded_over_many_listings_brands_and_registrations():
    rng = random.Random(5)
    events = [brand_registered(f"Registered {i}") for i in range(300)]
    events += [upsert(f"L{i}", round(rng.uniform(5, 50), 2), minute=i / 10, created=True, brand=f"Brand {i % 97}",
                      title=f"Gadget {i} thing {rng.random():.6f}") for i in range(3000)]
    events += [upsert("L2999", 10.0 + i, minute=300 + i) for i in range(40)]  # one listing, many prices
    place = Marketplace(max_listings=500, history_points=12,
                        comparable={"max_items": 200, "max_postings": 40, "max_brand_levels": 30, "offset_window": 9},
                        counterfeit_listing={"max_learned_brands": 50, "max_registered_brands": 100})
    place.feed(events)
    state, index = place.states["home"], place.states["home"].index
    assert len(state.listings) == 500 and len(state.listings["L2999"].points) <= 12
    assert len(index) <= 200 and all(len(ids) <= 40 for ids in index.postings.values())
    assert set(index.word_prices) == set(index.df) and len(index.df) <= 200 * 4
    assert len(index.offsets) <= 30 and all(len(level.ring) <= 9 for level in index.offsets.values())
    assert len(state.brands) <= 50 and len(place.registry.names) <= 100


# ---- the real flow ------------------------------------------------------------------------------


def categories_on_distinct_shards(n: int, shards: int = 64) -> list[str]:
    from pipeline.contract.routing import shard_of

    names, used = [], set()
    for i in range(1000):
        name = f"cat{i}"
        if shard_of(name, shards) not in used:
            used.add(shard_of(name, shards))
            names.append(name)
        if len(names) == n:
            return names
    raise AssertionError("not enough categories")


@pytest.mark.parametrize("workers", [1, 2])
def test_the_dataflow_issues_one_violation_per_abuse_and_none_to_honest_sellers(tmp_path, workers):
    from tests.conftest import replay

    spread = categories_on_distinct_shards(6)
    raise_ = history("G1", (50, 25.0), (52, 95.0), seller="SG")
    events = [brand_registered("Luma", "LUMA Paris", minute=-1)] + home() + [
        *raise_, raise_[-1],  # a sudden raise, delivered twice
        *history("D1", (0, 15.0), (DAY, 30.0), (3 * DAY, 15.0, 30.0), seller="SD"),  # raise, then "discount"
        *[upsert(f"F{i}", 45.0, minute=54, seller=f"SF{i}", created=True, title="LUMA Paris tote, 1:1",
                 category=c) for i, c in enumerate(spread)],  # copies of a registered brand, on every shard
        *history("H1", (50, 30.0), (60, 24.0, 30.0), (120, 30.0), seller="SH"),  # an honest sale
    ]
    events.sort(key=lambda e: e.ts)  # a stream in event-time order (stable: the redelivery stays)
    _, out = replay(write_ndjson(tmp_path / "events.jsonl", events), tmp_path / "out", workers=workers)
    found = sorted((v["actor"], v["violation_type"], v["detector"]) for v in out["violations.jsonl"]
                   if v["violation_type"] in PRICING_TYPES)
    assert found == sorted([("seller:SD", "fake_discount", "fake_discount_v2"),
                            ("seller:SG", "price_gouging", "price_gouging_v2"),
                            *[(f"seller:SF{i}", "counterfeit_listing", "counterfeit_listing_v2")
                              for i in range(len(spread))]])


# ---- counterfeit wording in Spanish (es) ---------------------------------------------------------


@pytest.mark.parametrize("title, brand", [
    ("Cartera Gucci réplica AAA", "Gucci"),
    ("Bolso Louis Vuitton copia exacta", None),
    ("Cartera Chanel imitación de primera", None),
    ("Bolso Prada calidad espejo", None),
    ("Cartera Hermès trucha no es original", None),
    ("Bolso Gucci clon 1:1", None),
    ("Cartera Prada falsificada igual al original", None),
    ("Bolso inspirado en Chanel", None),
    ("Cartera símil Gucci", None),
    ("Bolso al estilo Hermès", None),
])
def test_a_protected_brand_offered_as_a_copy_in_spanish_is_found(title, brand):
    found = judged(PROTECTED + [bag(title, brand=brand)])
    assert summary(found) == [("seller:S2", "counterfeit_listing", ["replica_wording"])]


@pytest.mark.parametrize("title, brand", [
    ("Cartera Gucci original con certificado", "Gucci"),  # a brand honestly listed
    ("Bolso de cuero estilo bohemio", None),  # look-alike wording, no brand
    ("Cartera Chanel estilo clásico", None),  # a style of the brand's own line, not a copy
    ("Disco externo Acme para copia de seguridad", "Acme"),  # a backup copy
    ("Cartera inspirada en la naturaleza", "Acme"),
    ("Bolso Prada negro, similar al de la foto", None),
])
def test_spanish_words_that_only_look_like_copy_wording_are_clean(title, brand):
    assert judged(PROTECTED + [bag(title, brand=brand)]) == []
