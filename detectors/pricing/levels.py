"""Robust streaming price levels, and how a price sits against one: the arithmetic the pricing judges share.

`PriceLevel` is a ring of recent log prices with its median and robust
spread (MAD); `Deviation` is a price against a set of comparable prices
(`comparable.py` finds them), with the margins a level learned from few
prices deserves. Also the helpers every judge needs: brand keys, the words
of a title that say what the product is.
"""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass, field
from typing import Any


from detectors.text import CLAUSE_BREAK, normalized

_MAD_TO_SD = 1.4826  # MAD of a normal sample x this = its standard deviation
_MEDIAN_SE = 1.2533  # standard error of a normal sample's median = this x sd / sqrt(n)
_MAD_SE = 1.1664  # relative standard error of a MAD-based sd = this / sqrt(n)
ROUNDING = 1.01  # prices within 1% are the same price (retail rounding)


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


# Where a title's name ends and its variants start: "Hair Dryer, Bottle Green", "Desk Planner | Sage",
# "Candle - Sage", "Coat (Navy)".
_TITLE_PARTS = re.compile(r"\s[-\u2013\u2014/|]\s|[,|()\[\]:;]")
# Bracketed tags before the name ("(New) ", "[Brand] ", "【Brand】"): the name is the first part after them,
# however short ("[Kaede] Figure / Sumi Black / Chibi" is a figure).
_LEADING_TAGS = re.compile(r"^\s*(?:[(\[\u3010][^)\]\u3011]*[)\]\u3011]\s*)+")


def variant_words(title: str, brand: str | None) -> frozenset[str]:
    """The words of a title that only its variant parts have (after the name: a colour, a size); the name
    is the first part after any bracketed tags.

    >>> sorted(variant_words("Volumising Hair Dryer, Bottle Green", None))
    ['botie', 'gren']
    >>> sorted(variant_words("(New) Scented Candle - Sage, scented", None)), variant_words("Wax Jacket", None)
    (['new', 'sage'], frozenset())
    >>> sorted(variant_words("[Kaede] Figure / Sumi Black / Chibi", "Kaede"))
    ['biack', 'chibi', 'sumi']
    """
    tags = _LEADING_TAGS.match(title)
    body = title[tags.end():] if tags else title
    parts = [words for part in _TITLE_PARTS.split(body) if (words := title_words(part, brand))]
    if not parts:
        return frozenset()
    tagged = title_words(tags.group(), brand) if tags else frozenset()
    return frozenset().union(tagged, *parts[1:]) - parts[0]


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
    """How a price sits against a set of comparable prices (log scale)."""

    group: str  # what the price was compared with, in words ("12 similar listings")
    level_price: float  # their going rate (median price)
    observations: int
    spread: float  # robust standard deviation of log price
    log_ratio: float  # log(price / level_price)
    sample: int  # prices the median and spread were estimated from
    examples: tuple[str, ...] = ()  # ids of some of the listings compared with
    same_brand: bool = False  # compared with listings of its own brand (else: similar items at its brand's level)
    closest_price: float = 0.0  # going rate of the most alike among them (a veto, see `surely_above`)

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
        """At least `ratio` times the level even if the level is `certainty` standard errors too low, and
        `ratio` times what the most alike listings cost: a price in line with the items most like it
        (a wax jacket's, among denim jackets) is no outlier, whatever the rest cost."""
        return (self.log_ratio - self._margin(certainty) >= math.log(ratio)
                and self.log_ratio + math.log(self.level_price / self.closest_price) >= math.log(ratio))

    def surely_below(self, ratio: float, certainty: float) -> bool:
        """At most `ratio` times the level even if the level is `certainty` standard errors too high, and
        than what the most alike listings cost."""
        return (self.log_ratio + self._margin(certainty) <= math.log(ratio)
                and self.log_ratio + math.log(self.level_price / self.closest_price) <= math.log(ratio))

    def evidence(self) -> dict[str, Any]:
        """What a reviewer needs to check the comparison: which items, their going rate, how far off."""
        return {
            "compared_with": self.group,
            "comparable_listings": list(self.examples),  # some of them, for the reviewer to open
            "going_rate": round(self.level_price, 2),
            "most_alike_going_rate": round(self.closest_price, 2),
            "ratio_to_going_rate": round(self.ratio, 3),
            "robust_z": round(self.z, 2),
            "comparable_count": self.observations,
            "level_log_spread": round(self.spread, 3),
        }


def in_stock(stock: int | None) -> bool:
    """Stock is optional in the contract: unknown counts as available."""
    return stock is None or stock > 0


def money(x: float) -> str:
    return f"{x:,.2f}"
