"""`Pricing`: the one detector that judges listing prices and brands, on one shared market per category.

Price gouging (`gouging.py`), fake discounts (`discount.py`) and counterfeit
listings (`counterfeit.py`) all judge a listing against what its category's
market taught (`market.py`: comparable price levels, each listing's own
price history, the brands its sellers name) and against the platform's brand
registry. They share that state, judge first and learn after: a listing any
of them flags teaches the market nothing.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import msgspec

from detectors.base import Signal, clamp01
from detectors.pricing import counterfeit, discount, gouging
from detectors.pricing.counterfeit import CounterfeitConfig, Wording
from detectors.pricing.discount import DiscountConfig
from detectors.pricing.gouging import GougingConfig
from detectors.pricing.comparable import ComparableConfig, Item
from detectors.pricing.discount import asking_price
from detectors.pricing.levels import brand_key, money, title_words, variant_words
from detectors.pricing.market import BrandRegistry, CategoryMarket, ListingRecord, PricePoint
from detectors.registry import register
from pipeline.contract.events import BrandRegistered, ListingCreated, ListingUpdated, ListingUpserted

DAY_MS = 86_400_000


class PricingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[detectors.pricing]`: what each category's market remembers, and one table per judge.

    Parameters
    ----------
    max_listings
        Listings remembered per category (least recently updated dropped first).
    history_days, history_points
        Each listing's price history: this many days back (from its newest
        price), at most this many price points.
    comparable, price_gouging, fake_discount, counterfeit_listing
        `[detectors.pricing.comparable]` and one table per judge.
    """

    max_listings: int
    history_days: float
    history_points: int
    comparable: ComparableConfig
    price_gouging: GougingConfig
    fake_discount: DiscountConfig
    counterfeit_listing: CounterfeitConfig


