"""Counterfeit listings: a protected brand offered with replica wording, or at a small fraction
of that brand's learned going rate. Replica wording alone ("inspired by nature") is not enough.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

from detectors.base import Signal, clamp01
from detectors.pricing.levels import LevelBook, LevelConfig, money, remember
from detectors.registry import register
from detectors.text import CLAUSE_BREAK, normalize, normalized, phrase_matcher
from pipeline.contract.events import ListingCreated, ListingUpdated, ListingUpserted


class TermFinder:
    """A configured list of brands or terms, found in text by the shared obfuscation-robust matcher.

    A term that the shared tokenizer splits at a clause break (such as "1:1")
    is found literally, as whole characters of the normalised text, instead.

    >>> terms = TermFinder(["Replica", "1:1", "mirror copy"])
    >>> terms.find("Classic bag 1:1 MIRROR-copy quality"), terms.find("r e p l i c a tote")
    (['mirror copy', '1:1'], ['Replica'])
    >>> terms.find("Mirror with copy holder"), terms.find("size 11:1 scale"), terms.find(None)
    ([], [], [])
    """

    def __init__(self, terms: Iterable[str]) -> None:
        terms = [t for t in dict.fromkeys(terms) if t.strip()]
        literal = [t for t in terms if CLAUSE_BREAK in _inner_tokens(t)]
        self._matcher = phrase_matcher(tuple(t for t in terms if t not in literal))
        self._literal = [(t, re.compile(rf"(?<![^\W_]){re.escape(normalize(t))}(?![^\W_])")) for t in literal]

    def find(self, text: str | None) -> list[str]:
        """The configured terms that occur in `text`, each once (matched ones in text order, then literal ones)."""
        if not text:
            return []
        found = [m.phrase for m in self._matcher.find(normalized(text))]
        if self._literal:
            folded = normalize(text)
            found += [term for term, pattern in self._literal if pattern.search(folded)]
        return list(dict.fromkeys(found))


def _inner_tokens(text: str) -> tuple[str, ...]:
    tokens = list(normalized(text).tokens)
    while tokens and tokens[-1] == CLAUSE_BREAK:
        tokens.pop()
    while tokens and tokens[0] == CLAUSE_BREAK:
        tokens.pop(0)
    return tuple(tokens)


class CounterfeitListingConfig(LevelConfig, frozen=True, forbid_unknown_fields=True):
    """Thresholds and word lists of `CounterfeitListing` (table `[detectors.counterfeit_listing]`),
    plus `LevelConfig`'s keys (its levels are learned for protected brands only).

    Parameters
    ----------
    protected_brands
        Brands the marketplace protects against replicas (matched after text
        normalisation, in the brand field or as whole words of the title).
    replica_terms
        Words and phrases that offer a copy ("replica", "1:1", "dupe"...). They
        count only together with a protected brand.
    impossible_price_ratio, impossible_price_z
        An impossible price for a protected brand (in the brand field): at most
        this fraction of the learned (category, brand) going rate and at least
        this many robust standard deviations below it (log scale).
    min_lowest_observations
        While a protected brand's level has fewer than `min_brand_observations`
        prices but at least this many, a price at most `impossible_price_ratio`
        times the lowest of them is impossible (the cautious reference).
    """

    protected_brands: list[str]
    replica_terms: list[str]
    impossible_price_ratio: float
    impossible_price_z: float
    min_lowest_observations: int


@dataclass(slots=True)
class _Judged:
    """One listing: what was last judged (title, brand, price) and when it was last flagged."""

    judged: tuple[str, str | None, float] | None = None
    flagged_at: int | None = None


@dataclass(slots=True)
class CategoryBrands:
    """A category's protected-brand going rates and its recently judged listings (for `CounterfeitListing`)."""

    levels: LevelBook = field(default_factory=LevelBook)
    listings: OrderedDict[str, _Judged] = field(default_factory=OrderedDict)


