"""Price gouging: an in-stock item whose price jumps to several times what it cost recently,
or a price far above its (category, brand) going rate. A premium brand is judged against its own
level; a price drop never fires.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from detectors.base import Signal, clamp01
from detectors.pricing.levels import (
    ComparableLevelConfig, LevelBook, TitleVocabulary, brand_key, ends_a_sale, far_above_going_rate, in_stock, money,
    remember, title_words,
)
from detectors.registry import register
from pipeline.contract.events import ListingCreated, ListingUpdated, ListingUpserted


class PriceGougingConfig(ComparableLevelConfig, frozen=True, forbid_unknown_fields=True):
    """Thresholds of `PriceGouging` (table `[detectors.price_gouging]`), plus `ComparableLevelConfig`'s keys.

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
    history_points
        Price points remembered per listing.
    far_above_ratio, far_above_z
        Far above the going rate: at least this many times the median price of
        the listing's (category, brand) level and at least this many robust
        standard deviations above it (log scale), for a listing comparable to
        its category (see `ComparableLevelConfig`).
    """

    raise_ratio: float
    raise_over_recent_high: float
    raise_lookback_seconds: float
    history_points: int
    far_above_ratio: float
    far_above_z: float


@dataclass(slots=True)
class _PriceHistory:
    """One listing's recent price points (ts, price, stock, "was" price shown), in event-time order."""

    actor: str
    points: list[tuple[int, float, int | None, float | None]] = field(default_factory=list)
    flagged_at: int | None = None


@dataclass(slots=True)
class CategoryPrices:
    """A category's going rates and its listings' recent prices (for `PriceGouging`)."""

    levels: LevelBook = field(default_factory=LevelBook)
    vocabulary: TitleVocabulary = field(default_factory=TitleVocabulary)
    listings: OrderedDict[str, _PriceHistory] = field(default_factory=OrderedDict)


