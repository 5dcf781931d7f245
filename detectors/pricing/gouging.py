"""Price gouging: a steep raise against the listing's own recent prices, or a price far above comparable items.

Comparable means the same kind of product (`levels.py`): a listing is held to
the most expensive group of comparable items its title and brand put it in,
so a legitimately expensive product type in a cheap category (a standing desk
among candles) is compared with other desks, and a premium brand with itself.
A title with a word the category has not seen enough of, or a brand whose
items like this one are still few, is not judged against a going rate at
all (precision first). A
return to a price the listing really charged (the end of a sale) is never a
raise.
"""

from __future__ import annotations

from typing import Any

import msgspec

from detectors.pricing.levels import (
    ALL, ComparableLevels, Deviation, LevelsConfig, comparable_groups, in_stock, most_specific,
)
from detectors.pricing.market import ListingRecord, PricePoint

VIOLATION_TYPE = "price_gouging"
DETECTOR = "price_gouging_v2"


class GougingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of price gouging (table `[detectors.pricing.price_gouging]`).

    Parameters
    ----------
    raise_ratio
        A sudden raise: the new price of an in-stock listing is at least this
        many times its previous price...
    raise_over_recent_high
        ...and at least this many times the highest price it had within
        `raise_lookback_seconds`, so the end of a sale or a clearance (back to
        a price it really had) is never a raise.
    raise_lookback_seconds
        How far back a listing's own prices count as its recent prices.
    far_above_ratio, far_above_z
        Far above comparable items: at least this many times the going rate of
        the most specific group of comparable items the listing belongs to,
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
    if price < cfg.raise_ratio * previous.price or price < cfg.raise_over_recent_high * highest:
        return None
    if ends_a_sale(points, at):
        return None
    return {"recent_price": previous.price, "recent_price_ts": previous.ts, "recent_high": highest,
            "raised_price": price, "raised_at": ts, "price_point_ts": ts, "raise_ratio": round(price / previous.price, 3),
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


def comparable_reference(levels_cfg: LevelsConfig, levels: ComparableLevels, currency: str, brand: str,
                         words: frozenset[str], price: float) -> Deviation | None:
    """`price` against the most specific group of comparable items the listing belongs to, or None.

    Comparable items are its brand's items (or, unbranded, the category's)
    sharing the words of its title that name a kind of product
    (`levels.comparable_groups`). A word the category has not seen enough of
    may name a new, expensive product type (the first desks among candles),
    and a brand as a whole mixes its product lines: neither is compared.
    """
    groups = comparable_groups(levels_cfg, levels, currency, brand, words, price)
    return most_specific(groups, prefer_expensive=True) if groups else None


def far_above(levels_cfg: LevelsConfig, levels: ComparableLevels, currency: str, brand: str,
              words: frozenset[str], price: float, ratio: float, z: float, category_ratio: float,
              prefix: str = "", written: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Evidence that `price` is far above comparable items (at least `ratio` times, `z` spreads), or None."""
    reference = comparable_reference(levels_cfg, levels, currency, brand, words, price)
    if reference is None or reference.z < z or not reference.surely_above(ratio, levels_cfg.level_certainty):
        return None
    category = levels.deviation(levels_cfg, currency, ALL, price)
    if category is None or not category.surely_above(category_ratio, levels_cfg.level_certainty):
        return None
    return {**{prefix + k: v for k, v in reference.evidence(written).items()},
            f"{prefix}category_going_rate": round(category.level_price, 2),
            "threshold_far_above_ratio": ratio, "threshold_far_above_z": z,
            "threshold_far_above_category_ratio": category_ratio}


def judge(cfg: GougingConfig, levels_cfg: LevelsConfig, levels: ComparableLevels, record: ListingRecord, at: int,
          currency: str, brand: str, words: frozenset[str], written: dict[str, str]) -> dict[str, dict[str, Any]]:
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
        far = far_above(levels_cfg, levels, currency, brand, words, points[at].price, cfg.far_above_ratio,
                        cfg.far_above_z, cfg.far_above_category_ratio, written=written)
        if far is not None:
            findings["far_above_comparable_items"] = {**far, "price_point_ts": points[at].ts}
    return findings
