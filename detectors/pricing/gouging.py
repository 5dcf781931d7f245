"""Price gouging: a steep raise against the listing's own recent prices, or a price far above comparable items.

Comparable means the same kind of product (`comparable.py`): the listings
most like this one, at its brand's level, so a legitimately expensive
product type in a cheap category (a standing desk among candles) is compared
with other desks, and a premium brand with itself. A title the category has
not seen the like of, or a brand whose level is not known yet, is not judged
against a going rate at all (precision first). A
return to a price the listing really charged (the end of a sale) is never a
raise.
"""

from __future__ import annotations

from typing import Any

import msgspec

from detectors.pricing.comparable import ComparableConfig, ComparableIndex
from detectors.pricing.levels import in_stock
from detectors.pricing.market import ListingRecord, PricePoint

VIOLATION_TYPE = "price_gouging"
DETECTOR = "price_gouging_v2"


class GougingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of price gouging (table `[detectors.pricing.price_gouging]`).

    Parameters
    ----------
    raise_ratio
        A steep raise: the new price of an in-stock listing is at least this
        many times its lowest price within `raise_lookback_seconds` (in one
        step or several: 100 -> 169 -> 399 is a 4x raise)...
    raise_over_recent_high
        ...and at least this many times the highest price it had within
        `raise_lookback_seconds`, so the end of a sale or a clearance (back to
        a price it really had) is never a raise.
    raise_lookback_seconds
        How far back a listing's own prices count as its recent prices.
    far_above_ratio, far_above_z
        Far above comparable items: at least this many times their going rate
        and at least this many robust standard deviations above it.
    far_above_category_ratio
        And at least this many times the category's going rate, so a noisy
        group cannot flag a price unremarkable for the category.
    cooldown_seconds
        One finding per listing within this period.
    """

    raise_ratio: float
    raise_over_recent_high: float
    raise_lookback_seconds: float
    far_above_ratio: float
    far_above_z: float
    far_above_category_ratio: float
    cooldown_seconds: float


def steep_raise(cfg: GougingConfig, points: list[PricePoint], at: int) -> dict[str, Any] | None:
    """Evidence that point `at` is a steep raise over the listing's recent prices, or None."""
    ts, price, _, stock = points[at]
    recent = [p for p in points[:at] if p.ts >= ts - cfg.raise_lookback_seconds * 1000]
    if not recent or not in_stock(stock):
        return None
    previous, highest = recent[-1], max(p.price for p in recent)
    lowest = min(recent, key=lambda p: p.price)
    if price < cfg.raise_ratio * lowest.price or price < cfg.raise_over_recent_high * highest:
        return None
    if ends_a_sale(points, at):
        return None
    return {"recent_price": previous.price, "recent_price_ts": previous.ts, "recent_high": highest,
            "recent_low": lowest.price, "recent_low_ts": lowest.ts,
            "raised_price": price, "raised_at": ts, "price_point_ts": ts, "raise_ratio": round(price / lowest.price, 3),
            "raised_stock": stock, "threshold_raise_ratio": cfg.raise_ratio,
            "threshold_over_recent_high": cfg.raise_over_recent_high,
            "lookback_seconds": cfg.raise_lookback_seconds}


def ends_a_sale(points: list[PricePoint], at: int) -> bool:
    """Point `at` returns to the regular ("was") price the point before it showed.

    Whether that "was" price was ever real is the fake-discount judge's
    finding, and one act is one violation.
    """
    if at == 0:
        return False
    previous = points[at - 1]
    return previous.was is not None and previous.price < points[at].price <= previous.was * 1.01


def far_above(cfg: ComparableConfig, index: ComparableIndex, listing_id: str, currency: str, brand: str,
              words: frozenset[str], price: float, ratio: float, z: float, category_ratio: float,
              prefix: str = "") -> dict[str, Any] | None:
    """Evidence that `price` is far above comparable items (at least `ratio` times, `z` spreads), or None."""
    reference = index.reference(cfg, brand, words, currency, price, exclude=listing_id, lean=+1.0)
    if reference is None or reference.z < z or not reference.surely_above(ratio, cfg.level_certainty):
        return None
    category = index.category_level(currency)
    if category is None or price < category_ratio * category:
        return None  # unremarkable for the category as a whole
    return {**{prefix + k: v for k, v in reference.evidence().items()},
            f"{prefix}category_going_rate": round(category, 2),
            "threshold_far_above_ratio": ratio, "threshold_far_above_z": z,
            "threshold_far_above_category_ratio": category_ratio}


def judge(cfg: GougingConfig, comparable: ComparableConfig, index: ComparableIndex, listing_id: str,
          record: ListingRecord, at: int, currency: str, brand: str, words: frozenset[str]) -> dict[str, dict[str, Any]]:
    """Price gouging findings for the price point at `at` of a listing (empty when clean)."""
    points = record.points
    findings: dict[str, dict[str, Any]] = {}
    raised = steep_raise(cfg, points, at)
    if raised is None and at + 1 < len(points):
        # A late event may be the missing "before" of a raise that arrived first.
        raised = steep_raise(cfg, points, at + 1)
    if raised is not None:
        findings["sudden_raise"] = raised
    if not ends_a_sale(points, at):
        far = far_above(comparable, index, listing_id, currency, brand, words, points[at].price, cfg.far_above_ratio,
                        cfg.far_above_z, cfg.far_above_category_ratio)
        if far is not None:
            findings["far_above_comparable_items"] = {**far, "price_point_ts": points[at].ts}
    return findings
