"""Fake discounts: a strike-through ("was") price the listing did not really charge.

The reference a "was" price is held to is the lowest *regular* price the
listing applied, for at least `min_hold_seconds`, in the
`reference_window_days` before the discount (the EU price-indication rule:
the lowest price of the previous 30 days; the US rule asks for a bona fide
former price). That catches the textbook trick, a price raised and then
"discounted" back to where it was, from the listing's own history. Prices
shown as part of one sale are not regular prices, so a sale that deepens
keeps its original reference. Knowing only part of the history is enough to
convict: the lowest price of the part we saw can only be above the true
lowest. A "was" price with no regular price behind it (a new listing that
opens "on sale") cannot be verified from the listing itself and is judged
against comparable items instead.
"""

from __future__ import annotations

from typing import Any

import msgspec

from detectors.pricing.gouging import far_above
from detectors.pricing.comparable import ComparableConfig, ComparableIndex
from detectors.pricing.market import ListingRecord

VIOLATION_TYPE = "fake_discount"
DETECTOR = "fake_discount_v2"
DAY_MS = 86_400_000


class DiscountConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of fake discounts (table `[detectors.pricing.fake_discount]`).

    Parameters
    ----------
    min_discount
        A listing shows a discount when its price is at least this share below its "was" price.
    reference_window_days
        How far back the listing's regular prices count (EU: 30 days).
    min_hold_seconds
        A regular price counts only if it was charged at least this long (a
        typo fixed within minutes is not a price the listing charged).
    was_tolerance
        A "was" price more than this many times the reference is not a price the
        listing charged (a little above it may be: regular prices are retuned).
        Below that, a "was" price must still be one of the regular prices the
        listing charged in the window, when its whole window is known.
    far_above_ratio, far_above_z, far_above_category_ratio
        A "was" price that cannot be checked against the listing's own history
        is fake when it is this far above comparable items (see price gouging).
    cooldown_seconds
        One finding per listing within this period.
    """

    min_discount: float
    reference_window_days: float
    min_hold_seconds: float
    was_tolerance: float
    far_above_ratio: float
    far_above_z: float
    far_above_category_ratio: float
    cooldown_seconds: float


def asking_price(cfg: DiscountConfig, record: ListingRecord, at: int) -> float:
    """The price a listing normally asks at point `at`: its "was" price during a sale whose "was"
    price it really charged (a clearance is judged by the goods' regular price), else its price."""
    point = record.points[at]
    if point.was is None or point.was <= point.price:
        return point.price
    window_ms, hold_ms = int(cfg.reference_window_days * DAY_MS), int(cfg.min_hold_seconds * 1000)
    return point.was if record.charged(point.was, point.ts, window_ms, hold_ms) else point.price


def judge(cfg: DiscountConfig, comparable: ComparableConfig, index: ComparableIndex, listing_id: str,
          record: ListingRecord, at: int, currency: str, brand: str, words: frozenset[str]) -> dict[str, dict[str, Any]]:
    """Fake-discount findings for the price point at `at` of a listing (empty when clean or judged before).

    A point that arrives late may be the missing history of a discount shown
    after it (a creation delivered after the first update): that discount is
    judged again with the history now known.
    """
    found = _judge_point(cfg, comparable, index, listing_id, record, at, currency, brand, words, again=False)
    if not found and at + 1 < len(record.points):
        found = _judge_point(cfg, comparable, index, listing_id, record, at + 1, currency, brand, words, again=True)
    return found


def _judge_point(cfg: DiscountConfig, comparable: ComparableConfig, index: ComparableIndex, listing_id: str,
                 record: ListingRecord, at: int, currency: str, brand: str, words: frozenset[str],
                 again: bool) -> dict[str, dict[str, Any]]:
    point = record.points[at]
    if point.was is None or point.price > point.was * (1.0 - cfg.min_discount):
        return {}
    claim = (point.price, point.was)
    if claim == record.last_claim and not again:
        return {}  # the same discount shown again (a restock, a new title): judged already
    record.last_claim = claim
    window_ms, hold_ms = int(cfg.reference_window_days * DAY_MS), int(cfg.min_hold_seconds * 1000)
    reference = record.lowest_regular(point.ts, window_ms, hold_ms)
    common = {"price": point.price, "was_price": point.was, "discount": round(1.0 - point.price / point.was, 3),
              "reference_window_days": cfg.reference_window_days, "price_point_ts": point.ts}
    if reference is not None:
        lowest, since = reference
        if point.was > cfg.was_tolerance * lowest:
            return {"was_above_recent_prices": {
                **common, "lowest_recent_price": lowest, "lowest_recent_price_since": since,
                "was_over_lowest": round(point.was / lowest, 3), "threshold_was_tolerance": cfg.was_tolerance,
                "history_complete": record.complete}}
        # A "was" price the listing never charged misleads when the discount it claims exceeds the real one
        # (from the lowest regular price) by as much as a discount must be to show at all; a sale from 25.99
        # marked "was 26.99" (a price shown for a minute) claims 22% off for a real 19%: no shopper is misled.
        overstated = (1.0 - point.price / point.was) - (1.0 - point.price / lowest) >= cfg.min_discount
        if overstated and record.covers(point.ts, window_ms) and not record.charged(
                point.was, point.ts, window_ms, hold_ms):
            return {"was_never_charged": {
                **common, "lowest_recent_price": lowest, "was_over_lowest": round(point.was / lowest, 3),
                "min_hold_seconds": cfg.min_hold_seconds, "history_complete": record.complete}}
        return {}
    if again:
        return {}  # nothing new to say about comparable items
    far = far_above(comparable, index, listing_id, currency, brand, words, point.was, cfg.far_above_ratio,
                    cfg.far_above_z, cfg.far_above_category_ratio, prefix="was_price_")
    if far is None:
        return {}
    return {"was_far_above_comparable_items": {**common, **far}}
