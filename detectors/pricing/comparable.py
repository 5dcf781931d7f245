"""Comparable items: the listings of a category most like this one, and what they cost.

A price is judged against items of the same kind, not against the whole
category: a standing desk and a scented candle are both "home". Which items
are the same kind is learned from the titles, online:

- *Similar titles.* Each word of a title weighs its inverse document
  frequency in the category, squared: a word on every other title ("black",
  "washable", "in") says little about what the product is, a rare one
  ("crate", "wand") a lot. Two titles are similar when the weight they share
  is most of what either weighs (weighted Jaccard). The comparable items of a
  listing are its `neighbours` most similar recent listings, at least
  `min_similarity` alike; a title whose defining words the category has not
  seen has none, and is not judged.
- *Brand offsets.* A brand sells at its own level: how far its listings sit
  above or below similar items of other brands is learned per brand (a
  premium brand many times above, an ordinary one about even; no-name goods
  are the zero, and where every listing has a brand, brands are measured
  against each other). A listing is
  compared with similar items of its own brand when there are enough of
  them; otherwise with similar items of any brand, each moved to this brand's
  level. A brand whose level is not known yet is not judged at all: it may
  be premium.

Only clean listings are learned (score first, then learn), one entry per
listing (its latest price), and everything is bounded: items per category,
listings per word, observations per brand.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from statistics import median
from typing import NamedTuple

import msgspec

from detectors.pricing.levels import Deviation, PriceLevel

_MAD_TO_SD = 1.4826
_MEDIAN_SE = 1.2533  # standard error of a median = this x sd / sqrt(n)


class ComparableConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How comparable items are found and priced (table `[detectors.pricing.comparable]`).

    Parameters
    ----------
    max_items, max_postings
        Listings remembered per category; listings remembered per title word.
    neighbours, min_neighbours
        Comparable items used per judgement, and the fewest that make one.
    min_similarity, relative_similarity
        Weighted Jaccard similarity of titles above which two listings are
        comparable, and at least this share of the most alike listing's.
    min_coverage
        A comparable listing's title must also carry this share of what this
        listing's title weighs (its kind-of-product words, mostly).
    attribute_weight
        What a word that titles always put in their variant part (after the
        first separator: a colour, a size) weighs against one they never do;
        in between, in proportion.
    min_brand_listings
        Listings of a brand whose level against similar items must be known
        before its listings are judged against other brands' items.
    max_brand_levels
        Brands per category whose level is remembered (least recently
        learned forgotten first).
    offset_window
        Recent offsets per brand its level is the median of.
    min_log_spread
        Floor of the robust spread of comparable prices (log scale).
    level_certainty
        A price is judged as if the comparable items' median were this many
        standard errors less favourable.
    """

    max_items: int
    max_postings: int
    neighbours: int
    min_neighbours: int
    min_similarity: float
    relative_similarity: float
    min_coverage: float
    attribute_weight: float
    min_brand_listings: int
    max_brand_levels: int
    offset_window: int
    min_log_spread: float
    level_certainty: float


class Item(NamedTuple):
    """A clean listing as the index remembers it."""

    brand: str  # brand key, "" for none
    words: frozenset[str]
    log_price: float
    currency: str
    variants: frozenset[str] = frozenset()  # its words only in the title's variant part (`variant_words`)


class Neighbour(NamedTuple):
    similarity: float
    listing_id: str
    item: Item


