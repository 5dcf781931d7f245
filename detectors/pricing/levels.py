"""What a category's listings teach about prices: robust streaming levels per group of comparable items.

"Comparable items" are not the whole category: a standing desk and a scented
candle are both "home", and a premium brand's tote and a no-name tote are both
"bags". Each listing is learned into the groups it belongs to, per currency:

- `w:<word>`      every listing whose title has the word (`desk`, `vase`, `tote`),
- `b:<brand>`     every listing of the brand,
- `bw:<brand>|<word>`  the brand's listings with the word,
- `*`             every listing of the category.

A group's level is the median and the robust spread (MAD) of its recent log
prices (`PriceLevel`). A listing is judged against the most specific warm
group its title and brand put it in (`comparable_groups`, `most_specific`):
the narrowest spread of prices says which items are really the same kind of
product. No group judges before it is warm, a title with words the category
does not know is not judged at all, and nothing flagged is learned (score
first, then learn), so abusers cannot drag a level towards themselves.
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

import msgspec

from detectors.text import CLAUSE_BREAK, normalized

_MAD_TO_SD = 1.4826  # MAD of a normal sample x this = its standard deviation
_MEDIAN_SE = 1.2533  # standard error of a normal sample's median = this x sd / sqrt(n)
_MAD_SE = 1.1664  # relative standard error of a MAD-based sd = this / sqrt(n)
ROUNDING = 1.01  # prices within 1% are the same price (retail rounding)
ALL = "*"  # the group of every listing of a category


def brand_key(brand: str | None) -> str:
    """The key a brand is known by: its normalised matching keys ("" for no brand).

    >>> brand_key("Tiffany & Co.") == brand_key("TIFFANY & CO"), brand_key("HERMÈS") == brand_key("Hermes")
    (True, True)
    >>> brand_key(None), brand_key("  ")
    ('', '')
    """
    if not brand or not brand.strip():
        return ""
    return " ".join(k for k in normalized(brand).keys if k != CLAUSE_BREAK)


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


def written_words(title: str) -> dict[str, str]:
    """Each matching key of a title -> the word as the title writes it (for evidence people read).

    >>> written_words("Soft Blanket - Black")["bianket"]
    'blanket'
    """
    norm = normalized(title)
    return {k: token for token, k in zip(norm.tokens, norm.keys) if k != CLAUSE_BREAK}


def word_group(word: str) -> str:
    return f"w:{word}"


def brand_group(brand: str) -> str:
    return f"b:{brand}"


def brand_word_group(brand: str, word: str) -> str:
    return f"bw:{brand}|{word}"


class LevelsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How comparable price levels are learned (table `[detectors.pricing.levels]`).

    Parameters
    ----------
    level_window
        Recent log prices each group keeps.
    level_refresh_every
        New observations between two recomputations of a group's median and MAD.
    min_group_observations
        Observations a word or category group needs before it judges anything.
    min_brand_observations
        Observations a brand (or brand-and-word) group needs before it judges.
    min_log_spread
        Floor of a group's robust spread (log scale), so a group of identical
        prices does not call every small difference extreme.
    level_certainty
        A price is judged as if the group's median were this many standard
        errors less favourable (and its spread this many standard errors
        wider), so a level learned from few prices judges only what is clear.
    min_known_words
        Share of a title's words the category must know (warm word groups)
        before the listing is judged against comparable items: a title the
        category has not seen the like of (a new product type) is nobody's
        comparable item.
    attribute_spread_ratio
        A word whose listings spread over at least this share of the whole
        category's price spread names no kind of product (a colour, "classic"):
        it says nothing about what is comparable. The other words do, and the
        groups of all of them must be warm for a comparison.
    max_groups
        Groups kept per category and currency, least recently used dropped first.
    """

    level_window: int
    level_refresh_every: int
    min_group_observations: int
    min_brand_observations: int
    min_log_spread: float
    level_certainty: float
    min_known_words: float
    attribute_spread_ratio: float
    max_groups: int


@dataclass(slots=True)
class PriceLevel:
    """The going rate of one group of listings: robust centre and spread of recent log prices.

    A ring of the last `capacity` observations; the median and the median
    absolute deviation are recomputed from it every `refresh_every` new
    observations (a sort of at most a few hundred floats), so a learn costs
    O(1) amortised and the level follows drift.

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

    def lowest(self) -> float:
        return math.exp(min(self.ring))

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
    """How a price sits against one group's level (log scale)."""

    group: str  # the group the price was compared with, e.g. "w:vase"
    level_price: float  # the group's going rate (median price)
    observations: int
    spread: float  # robust standard deviation of log price
    log_ratio: float  # log(price / level_price)
    sample: int  # prices the median and spread were estimated from

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

    def evidence(self, written: dict[str, str] | None = None) -> dict[str, Any]:
        """What a reviewer needs to check the comparison: which items, their going rate, how far off.

        `written` gives the title's own spelling of the group's words (`written_words`).
        """
        return {
            "compared_with": describe_group(self.group, written),
            "going_rate": round(self.level_price, 2),
            "ratio_to_going_rate": round(self.ratio, 3),
            "robust_z": round(self.z, 2),
            "comparable_listings": self.observations,
            "level_log_spread": round(self.spread, 3),
        }


