"""Counterfeit listings: a brand offered as a copy, or at a price genuine goods of that brand cannot have.

Which brands count comes from data, not code: the platform's registry
(`brand.registered` events) and the brands this category's own sellers name
on genuine listings. Two findings:

- *replica wording*: copy wording ("replica", "1:1", "mirror quality") with
  any brand the listing names; look-alike wording ("inspired by", "dupe")
  only right next to a brand named in the title ("inspired by Luma"), so
  "inspired by nature" from a shop called Acme stays clean;
- *impossible price*: a price at a small fraction of what genuine goods of
  the brand like it sell for (`comparable.py`), judged on the price the
  listing normally asks: an outlet's real clearance of goods it really sold
  at full price is not a copy.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from detectors.pricing.comparable import ComparableConfig, ComparableIndex
from detectors.pricing.market import BrandRegistry, CategoryMarket, Mention, brands_in
from detectors.text import CLAUSE_BREAK, normalize, normalized, phrase_matcher

VIOLATION_TYPE = "counterfeit_listing"
DETECTOR = "counterfeit_listing_v2"
_SPLIT_COMPOUND = re.compile(r"(?<=\w)-(?=\w)")
LINKING_WORDS = frozenset({"by", "of", "for", "like", "to", "as"})  # "inspired by", "dupe of", "similar to"


class CounterfeitConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds and wording of counterfeit findings (table `[detectors.pricing.counterfeit_listing]`).

    Parameters
    ----------
    replica_terms
        Wording that offers a copy; with any brand the listing names it is a counterfeit offer.
    lookalike_terms
        Wording that compares with a brand ("inspired", "dupe"); it counts only
        directly next to a brand named in the title.
    impossible_price_ratio, impossible_price_z
        An impossible price: at most this fraction of the going rate of the
        brand's listings like this one, and at least this many robust standard
        deviations below it.
    model_price_ratio, generic_price_ratio
        A registered brand without enough listings like this one: at most this
        fraction of similar items at the brand's level, and at most
        `generic_price_ratio` times what similar no-name items cost.
    min_brand_listings
        A brand this category's sellers name on this many genuine listings is
        known, registered or not.
    max_registered_brands, max_learned_brands
        Bounds of the registry and of the brands learned per category.
    cooldown_seconds
        One finding per listing within this period.
    """

    replica_terms: list[str]
    lookalike_terms: list[str]
    impossible_price_ratio: float
    impossible_price_z: float
    model_price_ratio: float
    generic_price_ratio: float
    min_brand_listings: int
    max_registered_brands: int
    max_learned_brands: int
    cooldown_seconds: float


class Wording:
    """The copy and look-alike wording of a `CounterfeitConfig`, compiled once."""

    def __init__(self, cfg: CounterfeitConfig) -> None:
        # Terms the tokenizer splits at a clause break ("1:1"), or whose matching keys are tiny ("aaa" folds
        # to "a", and its plural to "as", which "A5" also folds to), are found literally, as whole words.
        self.literal = [t for t in cfg.replica_terms if CLAUSE_BREAK in _keys(t) or min(map(len, _keys(t))) < 3]
        self.replica = phrase_matcher(tuple(t for t in cfg.replica_terms if t not in self.literal))
        self.lookalike = phrase_matcher(tuple(cfg.lookalike_terms))

    def replica_terms(self, text: str) -> list[str]:
        found = [m.phrase for m in self.replica.find(normalized(text))]
        folded = normalize(text)
        found += [t for t in self.literal if _whole(normalize(t), folded)]
        return list(dict.fromkeys(found))

    def lookalikes_next_to(self, title: str, mentions: list[Mention]) -> list[tuple[str, str]]:
        """(term, brand) pairs where look-alike wording stands directly next to a brand in the title."""
        norm = normalized(title)
        pairs = []
        for m in self.lookalike.find(norm):
            for brand in mentions:
                linked = (m.end < len(norm.keys) and norm.keys[m.end] in LINKING_WORDS and m.end + 1 == brand.start)
                # "Tiffany & Co. dupe": the brand's own closing period is not a clause break.
                after = brand.end + (1 if brand.name.rstrip().endswith(".") and brand.end < len(norm.keys)
                                     and norm.keys[brand.end] == CLAUSE_BREAK else 0)
                if after == m.start or m.end == brand.start or linked:
                    pairs.append((m.phrase, brand.name))
        return pairs


def _keys(text: str) -> tuple[str, ...]:
    keys = list(normalized(text).keys)
    while keys and keys[-1] == CLAUSE_BREAK:
        keys.pop()
    return tuple(keys)


