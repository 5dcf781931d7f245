"""Fake discounts: a "was" price the listing never had (its history since creation is known),
or one far above the going rate. A sale whose "was" price is the real previous price is clean.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from detectors.base import Signal, clamp01
from detectors.pricing.levels import (
    ComparableLevelConfig, LevelBook, TitleVocabulary, brand_key, far_above_going_rate, money, remember, title_words,
)
from detectors.registry import register
from pipeline.contract.events import ListingCreated, ListingUpdated, ListingUpserted


class FakeDiscountConfig(ComparableLevelConfig, frozen=True, forbid_unknown_fields=True):
    """Thresholds of `FakeDiscount` (table `[detectors.fake_discount]`), plus `ComparableLevelConfig`'s keys.

    Parameters
    ----------
    min_discount
        A "was" price counts as a claimed discount only when the price is at
        least this fraction below it.
    was_tolerance
        For a listing whose every price is known (its creation was seen), a
        "was" price above this many times the highest price it really had was
        never charged; up to it is accepted (rounding, small corrections).
    far_above_ratio, far_above_z
        A "was" price the history cannot judge (the listing's first event, or
        a listing first seen mid-life) is invented when it is at least this
        many times the going rate of its (category, brand) level and this many
        robust standard deviations above it (log scale).
    """

    min_discount: float
    was_tolerance: float
    far_above_ratio: float
    far_above_z: float


@dataclass(slots=True)
class _WasPrices:
    """What one listing really cost, and the last discount it claimed."""

    actor: str
    complete: bool  # its listing.created was seen: every price it had is known
    highest: float = 0.0  # highest price it really had
    highest_ts: int = 0
    price: float = 0.0  # its latest price
    claim: tuple[int, float, float] | None = None  # last discount shown: (ts, price, original_price)
    flagged_at: int | None = None


@dataclass(slots=True)
class CategoryDiscounts:
    """A category's going rates and its listings' real prices (for `FakeDiscount`)."""

    levels: LevelBook = field(default_factory=LevelBook)
    vocabulary: TitleVocabulary = field(default_factory=TitleVocabulary)
    listings: OrderedDict[str, _WasPrices] = field(default_factory=OrderedDict)


@register
class FakeDiscount:
    """An invented "was" price: one the listing never had, or far above the going rate.

    Examples
    --------
    >>> cfg = FakeDiscountConfig(level_window=256, level_refresh_every=16, min_category_observations=20,
    ...     min_brand_observations=20, min_log_spread=0.1, level_certainty=1, max_levels=64, max_listings=1000,
    ...     cooldown_seconds=86400, far_above_category_ratio=2, common_word_share=0.02, min_word_titles=3,
    ...     min_title_familiarity=0.5, max_vocabulary=5000, min_discount=0.05, was_tolerance=1.1,
    ...     far_above_ratio=4, far_above_z=4)
    >>> det = FakeDiscount(cfg)
    >>> def upsert(i, price, was, kind=ListingUpdated):
    ...     return kind(event_id=f"e{i}", ts=i * 60_000, seller_id="S1", listing_id="L1", title="Desk lamp",
    ...         category="home", price=price, currency="USD", brand=None, original_price=was,
    ...         image_hash=None, stock=5)
    >>> state, found = None, []
    >>> for i, (price, was) in enumerate([(30.0, None), (24.0, 30.0), (30.0, None), (29.0, 89.0)]):
    ...     state, signals = det.on_event(state, upsert(i, price, was, ListingCreated if i == 0 else ListingUpdated))
    ...     found += signals
    >>> [(s.subject, s.detected_at, s.evidence["highest_real_price"], s.evidence["original_price"]) for s in found]
    [('L1:was_price_never_charged', 180000, 30.0, 89.0)]
    """

    name: ClassVar[str] = "fake_discount_v1"
    violation_type: ClassVar[str] = "fake_discount"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "fake_discount"
    Config: ClassVar[type] = FakeDiscountConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
    event_types: ClassVar[frozenset[type]] = frozenset({ListingCreated, ListingUpdated})

    def __init__(self, config: FakeDiscountConfig) -> None:
        self.config = config
        self._cooldown_ms = int(config.cooldown_seconds * 1000)

    def entity(self, event: ListingUpserted) -> str:
        return event.category

    def on_event(self, state: CategoryDiscounts | None,
                 event: ListingUpserted) -> tuple[CategoryDiscounts, list[Signal]]:
        cfg = self.config
        state = state or CategoryDiscounts()
        created = isinstance(event, ListingCreated)
        record = state.listings.get(event.listing_id)
        first_sight = record is None
        if record is None:
            record = _WasPrices(actor=f"seller:{event.seller_id}", complete=created)
        remember(state.listings, event.listing_id, record, cfg.max_listings)
        brand = brand_key(event.brand)
        known_before = record.highest if record.complete else 0.0
        completed_late = created and not record.complete  # its creation arrived after a later update
        record.complete = record.complete or created
        price_is_new = event.price != record.price
        record.price = event.price
        if event.price > record.highest:
            record.highest, record.highest_ts = event.price, event.ts

        findings: dict[str, dict[str, Any]] = {}
        claim = self._claim(event)
        if claim is not None and claim != record.claim:
            findings = self._judge(state, event, claim, known_before)
            if claim[0] >= (record.claim[0] if record.claim else claim[0]):
                record.claim = claim
        elif completed_late and record.claim is not None:
            # Now the whole history is known: the discount shown earlier can be checked against it.
            claim = record.claim
            findings = self._judge(state, event, claim, record.highest, only_history=True)
        if not findings:
            if price_is_new:
                state.levels.learn_listing(cfg, event.currency, brand, event.price)
            if first_sight:
                state.vocabulary.learn(title_words(event.title, event.brand), cfg.max_vocabulary)
            return state, []
        if record.flagged_at is not None and abs(claim[0] - record.flagged_at) < self._cooldown_ms:
            return state, []
        record.flagged_at = claim[0]
        return state, [self._signal(record, event, claim, findings)]

    def _claim(self, event: ListingUpserted) -> tuple[int, float, float] | None:
        """(ts, price, original_price) when the listing shows a discount, else None."""
        was = event.original_price
        if was is None or event.price > was * (1.0 - self.config.min_discount):
            return None
        return (event.ts, event.price, was)

    def _judge(self, state: CategoryDiscounts, event: ListingUpserted, claim: tuple[int, float, float],
               highest_real: float, only_history: bool = False) -> dict[str, dict[str, Any]]:
        """Why the claimed "was" price is not real (empty when it may be)."""
        cfg = self.config
        _, price, was = claim
        findings: dict[str, dict[str, Any]] = {}
        # `highest_real` is 0 while the listing's history is unknown (first sight, or created unseen):
        # then, and only then, the going rate is all there is to judge by.
        if highest_real > 0:
            if was > cfg.was_tolerance * highest_real:
                findings["was_price_never_charged"] = {
                    "highest_real_price": highest_real, "was_over_highest": round(was / highest_real, 3),
                    "threshold_was_tolerance": cfg.was_tolerance}
        elif not only_history:
            far = far_above_going_rate(cfg, state.levels, state.vocabulary, event, was,
                                       cfg.far_above_ratio, cfg.far_above_z, prefix="was_price_")
            if far is not None:
                findings["was_price_far_above_going_rate"] = far
        return findings

    def _signal(self, record: _WasPrices, event: ListingUpserted, claim: tuple[int, float, float],
                findings: dict[str, dict[str, Any]]) -> Signal:
        ts, price, was = claim
        kind = "was_price_never_charged" if "was_price_never_charged" in findings else "was_price_far_above_going_rate"
        never = findings.get("was_price_never_charged")
        far = findings.get("was_price_far_above_going_rate")
        strength = 0.0
        if never:
            strength += math.log(never["was_over_highest"] / self.config.was_tolerance + 1.0)
        if far:
            strength += math.log(far["was_price_ratio_to_going_rate"] / self.config.far_above_ratio + 1.0)
        evidence: dict[str, Any] = {
            "listing_id": event.listing_id, "title": event.title, "category": event.category,
            "brand": event.brand, "currency": event.currency, "price": price, "original_price": was,
            "claimed_discount": round(1.0 - price / was, 3), "claimed_at": ts, "kinds": sorted(findings),
        }
        for finding in findings.values():
            evidence.update(finding)
        if never:
            why = f"the listing never sold for more than {money(never['highest_real_price'])}"
        else:
            why = f"that is {far['was_price_ratio_to_going_rate']:.1f}x the going rate for comparable listings"
        return Signal(
            actor=record.actor,
            violation_type=self.violation_type,
            detector=self.name,
            subject=f"{event.listing_id}:{kind}",
            detected_at=max(ts, event.ts),
            window_start=min(ts, record.highest_ts) if never else ts,
            window_end=max(ts, event.ts),
            confidence=clamp01(0.6 + 0.2 * strength),
            evidence=evidence,
            explanation=(
                f"Listing {event.listing_id} shows a \"was\" price of {money(was)} but {why}; "
                "only show a previous price you really charged."),
        )