def describe_group(group: str, written: dict[str, str] | None = None) -> str:
    """A group key in words, for evidence and explanations (words spelled as `written` has them).

    >>> describe_group("w:vase"), describe_group("bw:luma|tote"), describe_group("*")
    ("listings with 'vase' in the title", "luma listings with 'tote' in the title", 'every listing of the category')
    >>> describe_group("w:bianket", {"bianket": "blanket"})
    "listings with 'blanket' in the title"
    """
    written = written or {}
    kind, _, rest = group.partition(":")
    if kind == "bw":
        brand, _, word = rest.partition("|")
        rest = f"{brand}|{written.get(word, word)}"
    elif kind == "w":
        rest = written.get(rest, rest)
    if kind == "w":
        return f"listings with '{rest}' in the title"
    if kind == "b":
        return f"{rest} listings"
    if kind == "bw":
        brand, _, word = rest.partition("|")
        return f"{brand} listings with '{word}' in the title"
    return "every listing of the category"


@dataclass(slots=True)
class ComparableLevels:
    """One category's price levels per (currency, group), least recently used first."""

    levels: OrderedDict[tuple[str, str], PriceLevel] = field(default_factory=OrderedDict)

    def deviation(self, cfg: LevelsConfig, currency: str, group: str, price: float) -> Deviation | None:
        """`price` against a group's level, or None while that group is cold (precision first)."""
        level = self.levels.get((currency, group))
        need = cfg.min_brand_observations if group.startswith("b") else cfg.min_group_observations
        if level is None or level.seen < need:
            return None
        centre = level.centre(cfg.level_refresh_every)
        return Deviation(group, math.exp(centre), level.seen, level.spread(cfg.level_refresh_every, cfg.min_log_spread),
                         math.log(price) - centre, len(level.ring))

    def warm(self, cfg: LevelsConfig, currency: str, groups: Iterable[str], price: float) -> list[Deviation]:
        """`price` against each warm group of `groups`."""
        found = (self.deviation(cfg, currency, g, price) for g in groups)
        return [d for d in found if d is not None]

    def lowest(self, currency: str, group: str) -> float | None:
        level = self.levels.get((currency, group))
        return level.lowest() if level is not None and level.ring else None

    def learn(self, cfg: LevelsConfig, currency: str, groups: Iterable[str], price: float) -> None:
        log_price = math.log(price)
        levels = self.levels
        for group in groups:
            key = (currency, group)
            level = levels.get(key)
            if level is None:
                level = levels[key] = PriceLevel(cfg.level_window)
                while len(levels) > cfg.max_groups:
                    levels.popitem(last=False)
            else:
                levels.move_to_end(key)
            level.learn(log_price)

    def __len__(self) -> int:
        return len(self.levels)


def comparable_groups(cfg: LevelsConfig, levels: ComparableLevels, currency: str, brand: str,
                      words: frozenset[str], price: float) -> list[Deviation] | None:
    """`price` against the warm groups of comparable items a listing belongs to, or None when it has none.

    The category (or, for a branded listing, the brand) must know the title's
    words (`min_known_words`): a word it has not seen enough of may name a
    new, expensive kind of product (the first "Modern Desk - Black" among
    candles). The known words that name a
    kind of product (`attribute_spread_ratio`: not a colour or "classic") say
    which items are comparable: the category's items with those words, or
    for a branded listing the brand's own items with them (a brand as a
    whole mixes its product lines).
    """
    generic = levels.warm(cfg, currency, [word_group(w) for w in words], price)
    own = levels.warm(cfg, currency, [brand_word_group(brand, w) for w in words], price) if brand else []
    known = {d.group[2:] for d in generic} | {d.group.rpartition("|")[2] for d in own}
    if not words or len(known) < cfg.min_known_words * len(words):
        return None
    category = levels.deviation(cfg, currency, ALL, price)
    wide = cfg.attribute_spread_ratio * (category.spread if category is not None else math.inf)
    if not brand:
        return [d for d in generic if d.spread < wide] or None
    kinds = {d.group.rpartition("|")[2] for d in own if d.spread < wide}
    return [d for d in own if d.group.rpartition("|")[2] in kinds] or None


def most_specific(groups: list[Deviation], prefer_expensive: bool) -> Deviation:
    """The group of comparable items that says most about this kind of product: the narrowest spread
    of prices (a vase, not everything ceramic); among equals the more expensive (`prefer_expensive`)
    or the cheaper one, then by name, so the choice never depends on the order of a set."""
    sign = -1.0 if prefer_expensive else 1.0
    return min(groups, key=lambda d: (round(d.spread, 3), sign * d.level_price, d.group))


def groups_of(brand: str, words: frozenset[str]) -> list[str]:
    """Every group a listing of `brand` ("" for none) with these title words belongs to.

    >>> groups_of("luma", frozenset({"tote"}))
    ['*', 'w:tote', 'b:luma', 'bw:luma|tote']
    """
    groups = [ALL, *(word_group(w) for w in sorted(words))]
    if brand:
        groups.append(brand_group(brand))
        groups += [brand_word_group(brand, w) for w in sorted(words)]
    return groups


def in_stock(stock: int | None) -> bool:
    """Stock is optional in the contract: unknown counts as available."""
    return stock is None or stock > 0


def money(x: float) -> str:
    return f"{x:,.2f}"