def _whole(term: str, text: str) -> bool:
    """`term` stands in `text` as whole characters (not inside a longer number or word)."""
    start = text.find(term)
    while start >= 0:
        before = text[start - 1] if start else " "
        after = text[start + len(term)] if start + len(term) < len(text) else " "
        if not before.isalnum() and not after.isalnum():
            return True
        start = text.find(term, start + 1)
    return False


def registered_or_named(registry: BrandRegistry | None, brand_field: str | None, brand: str) -> tuple[str, bool]:
    """(name, registered) of the brand in a listing's brand field."""
    name = registry.names.get(brand) if registry is not None else None
    return (name, True) if name is not None else (brand_field or "", False)


def impossible_price(cfg: CounterfeitConfig, comparable: ComparableConfig, index: ComparableIndex,
                     listing_id: str, currency: str, brand: str, registered: bool, words: frozenset[str],
                     price: float) -> dict[str, Any] | None:
    """Evidence that `price` is impossible for genuine goods of `brand`, or None.

    Against listings of the brand like this one: at most `impossible_price_ratio`
    of their going rate. Without enough of those, only a registered brand is
    judged, against similar items of any brand at this brand's level, more
    strictly (`model_price_ratio`), and only at a no-name price (at most
    `generic_price_ratio` times what similar items cost without brand
    premiums): a copy sells at a no-name price, a cheaper line of the brand
    above it, and an ordinary brand's cheap line is nobody's copy.
    """
    reference = index.reference(comparable, brand, words, currency, price, exclude=listing_id, lean=-1.0)
    if reference is None or (not reference.same_brand and not registered):
        return None
    ratio = cfg.impossible_price_ratio if reference.same_brand else cfg.model_price_ratio
    if -reference.z < cfg.impossible_price_z or not reference.surely_below(ratio, comparable.level_certainty):
        return None
    evidence = {**reference.evidence(), "brand_price_ratio": round(reference.ratio, 3),
                "threshold_price_ratio": ratio, "threshold_z": cfg.impossible_price_z}
    if not reference.same_brand:
        no_name = index.product_level(comparable, words, currency, price, exclude=listing_id)
        if no_name is None or no_name.ratio > cfg.generic_price_ratio:
            return None
        evidence.update({"no_name_going_rate": round(no_name.level_price, 2),
                         "ratio_to_no_name_items": round(no_name.ratio, 3)})
    return evidence


def judge(cfg: CounterfeitConfig, wording: Wording, comparable: ComparableConfig, market: CategoryMarket,
          registry: BrandRegistry | None, listing_id: str, title: str, brand_field: str | None, brand: str,
          words: frozenset[str], currency: str, price: float) -> dict[str, dict[str, Any]]:
    """Counterfeit findings for one listing state (empty when clean)."""
    title = _SPLIT_COMPOUND.sub(" ", title)  # "Luma-style" names the brand and then says how
    mentions = brands_in(title, registry, market, cfg.min_brand_listings)
    findings: dict[str, dict[str, Any]] = {}
    named = registered_or_named(registry, brand_field, brand) if brand else None
    if named is None and mentions:
        first = next((m for m in mentions if m.registered), mentions[0])
        named = (first.name, first.registered)
        brand = brand or first.key
    copy_terms = wording.replica_terms(title) + (wording.replica_terms(brand_field) if brand_field else [])
    if named is not None and copy_terms:
        findings["replica_wording"] = {"brand_matched": named[0], "brand_registered": named[1],
                                       "replica_terms": list(dict.fromkeys(copy_terms))}
    else:
        pairs = wording.lookalikes_next_to(title, mentions)
        if pairs:
            term, name = pairs[0]
            findings["replica_wording"] = {"brand_matched": name, "brand_registered": name in _registered(registry),
                                           "replica_terms": [term]}
    if brand:
        registered = named is not None and named[1]
        impossible = impossible_price(cfg, comparable, market.index, listing_id, currency, brand, registered, words,
                                      price)
        if impossible is not None:
            findings["impossible_price"] = {"brand_matched": named[0] if named else brand, **impossible}
    return findings


def _registered(registry: BrandRegistry | None) -> set[str]:
    return set(registry.names.values()) if registry is not None else set()


def confidence(findings: dict[str, dict[str, Any]], cfg: CounterfeitConfig) -> float:
    value = 0.8 if "replica_wording" in findings else 0.0
    if "impossible_price" in findings:
        ratio = findings["impossible_price"]["brand_price_ratio"]
        value = max(value, 0.6) + 0.1 * math.log(cfg.impossible_price_ratio / max(ratio, 1e-6) + 1.0)
    return value
