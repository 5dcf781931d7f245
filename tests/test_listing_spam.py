"""listing_spam: bursts of near-duplicate listings from one seller."""

from __future__ import annotations

from pipeline.contract.events import ListingCreated
from tests.detector_helpers import feed, shipped

T0 = 1_793_491_200_000


def listing(i, title, seller="S1", image="aaaaaaaaaaaaaaaa", minutes=None, category="phones"):
    return ListingCreated(
        event_id=f"{seller}-{i}", ts=T0 + (i if minutes is None else minutes) * 60_000, seller_id=seller,
        listing_id=f"{seller}-L{i}", title=title, category=category, price=9.5, currency="USD", brand=None,
        original_price=None, image_hash=image, stock=10,
    )


def test_same_image_burst_is_found_at_the_fifth_listing():
    det = shipped("listing_spam")
    found = feed(det, [listing(i, f"Phone case model {i}") for i in range(12)])
    assert len(found) == 1
    assert found[0].detected_at == T0 + 4 * 60_000
    assert found[0].evidence["duplicates"] == 5 and found[0].evidence["matched_on"] == "img"


def test_titles_differing_by_numbers_emoji_and_order_are_near_duplicates():
    det = shipped("listing_spam")
    titles = ["Phone case blue 1", "🔥 blue phone case 2", "Case phone blue #3", "BLUE phone-case 44", "phone case blue!!"]
    found = feed(det, [listing(i, t, image=f"{i:016x}") for i, t in enumerate(titles)])
    assert len(found) == 1 and found[0].evidence["matched_on"] == "title"


def test_a_restock_of_three_similar_items_over_a_day_is_clean():
    det = shipped("listing_spam")
    events = [listing(i, "Phone case blue", image=f"{i:016x}", minutes=i * 400) for i in range(3)]
    assert feed(det, events) == []


def test_a_burst_spread_beyond_the_window_is_clean():
    det = shipped("listing_spam")
    events = [listing(i, "Phone case", minutes=i * 20) for i in range(6)]  # 4 per hour at most
    assert feed(det, events) == []


def test_different_sellers_do_not_add_up():
    det = shipped("listing_spam")
    events = [listing(i, "Phone case", seller=f"S{i}") for i in range(8)]
    assert feed(det, events) == []


def test_distinct_products_from_one_seller_are_clean():
    det = shipped("listing_spam")
    titles = ["Leather wallet", "Phone case", "Sun hat", "Running socks", "Water bottle", "Desk lamp"]
    assert feed(det, [listing(i, t, image=f"{i:016x}") for i, t in enumerate(titles)]) == []


def test_a_burst_completed_by_a_late_listing_is_found():
    det = shipped("listing_spam")
    order = [0, 1, 2, 4, 3]  # the fifth listing (by time) arrives before the fourth
    found = feed(det, [listing(i, f"Phone case model {i}") for i in order])
    assert len(found) == 1
    assert found[0].evidence["duplicates"] == 5
    assert found[0].detected_at == T0 + 4 * 60_000