@dataclass(slots=True)
class ComparableIndex:
    """One category's clean listings, indexed by title word, and each brand's level against similar items."""

    items: OrderedDict[str, Item] = field(default_factory=OrderedDict)  # least recently learned first
    postings: dict[str, OrderedDict[str, None]] = field(default_factory=dict)  # word -> listing ids
    df: dict[str, int] = field(default_factory=dict)  # word -> items with it
    variant_df: dict[str, int] = field(default_factory=dict)  # word -> items with it in the variant part
    # (currency, brand) -> log offsets, least recently learned first
    offsets: OrderedDict[tuple[str, str], PriceLevel] = field(default_factory=OrderedDict)
    category: dict[str, PriceLevel] = field(default_factory=dict)  # currency -> every listing's log price
    # word -> [listings, mean, variance] of log prices (their count capped so they follow the market); and
    # the same over every listing: how much a word narrows down what something costs
    word_prices: dict[str, list[float]] = field(default_factory=dict)
    all_prices: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    # (title words, currency) -> `_alike`, valid until the index changes (learn, forget)
    memo: dict[tuple[frozenset[str], str], list[Neighbour]] = field(default_factory=dict)

    # ---- what is comparable -----------------------------------------------------------------

    def neighbours(self, cfg: ComparableConfig, words: frozenset[str], currency: str,
                   exclude: str | None = None, other_than: str | None = None) -> list[Neighbour]:
        """The listings most like one with these title words, most similar first (none of brand `other_than`)."""
        found = [nb for nb in self._alike(cfg, words, currency)
                 if nb.listing_id != exclude and (other_than is None or nb.item.brand != other_than)]
        if not found:
            return []
        # Only the listings about as alike as the most alike few (a duplicate title or two aside):
        # sharing a colour is not sharing a kind.
        close = found[min(2, len(found) - 1)].similarity * cfg.relative_similarity
        return [nb for nb in found[:cfg.neighbours] if nb.similarity >= close]

    def _alike(self, cfg: ComparableConfig, words: frozenset[str], currency: str) -> list[Neighbour]:
        """Every listing similar enough to these title words, most similar first. Memoised until the
        index next changes: one listing is judged by several judges, and then learned, on the same words."""
        key = (words, currency)
        found = self.memo.get(key)
        if found is not None:
            return found
        weight = self._weigher(cfg)
        ranked = sorted(((weight[w], w) for w in words), reverse=True)
        own = math.fsum(w for w, _ in ranked)
        found = []
        items, weigh, fsum = self.items, weight.__getitem__, math.fsum  # looked up once: ~40 candidates a call
        must_cover, min_similarity = cfg.min_coverage * own, cfg.min_similarity
        for listing_id in self._candidates(ranked, (1.0 - cfg.min_coverage) * own) if own > 0 else ():
            item = items[listing_id]
            if item.currency != currency:
                continue
            # fsum: exact, so the same in every process whatever order a set's words come in
            common = fsum(map(weigh, words & item.words))
            # It must also have most of what this title weighs: a denim jacket is not a wax jacket.
            # Checked first, as it needs no sum over the other title's words (most candidates stop here).
            if common < must_cover:
                continue
            similarity = common / (own + fsum(map(weigh, item.words)) - common)
            if similarity >= min_similarity:
                found.append(Neighbour(similarity, listing_id, item))
        found.sort(key=lambda nb: (-nb.similarity, nb.listing_id))
        if len(self.memo) >= _MEMO_SIZE:
            self.memo.clear()
        self.memo[key] = found
        return found

    def _candidates(self, ranked: list[tuple[float, str]], may_miss: float) -> set[str]:
        """Listings sharing one of the heaviest title words: enough of them that a listing with none of
        them misses more than `may_miss` of the weight (prefix filtering), so a colour's postings are
        only read when the title has little else."""
        candidates: set[str] = set()
        carried = 0.0
        for w, word in ranked:
            candidates.update(self.postings.get(word, ()))
            carried += w
            if carried > may_miss:
                break
        return candidates

    def _weigher(self, cfg: ComparableConfig) -> "_Weights":
        """Title words' weights, computed on first use (see `_Weights`)."""
        return _Weights(len(self.items) + 1, self.df, self.variant_df, self.word_prices, _sd(self.all_prices),
                        cfg.attribute_weight)

    def offset(self, cfg: ComparableConfig, currency: str, brand: str, lean: float = 0.0) -> float | None:
        """The brand's level against similar items of other brands (log), once known; no-name goods are the
        level every brand is measured from (0).

        `lean` (+1 or -1) moves it `level_certainty` standard errors up or down: a judge that calls a price
        too high assumes the brand as pricey as its few observations allow, one that calls it too low as cheap.
        """
        if not brand:
            return 0.0
        level = self.offsets.get((currency, brand))
        if level is None or level.seen < cfg.min_brand_listings:
            return None
        centre = level.centre(4)
        if lean:
            n = len(level.ring)
            centre += lean * cfg.level_certainty * _MEDIAN_SE * level.spread(4, cfg.min_log_spread) / math.sqrt(n)
        return centre

    def reference(self, cfg: ComparableConfig, brand: str, words: frozenset[str], currency: str, price: float,
                  exclude: str | None = None, lean: float = 0.0) -> Deviation | None:
        """`price` against comparable items, or None when there are not enough of them to say.

        `lean` is the side the judge errs on for the brand's level (see `offset`).
        """
        nearby = self.neighbours(cfg, words, currency, exclude)
        same = [nb for nb in nearby if brand and nb.item.brand == brand]
        if len(same) >= cfg.min_neighbours:
            values, how = [nb.item.log_price for nb in same], f"{len(same)} listings of the brand like it"
            return _deviation(cfg, how, same, values, price, same_brand=True)
        own = self.offset(cfg, currency, brand, lean)
        if own is None:
            return None  # a brand whose level is unknown: it may be premium
        # A neighbour whose brand level is unknown counts as ordinary when erring high (a premium one
        # among them can only raise the reference), and not at all when erring low.
        unknown = 0.0 if lean >= 0 else None
        moved = [(nb, nb.item.log_price - off + own) for nb in nearby
                 if (off := self._offset_or(cfg, currency, nb.item.brand, unknown)) is not None]
        if len(moved) < cfg.min_neighbours:
            return None
        how = f"{len(moved)} similar listings, at this brand's level" if brand else f"{len(moved)} similar listings"
        return _deviation(cfg, how, [nb for nb, _ in moved], [v for _, v in moved], price)

    def _offset_or(self, cfg: ComparableConfig, currency: str, brand: str, unknown: float | None) -> float | None:
        known = self.offset(cfg, currency, brand)
        return unknown if known is None else known

    def product_level(self, cfg: ComparableConfig, words: frozenset[str], currency: str, price: float,
                      exclude: str | None = None) -> Deviation | None:
        """`price` against similar items with every brand's premium taken out: what a no-name one costs."""
        moved = [(nb, nb.item.log_price - off) for nb in self.neighbours(cfg, words, currency, exclude)
                 if (off := self.offset(cfg, currency, nb.item.brand)) is not None]
        if len(moved) < cfg.min_neighbours:
            return None
        return _deviation(cfg, f"{len(moved)} similar listings, without brand premiums", [nb for nb, _ in moved],
                          [v for _, v in moved], price)

    def category_level(self, currency: str) -> float | None:
        level = self.category.get(currency)
        return math.exp(level.centre(8)) if level is not None and level.seen >= 20 else None

    # ---- learning a clean listing -------------------------------------------------------------

    def learn(self, cfg: ComparableConfig, listing_id: str, item: Item) -> None:
        """Remember a clean listing's price; teach its brand's level against similar items first."""
        self._learn_offset(cfg, listing_id, item)
        self.memo.clear()
        self.forget(listing_id)
        self.items[listing_id] = item
        for word in item.variants:
            self.variant_df[word] = self.variant_df.get(word, 0) + 1
        for word in item.words:
            self.df[word] = self.df.get(word, 0) + 1
            ids = self.postings.setdefault(word, OrderedDict())
            ids[listing_id] = None
            if len(ids) > cfg.max_postings:
                ids.popitem(last=False)
        level = self.category.setdefault(item.currency, PriceLevel(cfg.offset_window * 4))
        level.learn(item.log_price)
        # What the words say about price, with the brand's premium taken out: a premium planner is a planner.
        no_name = item.log_price - (self.offset(cfg, item.currency, item.brand) or 0.0)
        _welford(self.all_prices, no_name)
        for word in item.words:
            _welford(self.word_prices.setdefault(word, [0.0, 0.0, 0.0]), no_name)
        while len(self.items) > cfg.max_items:
            self.forget(next(iter(self.items)))

    def forget(self, listing_id: str) -> None:
        """Forget a listing's entry (a word's price statistics go with the last listing that had it)."""
        item = self.items.pop(listing_id, None)
        if item is None:
            return
        self.memo.clear()
        for word in item.variants:
            left = self.variant_df.get(word, 1) - 1
            if left > 0:
                self.variant_df[word] = left
            else:
                self.variant_df.pop(word, None)
        for word in item.words:
            left = self.df.get(word, 1) - 1
            if left > 0:
                self.df[word] = left
            else:
                self.df.pop(word, None)
                self.word_prices.pop(word, None)
            ids = self.postings.get(word)
            if ids is not None:
                ids.pop(listing_id, None)
                if not ids:
                    del self.postings[word]

    def _learn_offset(self, cfg: ComparableConfig, listing_id: str, item: Item) -> None:
        """How far this listing sits from similar items of other brands (each at its own brand's level)."""
        if not item.brand:
            return  # no-name goods are the zero every brand is measured from
        others = [nb.item.log_price - (self.offset(cfg, item.currency, nb.item.brand) or 0.0)
                  for nb in self.neighbours(cfg, item.words, item.currency, exclude=listing_id,
                                            other_than=item.brand)]
        if len(others) < cfg.min_neighbours:
            return
        key = (item.currency, item.brand)
        level = self.offsets.pop(key, None) or PriceLevel(cfg.offset_window)
        self.offsets[key] = level
        level.learn(item.log_price - median(others))
        if len(self.offsets) > cfg.max_brand_levels:
            self.offsets.popitem(last=False)

    def __len__(self) -> int:
        return len(self.items)


