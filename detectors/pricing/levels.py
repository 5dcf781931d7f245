"""What a category's listings teach: robust streaming price levels and a title vocabulary.

Listing upserts are routed by category, so the pricing detectors key their
state by category: each category's state holds the price levels learned from
its own listings (per currency and brand) plus a self-bounded record per
listing. Levels are judged before they learn (score first, then learn), and a
price that was just flagged is never learned, so abusers cannot drag the
going rate towards themselves. No level judges anything before it has enough
observations: precision first.
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from detectors.text import CLAUSE_BREAK, normalized
from pipeline.contract.events import ListingUpserted

_MAD_TO_SD = 1.4826  # MAD of a normal sample x this = its standard deviation
_MEDIAN_SE = 1.2533  # standard error of a normal sample's median = this x sd / sqrt(n)
_MAD_SE = 1.1664  # relative standard error of a MAD-based sd = this / sqrt(n)


def brand_key(brand: str | None) -> str:
    """The key a brand's level is kept under: its normalised matching keys ("" for no brand).

    >>> brand_key("Tiffany & Co.") == brand_key("TIFFANY & CO"), brand_key("HERMÈS") == brand_key("Hermes")
    (True, True)
    >>> brand_key(None), brand_key("  ")
    ('', '')
    """
    if not brand or not brand.strip():
        return ""
    return " ".join(k for k in normalized(brand).keys if k != CLAUSE_BREAK)


@dataclass(slots=True)
class PriceLevel:
    """The going rate of one group of listings: robust centre and spread of recent log prices.

    A ring of the last `capacity` observations; the median and the median
    absolute deviation are recomputed from it every `refresh_every` new
    observations (a sort of a few hundred floats), so a learn costs O(1)
    amortised and the level follows drift.

    >>> level = PriceLevel(capacity=64)
    >>> for price in [10, 11, 9, 10, 12, 10, 8, 10, 11, 500]:
    ...     level.learn(math.log(price))
    >>> round(math.exp(level.centre(8)), 2), level.seen
    (10.0, 10)
    """

    capacity: int
    ring: array = field(default_factory=lambda: array("d"))
    slot: int = 0  # next slot to overwrite once the ring is full
    seen: int = 0  # observations learned in total
    _centre: float = 0.0
    _mad: float = 0.0
    _computed_at: int = 0  # `seen` when centre and MAD were computed

    def learn(self, log_price: float) -> None:
        if len(self.ring) < self.capacity:
            self.ring.append(log_price)
        else:
            self.ring[self.slot] = log_price
            self.slot = (self.slot + 1) % self.capacity
        self.seen += 1

    def centre(self, refresh_every: int) -> float:
        self._refresh(refresh_every)
        return self._centre

    def spread(self, refresh_every: int, floor: float) -> float:
        """Robust standard deviation of log price (MAD x 1.4826), at least `floor`."""
        self._refresh(refresh_every)
        return max(_MAD_TO_SD * self._mad, floor)

    def _refresh(self, every: int) -> None:
        stale = self.seen - self._computed_at
        # A small ring is refreshed more often: each new price moves its median more.
        if stale and stale >= max(1, min(every, len(self.ring) // 8)):
            ordered = sorted(self.ring)
            self._centre = _median_of_sorted(ordered)
            self._mad = _median_of_sorted(sorted(abs(x - self._centre) for x in ordered))
            self._computed_at = self.seen


def _median_of_sorted(xs: list[float]) -> float:
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


@dataclass(frozen=True, slots=True)
class Deviation:
    """How a price sits against a learned level (log scale)."""

    level_price: float  # the going rate (median price)
    observations: int
    spread: float  # robust standard deviation of log price
    log_ratio: float  # log(price / level_price)
    sample: int  # prices the level's median and spread were estimated from

    @property
    def ratio(self) -> float:
        return math.exp(self.log_ratio)

    @property
    def z(self) -> float:
        return self.log_ratio / self.spread

    @property
    def uncertainty(self) -> float:
        """Standard error of the level's log median."""
        return _MEDIAN_SE * self.spread / math.sqrt(self.sample)

    def _margin(self, certainty: float) -> float:
        # `certainty` standard errors of the median, with the spread itself taken
        # `certainty` standard errors high (a spread from few prices is often too small).
        return certainty * self.uncertainty * (1.0 + certainty * _MAD_SE / math.sqrt(self.sample))

    def surely_above(self, ratio: float, certainty: float) -> bool:
        """At least `ratio` times the level even if the level is `certainty` standard errors too low."""
        return self.log_ratio - self._margin(certainty) >= math.log(ratio)

    def surely_below(self, ratio: float, certainty: float) -> bool:
        """At most `ratio` times the level even if the level is `certainty` standard errors too high."""
        return self.log_ratio + self._margin(certainty) <= math.log(ratio)

    def evidence(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}going_rate": round(self.level_price, 2),
            f"{prefix}ratio_to_going_rate": round(self.ratio, 3),
            f"{prefix}robust_z": round(self.z, 2),
            "level_observations": self.observations,
            "level_log_spread": round(self.spread, 3),
            "level_log_uncertainty": round(self.uncertainty, 3),
        }


class LevelConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a pricing detector learns each category's going rate (shared keys of its table).

    Parameters
    ----------
    level_window
        Recent listing prices each level keeps (per category, currency and brand).
    level_refresh_every
        New observations between two recomputations of a level's median and MAD.
    min_category_observations
        Observations the level of unbranded listings, and that of the whole
        category, need before they judge anything.
    min_brand_observations
        Observations a (category, brand) level needs before it judges that brand; a
        branded listing whose brand level is still cold is never judged against the
        category (it may be a premium brand).
    min_log_spread
        Floor of a level's robust spread (log scale), so a level of identical prices
        does not call every small difference extreme.
    level_certainty
        A price is judged against a level as if that level's median were this
        many standard errors less favourable (and its spread this many standard
        errors wider), so a level learned from few prices judges only what is
        clear whatever its noise.
    max_levels
        Levels kept per category (least recently used dropped first).
    max_listings
        Listings remembered per category (least recently updated dropped first).
    cooldown_seconds
        One violation per listing within this period.
    """

    level_window: int
    level_refresh_every: int
    min_category_observations: int
    min_brand_observations: int
    min_log_spread: float
    level_certainty: float
    max_levels: int
    max_listings: int
    cooldown_seconds: float


ALL_LISTINGS = "*"  # level key of every listing of a category, whatever its brand (never a brand key)


@dataclass(slots=True)
class LevelBook:
    """A category's price levels keyed by (currency, brand key), least recently used first.

    The brand key is "" for unbranded listings and `ALL_LISTINGS` for the
    level of every listing of the category.
    """

    levels: OrderedDict[tuple[str, str], PriceLevel] = field(default_factory=OrderedDict)

    def deviation(self, cfg: LevelConfig, currency: str, brand: str, price: float) -> Deviation | None:
        """`price` against its level, or None while that level is cold (precision first)."""
        level = self.levels.get((currency, brand))
        need = cfg.min_brand_observations if brand and brand != ALL_LISTINGS else cfg.min_category_observations
        if level is None or level.seen < need:
            return None
        centre = level.centre(cfg.level_refresh_every)
        spread = level.spread(cfg.level_refresh_every, cfg.min_log_spread)
        return Deviation(
            level_price=math.exp(centre),
            observations=level.seen,
            spread=spread,
            log_ratio=math.log(price) - centre,
            sample=len(level.ring),
        )

    def learn(self, cfg: LevelConfig, currency: str, brand: str, price: float) -> None:
        key = (currency, brand)
        level = self.levels.get(key)
        if level is None:
            level = self.levels[key] = PriceLevel(cfg.level_window)
            while len(self.levels) > cfg.max_levels:
                self.levels.popitem(last=False)
        else:
            self.levels.move_to_end(key)
        level.learn(math.log(price))

    def lowest(self, currency: str, brand: str) -> tuple[float, int] | None:
        """(lowest recent price, observations) of a level, or None if it has none (O(level size))."""
        level = self.levels.get((currency, brand))
        if level is None or not level.ring:
            return None
        return math.exp(min(level.ring)), level.seen

    def learn_listing(self, cfg: LevelConfig, currency: str, brand: str, price: float) -> None:
        """Learn a listing's price into its own (brand or unbranded) level and the whole category's."""
        self.learn(cfg, currency, brand, price)
        self.learn(cfg, currency, ALL_LISTINGS, price)


class ComparableLevelConfig(LevelConfig, frozen=True, forbid_unknown_fields=True):
    """`LevelConfig` plus what makes a listing comparable to its category's going rate.

    A going rate says what *ordinary* products of a category cost. A listing
    whose title shares little with the category's usual titles (a banned item,
    a niche product) is not comparable to it, so it is not judged by it.

    Parameters
    ----------
    far_above_category_ratio
        A price judged far above its own (category, brand) level must also be at
        least this many times the category's going rate (that of its unbranded
        goods, or of all its listings while those are few), so an ordinary
        brand's level that is still noisy cannot flag a price that is
        unremarkable for the category.
    common_word_share, min_word_titles
        A title word is usual in a category when at least this share of the
        category's recent titles, and at least this many, contain it.
    min_title_familiarity
        Share of a listing's title words (brand words left out) that must be
        usual in its category before the going rate judges it.
    max_vocabulary
        Title words counted per category; past it, counts are halved and rare
        words dropped (recent titles weigh most).
    """

    far_above_category_ratio: float
    common_word_share: float
    min_word_titles: int
    min_title_familiarity: float
    max_vocabulary: int


@dataclass(slots=True)
class TitleVocabulary:
    """How many of a category's recent titles contain each word.

    >>> vocab = TitleVocabulary()
    >>> for title in ["Canvas Tote Bag - Navy", "Leather Tote Bag - Red", "Mini Backpack (Navy)"] * 10:
    ...     vocab.learn(title_words(title, None), max_words=100)
    >>> vocab.familiarity(title_words("Harbor Canvas Tote Bag", "Harbor"), 0.1, 3)
    1.0
    >>> vocab.familiarity(title_words("Genuine ivory carved bangle", None), 0.1, 3)
    0.0
    """

    counts: dict[str, int] = field(default_factory=dict)
    titles: int = 0

    def learn(self, title_words: frozenset[str], max_words: int) -> None:
        counts = self.counts
        for word in title_words:
            counts[word] = counts.get(word, 0) + 1
        self.titles += 1
        if len(counts) > max_words:
            self._forget(int(0.75 * max_words))

    def familiarity(self, title_words: frozenset[str], common_share: float, min_titles: int) -> float:
        """Share of `title_words` that are usual in this category (0 for a title without words)."""
        if not title_words:
            return 0.0
        need = max(min_titles, common_share * self.titles)
        return sum(1 for w in title_words if self.counts.get(w, 0) >= need) / len(title_words)

    def _forget(self, keep: int) -> None:
        """Halve every count (dropping words that reach 0) until at most `keep` words are left."""
        while len(self.counts) > keep:
            self.counts = {w: c // 2 for w, c in self.counts.items() if c >= 2}
            self.titles //= 2


def far_above_going_rate(cfg: ComparableLevelConfig, levels: LevelBook, vocabulary: TitleVocabulary,
                         event: ListingUpserted, price: float, ratio: float, z: float,
                         prefix: str = "") -> dict[str, Any] | None:
    """Evidence that `price` is far above the going rate for `event`'s listing, or None.

    Far above means: at least `ratio` times and `z` robust standard deviations
    above the listing's own (category, brand) level; at least
    `far_above_category_ratio` times the category's going rate (its unbranded
    goods, or all its listings while those are few: premium brands would
    raise an all-listing median); every level used warm (for unbranded goods
    the category stands in for a young unbranded level; for a brand nothing
    does); and a title comparable to the category's usual titles.
    """
    category = (levels.deviation(cfg, event.currency, "", price)
                or levels.deviation(cfg, event.currency, ALL_LISTINGS, price))
    if category is None or not category.surely_above(cfg.far_above_category_ratio, cfg.level_certainty):
        return None  # checked first: it rules out almost every listing at the cost of one level
    brand = brand_key(event.brand)
    own = levels.deviation(cfg, event.currency, brand, price) if brand else category
    if own is None or own.z < z or not own.surely_above(ratio, cfg.level_certainty):
        return None
    familiarity = vocabulary.familiarity(title_words(event.title, event.brand), cfg.common_word_share,
                                         cfg.min_word_titles)
    if familiarity < cfg.min_title_familiarity:
        return None
    return {**own.evidence(prefix), f"{prefix}category_going_rate": round(category.level_price, 2),
            f"{prefix}ratio_to_category_rate": round(category.ratio, 3), "title_familiarity": round(familiarity, 2),
            "threshold_far_above_ratio": ratio, "threshold_far_above_z": z,
            "threshold_far_above_category_ratio": cfg.far_above_category_ratio}


def title_words(title: str, brand: str | None) -> frozenset[str]:
    """Distinct words of a title that say what the product is, as the shared matcher's keys
    (disguises undone; brand words, numbers and one-letter words left out).

    >>> sorted(title_words("Harbor Canvas Tote Bag - Navy, 2 pcs", "Harbor"))
    ['bag', 'canvas', 'navy', 'pcs', 'tote']
    >>> sorted(title_words("R.h.i.n.o h.o.r.n powder 10g", None))
    ['horn', 'powder', 'rhino']
    """
    brand_keys = set(normalized(brand).keys) if brand else set()
    norm = normalized(title)
    return frozenset(k for token, k in zip(norm.tokens, norm.keys)
                     if len(k) > 1 and k != CLAUSE_BREAK and not token.isdigit() and k not in brand_keys)


def remember(records: OrderedDict, key: str, record: Any, limit: int) -> None:
    """Keep `record` as the most recent of at most `limit` records."""
    records[key] = record
    records.move_to_end(key)
    while len(records) > limit:
        records.popitem(last=False)


ROUNDING = 1.01  # prices within 1% are the same price (retail rounding)


def ends_a_sale(points: list[tuple[int, float, int | None, float | None]], at: int) -> bool:
    """Point `at` returns to the regular ("was") price the point before it showed.

    The end of a sale is not judged as gouging: whether that "was" price was
    ever real is `FakeDiscount`'s finding, and one act is one violation.
    """
    if at == 0:
        return False
    _, previous_price, _, shown_was = points[at - 1]
    return shown_was is not None and previous_price < points[at][1] <= shown_was * ROUNDING


def in_stock(stock: int | None) -> bool:
    """Stock is optional in the contract: unknown counts as available."""
    return stock is None or stock > 0


def money(x: float) -> str:
    return f"{x:,.2f}"