@register
class CounterfeitListing:
    """A protected brand offered as a replica, or at a price the real item cannot have.

    Examples
    --------
    >>> cfg = CounterfeitListingConfig(level_window=256, level_refresh_every=16, min_category_observations=20,
    ...     min_brand_observations=20, min_log_spread=0.1, level_certainty=1, max_levels=64, max_listings=1000,
    ...     cooldown_seconds=86400, protected_brands=["Louis Vuitton", "Gucci"],
    ...     replica_terms=["replica", "1:1", "inspired"], impossible_price_ratio=0.25, impossible_price_z=4,
    ...     min_lowest_observations=3)
    >>> det = CounterfeitListing(cfg)
    >>> def created(i, title, brand):
    ...     return ListingCreated(event_id=f"e{i}", ts=i * 60_000, seller_id="S9", listing_id=f"L{i}",
    ...         title=title, category="bags", price=45.0, currency="USD", brand=brand, original_price=None,
    ...         image_hash=None, stock=5)
    >>> state, found = None, []
    >>> for i, (title, brand) in enumerate([("Nature-inspired tote bag", None),
    ...                                      ("LV Neverfull 1:1 mirror quality", "Louis Vuitton")]):
    ...     state, signals = det.on_event(state, created(i, title, brand))
    ...     found += signals
    >>> [(s.actor, s.subject, s.evidence["brand_matched"], s.evidence["replica_terms"]) for s in found]
    [('seller:S9', 'L1:replica_wording', 'Louis Vuitton', ['1:1'])]
    """

    name: ClassVar[str] = "counterfeit_listing_v1"
    violation_type: ClassVar[str] = "counterfeit_listing"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "counterfeit_listing"
    Config: ClassVar[type] = CounterfeitListingConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
    event_types: ClassVar[frozenset[type]] = frozenset({ListingCreated, ListingUpdated})

    def __init__(self, config: CounterfeitListingConfig) -> None:
        self.config = config
        self._cooldown_ms = int(config.cooldown_seconds * 1000)
        self._brands = TermFinder(config.protected_brands)
        self._replica = TermFinder(config.replica_terms)

    def entity(self, event: ListingUpserted) -> str:
        return event.category

    def on_event(self, state: CategoryBrands | None, event: ListingUpserted) -> tuple[CategoryBrands, list[Signal]]:
        cfg = self.config
        state = state or CategoryBrands()
        record = state.listings.get(event.listing_id) or _Judged()
        remember(state.listings, event.listing_id, record, cfg.max_listings)
        looked_at = (event.title, event.brand, event.price)
        if record.judged == looked_at:
            return state, []  # nothing that matters here changed (a restock, a sale flag)
        price_changed = record.judged is None or record.judged[2] != event.price
        record.judged = looked_at
        in_brand_field = self._brands.find(event.brand)
        protected = in_brand_field[0] if in_brand_field else ""  # the configured spelling
        findings = self._findings(state, event, protected)
        if not findings:
            if protected and price_changed:
                state.levels.learn(cfg, event.currency, protected, event.price)
            return state, []
        if record.flagged_at is not None and abs(event.ts - record.flagged_at) < self._cooldown_ms:
            return state, []
        record.flagged_at = event.ts
        return state, [self._signal(event, findings)]

    def _findings(self, state: CategoryBrands, event: ListingUpserted, protected: str) -> dict[str, dict[str, Any]]:
        findings: dict[str, dict[str, Any]] = {}
        named = [protected] if protected else self._brands.find(event.title)
        if named:
            terms = self._replica.find(event.title) or self._replica.find(event.brand)
            if terms:
                findings["replica_wording"] = {
                    "brand_matched": named[0], "brand_matched_in": "brand" if protected else "title",
                    "replica_terms": terms}
        if protected:
            impossible = self._impossible_price(state, event, protected)
            if impossible is not None:
                findings["impossible_price"] = impossible
        return findings

    def _impossible_price(self, state: CategoryBrands, event: ListingUpserted, protected: str) -> dict[str, Any] | None:
        """Evidence that the price is impossible for genuine `protected` goods, or None."""
        cfg = self.config
        common = {"brand_matched": protected, "brand_matched_in": "brand",
                  "threshold_price_ratio": cfg.impossible_price_ratio}
        deviation = state.levels.deviation(cfg, event.currency, protected, event.price)
        if deviation is not None:
            if (deviation.surely_below(cfg.impossible_price_ratio, cfg.level_certainty)
                    and -deviation.z >= cfg.impossible_price_z):
                return {**common, **deviation.evidence("brand_"), "brand_price_ratio": round(deviation.ratio, 3),
                        "reference": "median", "threshold_z": cfg.impossible_price_z}
            return None
        # A level still too small for a median: the lowest price seen is the cautious reference.
        lowest = state.levels.lowest(event.currency, protected)
        if lowest is None or lowest[1] < cfg.min_lowest_observations:
            return None
        price, seen = lowest
        if event.price > cfg.impossible_price_ratio * price:
            return None
        return {**common, "brand_lowest_price": price, "brand_price_ratio": round(event.price / price, 3),
                "level_observations": seen, "reference": "lowest"}

    def _signal(self, event: ListingUpserted, findings: dict[str, dict[str, Any]]) -> Signal:
        cfg = self.config
        kind = "+".join(sorted(findings))
        evidence: dict[str, Any] = {
            "listing_id": event.listing_id, "title": event.title, "category": event.category,
            "brand": event.brand, "currency": event.currency, "price": event.price, "kinds": sorted(findings),
            "replica_terms": [],
        }
        for finding in findings.values():
            evidence.update(finding)
        confidence = 0.0
        if "replica_wording" in findings:
            confidence = 0.8
        if "impossible_price" in findings:
            ratio = findings["impossible_price"]["brand_price_ratio"]
            confidence = max(confidence, 0.6) + 0.1 * math.log(cfg.impossible_price_ratio / max(ratio, 1e-6) + 1.0)
        brand = evidence["brand_matched"]
        if "replica_wording" in findings:
            why = f"offers a {brand} item as a copy (\"{evidence['replica_terms'][0]}\")"
        else:
            why = (f"sells {brand} at {money(event.price)}, "
                   f"{evidence['brand_price_ratio']:.0%} of what genuine {brand} sells for here")
        return Signal(
            actor=f"seller:{event.seller_id}",
            violation_type=self.violation_type,
            detector=self.name,
            subject=f"{event.listing_id}:{kind}",
            detected_at=event.ts,
            window_start=event.ts,
            window_end=event.ts,
            confidence=clamp01(confidence),
            evidence=evidence,
            explanation=f"Listing {event.listing_id} {why}; replicas of protected brands are not allowed.",
        )