class _Weights(dict):
    """A word's weight: how rare it is (inverse document frequency, squared) times how much it narrows
    down the price. A colour or "washable" goes with every kind of product at every price, so it says
    nothing about what is comparable, however rare; "crate" does. Computed once per word per judgement."""

    def __init__(self, n: int, df: dict[str, int], variant_df: dict[str, int], prices: dict[str, list[float]],
                 spread: float, attribute: float) -> None:
        super().__init__()
        self.n, self.df, self.variant_df, self.prices, self.spread = n, df, variant_df, prices, spread
        self.attribute = attribute

    def __missing__(self, word: str) -> float:
        df = self.df.get(word, 0)
        weight = math.log(self.n / (df + 1)) ** 2
        stats = self.prices.get(word)
        # With too few prices to tell, a new word may well name a new kind of product: full weight.
        if stats is not None and stats[0] >= _MIN_WORD_PRICES and self.spread > 0:
            weight *= min(1.0, max(_MIN_INFORMATION, 1.0 - _sd(stats) / self.spread))
        if df:  # a word sellers write as a variant ("Mug, Sage") names no kind of product, wherever it stands
            weight *= 1.0 - (1.0 - self.attribute) * min(1.0, _ATTRIBUTE_AT * self.variant_df.get(word, 0) / df)
        self[word] = weight
        return weight