@register
class Pricing:
    """Price gouging, fake discounts and counterfeits, judged on one market per category.

    Examples
    --------
    A category learns what ceramic vases and mugs cost; one seller then asks
    six times what vases like it cost, and later shows a strike-through price
    it never charged:

    >>> from detectors.pricing.testing import example_config, listing
    >>> det = Pricing(example_config())
    >>> state = None
    >>> for i in range(80):
    ...     title, price = ("Ceramic Vase", 20.0 + i % 5) if i % 2 else ("Ceramic Mug", 8.0 + i % 3)
    ...     state, _ = det.on_event(state, listing(i, title, price))
    >>> state, found = det.on_event(state, listing(80, "Ceramic Vase", 140.0))
    >>> [(s.violation_type, s.evidence["kinds"], s.evidence["compared_with"]) for s in found]
    [('price_gouging', ['far_above_comparable_items'], '15 similar listings')]
    >>> state, found = det.on_event(state, listing(81, "Ceramic Vase", 22.0, minute=600, listing_id="L1"))
    >>> state, found = det.on_event(state, listing(82, "Ceramic Vase", 20.0, was=60.0, minute=700, listing_id="L1"))
    >>> [(s.violation_type, s.evidence["kinds"]) for s in found]
    [('fake_discount', ['was_above_recent_prices'])]
    """

    name: ClassVar[str] = "pricing_v2"
    table: ClassVar[str] = "pricing"
    violation_types: ClassVar[tuple[str, ...]] = (
        gouging.VIOLATION_TYPE, discount.VIOLATION_TYPE, counterfeit.VIOLATION_TYPE)
    Config: ClassVar[type] = PricingConfig
    event_types: ClassVar[frozenset[type]] = frozenset({ListingCreated, ListingUpdated})
    shared_types: ClassVar[frozenset[type]] = frozenset({BrandRegistered})
    detector_ids: ClassVar[dict[str, str]] = {
        gouging.VIOLATION_TYPE: gouging.DETECTOR, discount.VIOLATION_TYPE: discount.DETECTOR,
        counterfeit.VIOLATION_TYPE: counterfeit.DETECTOR}
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds

    def __init__(self, config: PricingConfig) -> None:
        self.config = config
        self.wording = Wording(config.counterfeit_listing)
        self._keep_ms = int(config.history_days * DAY_MS)
        self._cooldown_ms = {
            gouging.VIOLATION_TYPE: int(config.price_gouging.cooldown_seconds * 1000),
            discount.VIOLATION_TYPE: int(config.fake_discount.cooldown_seconds * 1000),
            counterfeit.VIOLATION_TYPE: int(config.counterfeit_listing.cooldown_seconds * 1000),
        }

    def entity(self, event: ListingUpserted) -> str:
        return event.category

    def on_shared(self, registry: BrandRegistry | None, event: BrandRegistered) -> BrandRegistry:
        registry = registry or BrandRegistry()
        registry.register(event.brand, event.aliases, self.config.counterfeit_listing.max_registered_brands)
        return registry

    def on_event(self, state: CategoryMarket | None, event: ListingUpserted,
                 shared: BrandRegistry | None = None) -> tuple[CategoryMarket, list[Signal]]:
        cfg = self.config
        market = state or CategoryMarket()
        record = market.record(event.listing_id, f"seller:{event.seller_id}", type(event) is ListingCreated,
                               cfg.max_listings)
        if self._unchanged(record, event):
            return market, []
        at = record.add(PricePoint(event.ts, event.price, event.original_price, event.stock), self._keep_ms,
                        cfg.history_points)
        brand, words = brand_key(event.brand), title_words(event.title, event.brand)
        findings = self._judge(market, shared, record, at, event, brand, words)
        if not any(findings.values()):
            self._learn(market, record, at, event, brand, words)
            return market, []
        return market, [self._signal(record, event, vtype, found)
                        for vtype, found in findings.items()
                        if found and self._ready(record, vtype, event.ts)]

    def _unchanged(self, record: ListingRecord, event: ListingUpserted) -> bool:
        """Same price, strike-through and title as the newest point: keep its stock current, judge nothing."""
        if not record.points:
            return False
        newest = record.points[-1]
        if event.ts < newest.ts or (newest.price, newest.was) != (event.price, event.original_price):
            return False
        record.points[-1] = newest._replace(stock=event.stock)
        return True

    def _judge(self, market: CategoryMarket, registry: BrandRegistry | None, record: ListingRecord, at: int,
               event: ListingUpserted, brand: str, words: frozenset[str]) -> dict[str, dict[str, Any]]:
        cfg, index, lid, cur = self.config, market.index, event.listing_id, event.currency
        return {
            gouging.VIOLATION_TYPE: gouging.judge(cfg.price_gouging, cfg.comparable, index, lid, record, at, cur,
                                                  brand, words),
            discount.VIOLATION_TYPE: discount.judge(cfg.fake_discount, cfg.comparable, index, lid, record, at, cur,
                                                    brand, words),
            counterfeit.VIOLATION_TYPE: counterfeit.judge(
                cfg.counterfeit_listing, self.wording, cfg.comparable, market, registry, lid, event.title,
                event.brand, brand, words, cur, discount.asking_price(cfg.fake_discount, record, at)),
        }

    def _learn(self, market: CategoryMarket, record: ListingRecord, at: int, event: ListingUpserted, brand: str,
               words: frozenset[str]) -> None:
        """A clean listing teaches its groups its price (once per new price) and its brand's name."""
        market.index.learn(self.config.comparable, event.listing_id,
                           Item(brand, words, math.log(asking_price(self.config.fake_discount, record, at)),
                                event.currency, variant_words(event.title, event.brand) & words))
        points = record.points
        if event.brand and len(points) == 1:
            market.learn_brand(event.brand, self.config.counterfeit_listing.max_learned_brands)

    def _ready(self, record: ListingRecord, vtype: str, ts: int) -> bool:
        if record.cooling(vtype, ts, self._cooldown_ms[vtype]):
            return False
        record.flagged[vtype] = ts
        return True

    def _signal(self, record: ListingRecord, event: ListingUpserted, vtype: str,
                findings: dict[str, dict[str, Any]]) -> Signal:
        evidence: dict[str, Any] = {
            "listing_id": event.listing_id, "title": event.title, "category": event.category, "brand": event.brand,
            "currency": event.currency, "price": event.price, "kinds": sorted(findings),
        }
        for finding in findings.values():
            evidence.update(finding)
        detector, confidence, why = _EXPLAIN[vtype](self.config, event, findings, evidence)
        # A late event may complete the evidence of a price shown after it: dated at that price.
        judged = max((f.get("price_point_ts", event.ts) for f in findings.values()), default=event.ts)
        found_at = max(event.ts, judged)
        # One act, one id: the listing at the price judged, whichever findings showed it (what the
        # comparable items were can depend on the order a category's events arrived in).
        return Signal(
            actor=record.actor, violation_type=vtype, detector=detector, subject=event.listing_id,
            detected_at=found_at, window_start=judged, window_end=found_at,
            confidence=clamp01(confidence), evidence=evidence, explanation=why,
        )