@register
class PriceGouging:
    """A steep sudden raise of an in-stock item, or a price far above the going rate.

    Examples
    --------
    >>> cfg = PriceGougingConfig(level_window=256, level_refresh_every=16, min_category_observations=20,
    ...     min_brand_observations=20, min_log_spread=0.1, level_certainty=1, max_levels=64, max_listings=1000,
    ...     cooldown_seconds=86400, far_above_category_ratio=2, common_word_share=0.02, min_word_titles=3,
    ...     min_title_familiarity=0.5, max_vocabulary=5000, raise_ratio=2.5, raise_over_recent_high=1.5,
    ...     raise_lookback_seconds=86400, history_points=8, far_above_ratio=3, far_above_z=3)
    >>> det = PriceGouging(cfg)
    >>> def upsert(i, listing, price, kind=ListingUpdated):
    ...     return kind(event_id=f"e{i}", ts=i * 60_000, seller_id="S1", listing_id=listing, title="Hand sanitizer",
    ...         category="health", price=price, currency="USD", brand=None, original_price=None,
    ...         image_hash=None, stock=50)
    >>> state, found = None, []
    >>> for i, (listing, price) in enumerate([("L1", 8.0), ("L1", 8.5), ("L1", 29.0)]):
    ...     state, signals = det.on_event(state, upsert(i, listing, price))
    ...     found += signals
    >>> [(s.actor, s.subject, s.detected_at, s.evidence["recent_price"]) for s in found]
    [('seller:S1', 'L1:sudden_raise', 120000, 8.5)]
    """

    name: ClassVar[str] = "price_gouging_v1"
    violation_type: ClassVar[str] = "price_gouging"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "price_gouging"
    Config: ClassVar[type] = PriceGougingConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
    event_types: ClassVar[frozenset[type]] = frozenset({ListingCreated, ListingUpdated})

    def __init__(self, config: PriceGougingConfig) -> None:
        self.config = config
        self._lookback_ms = int(config.raise_lookback_seconds * 1000)
        self._cooldown_ms = int(config.cooldown_seconds * 1000)

    def entity(self, event: ListingUpserted) -> str:
        return event.category

    def on_event(self, state: CategoryPrices | None, event: ListingUpserted) -> tuple[CategoryPrices, list[Signal]]:
        cfg = self.config
        state = state or CategoryPrices()
        history = state.listings.get(event.listing_id)
        first_sight = history is None
        if history is None:
            history = _PriceHistory(actor=f"seller:{event.seller_id}")
        remember(state.listings, event.listing_id, history, cfg.max_listings)
        newest = history.points[-1] if history.points else None
        if newest and event.ts >= newest[0] and newest[1] == event.price and newest[3] == event.original_price:
            # Same price as before (a restock, a new title): keep the stock current, nothing new to judge.
            history.points[-1] = (newest[0], event.price, event.stock, event.original_price)
            return state, []
        at = self._insert(history, event)
        findings: dict[str, dict[str, Any]] = {}
        raise_ = self._steep_raise(history, at)
        if raise_ is None and at + 1 < len(history.points):
            # A late event may be the missing "before" of a raise that arrived first.
            raise_ = self._steep_raise(history, at + 1)
        if raise_ is not None:
            findings["sudden_raise"] = raise_
        far = None if ends_a_sale(history.points, at) else far_above_going_rate(
            cfg, state.levels, state.vocabulary, event, event.price, cfg.far_above_ratio, cfg.far_above_z)
        if far is not None:
            findings["far_above_going_rate"] = far
        if not findings:
            state.levels.learn_listing(cfg, event.currency, brand_key(event.brand), event.price)
            if first_sight:
                state.vocabulary.learn(title_words(event.title, event.brand), cfg.max_vocabulary)
            return state, []
        if history.flagged_at is not None and abs(event.ts - history.flagged_at) < self._cooldown_ms:
            return state, []
        history.flagged_at = event.ts
        return state, [self._signal(history, event, findings)]

    def _insert(self, history: _PriceHistory, event: ListingUpserted) -> int:
        """Put the event's price point in time order; keep the newest `history_points`; return its index."""
        points = history.points
        point = (event.ts, event.price, event.stock, event.original_price)
        at = bisect_right([p[0] for p in points], event.ts)
        points.insert(at, point)
        excess = len(points) - self.config.history_points
        if excess > 0:
            del points[:excess]
            at -= excess
        return max(at, 0)

    def _steep_raise(self, history: _PriceHistory, at: int) -> dict[str, Any] | None:
        """Evidence that point `at` is a steep raise over the listing's recent prices, or None."""
        cfg = self.config
        ts, price, stock, _ = history.points[at]
        recent = [p for p in history.points[:at] if p[0] >= ts - self._lookback_ms]
        if not recent or not in_stock(stock):
            return None
        previous, highest = recent[-1], max(p[1] for p in recent)
        if price < cfg.raise_ratio * previous[1] or price < cfg.raise_over_recent_high * highest:
            return None
        if ends_a_sale(history.points, at):
            return None
        return {"recent_price": previous[1], "recent_price_ts": previous[0], "recent_high": highest,
                "raised_price": price, "raised_at": ts, "raise_ratio": round(price / previous[1], 3),
                "raised_stock": stock, "threshold_raise_ratio": cfg.raise_ratio,
                "threshold_over_recent_high": cfg.raise_over_recent_high,
                "lookback_seconds": cfg.raise_lookback_seconds}

    def _signal(self, history: _PriceHistory, event: ListingUpserted, findings: dict[str, dict[str, Any]]) -> Signal:
        cfg = self.config
        kind = "sudden_raise" if "sudden_raise" in findings else "far_above_going_rate"
        raise_ = findings.get("sudden_raise")
        far = findings.get("far_above_going_rate")
        strength = 0.0
        if raise_:
            strength += math.log(raise_["raise_ratio"] / cfg.raise_ratio + 1.0)
        if far:
            strength += math.log(far["ratio_to_going_rate"] / cfg.far_above_ratio + 1.0)
        evidence: dict[str, Any] = {
            "listing_id": event.listing_id, "title": event.title, "category": event.category,
            "brand": event.brand, "currency": event.currency, "price": event.price, "stock": event.stock,
            "kinds": sorted(findings),
        }
        for finding in findings.values():
            evidence.update(finding)
        if raise_:
            what = (f"you raised the price of listing {event.listing_id} to {money(raise_['raised_price'])} "
                    f"from {money(raise_['recent_price'])} ({raise_['raise_ratio']:.1f}x) while it was in stock")
        else:
            what = (f"listing {event.listing_id} is priced at {money(event.price)}, "
                    f"{far['ratio_to_going_rate']:.1f}x the going rate of {money(far['going_rate'])} "
                    f"for comparable {event.category} listings")
        return Signal(
            actor=history.actor,
            violation_type=self.violation_type,
            detector=self.name,
            subject=f"{event.listing_id}:{kind}",
            detected_at=max(event.ts, raise_["raised_at"]) if raise_ else event.ts,
            window_start=raise_["recent_price_ts"] if raise_ else event.ts,
            window_end=max(event.ts, raise_["raised_at"]) if raise_ else event.ts,
            confidence=clamp01(0.6 + 0.2 * strength),
            evidence=evidence,
            explanation=f"{what[0].upper()}{what[1:]}; price items fairly for what they are.",
        )