def _deviation(cfg: ComparableConfig, how: str, compared: list[Neighbour], values: list[float], price: float,
               same_brand: bool = False) -> Deviation:
    """`price` against `values` (the log prices of `compared`, most alike first, brand levels applied)."""
    ordered = sorted(values)
    centre = _median_sorted(ordered)
    mad = _median_sorted(sorted(abs(v - centre) for v in ordered))
    # The most alike: within `relative_similarity` of the most alike of all.
    close = compared[0].similarity * cfg.relative_similarity
    closest = sorted(v for nb, v in zip(compared, values) if nb.similarity >= close)
    return Deviation(group=how, level_price=math.exp(centre), observations=len(values),
                     spread=max(_MAD_TO_SD * mad, cfg.min_log_spread), log_ratio=math.log(price) - centre,
                     sample=len(values), examples=tuple(nb.listing_id for nb in compared[:5]), same_brand=same_brand,
                     closest_price=math.exp(_median_sorted(closest)))


_MEMO_SIZE = 64  # judgements remembered between two changes of the index
_MIN_WORD_PRICES = 5  # prices of a word before its spread says anything
_MIN_INFORMATION = 0.05  # even a colour weighs a little: it breaks ties between equally good matches
_ATTRIBUTE_AT = 2.0  # a word written as a variant in half its titles is an attribute (a colour), not a kind
# (home, the tuning world, writes colours after a separator: its results are the same with or without this)
_STATS_MEMORY = 500  # listings a word's price statistics weigh (older ones fade)


def _welford(stats: list[float], x: float) -> None:
    """Running mean and variance of `stats` = [n, mean, var]: exact while n is small, then exponentially
    weighted over the last `_STATS_MEMORY` values, so old prices fade."""
    n = min(stats[0] + 1, _STATS_MEMORY)
    a = 1.0 / n
    delta = x - stats[1]
    stats[1] += a * delta
    stats[2] = (1.0 - a) * (stats[2] + a * delta * delta)
    stats[0] = n


def _sd(stats: list[float]) -> float:
    return math.sqrt(stats[2]) if stats[0] > 1 else 0.0


def _median_sorted(xs: list[float]) -> float:
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])