def _gouging(cfg: PricingConfig, event: ListingUpserted, findings: dict, evidence: dict) -> tuple[str, float, str]:
    raised, far = findings.get("sudden_raise"), findings.get("far_above_comparable_items")
    strength = 0.0
    if raised:
        strength += math.log(raised["raise_ratio"] / cfg.price_gouging.raise_ratio + 1.0)
    if far:
        strength += math.log(far["ratio_to_going_rate"] / cfg.price_gouging.far_above_ratio + 1.0)
    if raised:
        why = (f"Your listing \"{event.title}\" went from {money(raised['recent_low'])} to "
               f"{money(event.price)} {event.currency} within days, {raised['raise_ratio']:.1f}x its recent price; "
               "sudden steep raises on items in demand are price gouging.")
    else:
        why = (f"Your listing \"{event.title}\" costs {money(event.price)} {event.currency}, "
               f"{far['ratio_to_going_rate']:.1f}x the going rate of comparable items "
               f"({money(far['going_rate'])}); price it in line with what such items sell for.")
    return gouging.DETECTOR, 0.55 + 0.25 * strength, why


def _discount(cfg: PricingConfig, event: ListingUpserted, findings: dict, evidence: dict) -> tuple[str, float, str]:
    recent = findings.get("was_above_recent_prices") or findings.get("was_never_charged")
    far = findings.get("was_far_above_comparable_items")
    if findings.get("was_never_charged") and not findings.get("was_above_recent_prices"):
        why = (f"Your listing \"{event.title}\" shows a \"was\" price of {money(evidence['was_price'])} "
               f"{event.currency} that it never charged in the last {cfg.fake_discount.reference_window_days:g} "
               "days; a strike-through price must be one you really charged.")
        strength = 0.5
    elif recent:
        why = (f"Your listing \"{event.title}\" shows a \"was\" price of {money(evidence['was_price'])} "
               f"{event.currency}, but its lowest price in the last {cfg.fake_discount.reference_window_days:g} days "
               f"was {money(recent['lowest_recent_price'])}; a strike-through price must be one you really charged.")
        strength = math.log(recent["was_over_lowest"] / cfg.fake_discount.was_tolerance + 1.0)
    else:
        why = (f"Your listing \"{event.title}\" shows a \"was\" price of {money(evidence['was_price'])} "
               f"{event.currency}, {far['was_price_ratio_to_going_rate']:.1f}x what comparable items sell for; "
               "only show a former price the item really had.")
        strength = math.log(far["was_price_ratio_to_going_rate"] / cfg.fake_discount.far_above_ratio + 1.0)
    return discount.DETECTOR, 0.55 + 0.25 * strength, why


def _counterfeit(cfg: PricingConfig, event: ListingUpserted, findings: dict, evidence: dict) -> tuple[str, float, str]:
    brand = evidence["brand_matched"]
    if "replica_wording" in findings:
        why = (f"Your listing \"{event.title}\" offers a {brand} item as a copy "
               f"(\"{findings['replica_wording']['replica_terms'][0]}\"); copies of brands are counterfeits.")
    else:
        why = (f"Your listing sells {brand} at {money(event.price)} {event.currency}, "
               f"{evidence['brand_price_ratio']:.0%} of what genuine {brand} items like it sell for here; "
               "prices like that are only seen on counterfeits.")
    return counterfeit.DETECTOR, counterfeit.confidence(findings, cfg.counterfeit_listing), why


_EXPLAIN = {gouging.VIOLATION_TYPE: _gouging, discount.VIOLATION_TYPE: _discount,
            counterfeit.VIOLATION_TYPE: _counterfeit}
