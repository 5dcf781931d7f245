"""The state the pricing judges share: one category's market, and the platform's brand registry.

`CategoryMarket` is what a category's listings taught: comparable items
(`comparable.py`), each listing's own recent price history, and the brands
its sellers name. `BrandRegistry` is what the platform says: the
brands it protects (`brand.registered` events), kept once per shard and read
by every category in it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from detectors.pricing.comparable import ComparableIndex
from detectors.pricing.levels import ROUNDING, brand_key
from detectors.text import CLAUSE_BREAK, normalized

MAX_BRAND_TOKENS = 4  # longest brand name matched in a title, in words
_MEMO_SIZE = 4096  # title words and phrases whose nearest registered brand is remembered


class PricePoint(NamedTuple):
    ts: int
    price: float
    was: float | None  # the strike-through price shown with it
    stock: int | None

    @property
    def regular(self) -> bool:
        """Charged as the regular price (no discount shown)."""
        return self.was is None or self.was <= self.price * ROUNDING


@dataclass(slots=True)
class ListingRecord:
    """One listing: who sells it, what it charged lately, what was flagged when."""

    actor: str
    complete: bool  # its creation was seen: the history is everything it ever charged
    points: list[PricePoint] = field(default_factory=list)  # event-time order
    flagged: dict[str, int] = field(default_factory=dict)  # violation type -> event time of its last finding
    last_claim: tuple[float, float] | None = None  # (price, was) of the discount last judged

    def add(self, point: PricePoint, keep_ms: int, max_points: int) -> int:
        """Insert a price point in event-time order, forget what is older than needed; returns its index."""
        points = self.points
        at = len(points)
        while at and points[at - 1].ts > point.ts:
            at -= 1
        points.insert(at, point)
        # Keep the point in force `keep_ms` before the newest (a reference window starts there).
        horizon = points[-1].ts - keep_ms
        drop = 0
        while drop + 1 < len(points) and points[drop + 1].ts <= horizon:
            drop += 1
        drop = max(drop, len(points) - max_points)
        if drop > 0:
            del points[:drop]
            at -= drop
        return max(at, 0)

    def lowest_regular(self, before: int, window_ms: int, min_hold_ms: int) -> tuple[float, int] | None:
        """(price, since) of the lowest regular price in force for at least `min_hold_ms` during the
        `window_ms` before `before`: the reference a "was" price is held to (the EU price-indication
        rule: the lowest price applied in the previous 30 days). None if the history shows none."""
        best: tuple[float, int] | None = None
        points = self.points
        for i, point in enumerate(points):
            if point.ts >= before:
                break
            until = min(points[i + 1].ts if i + 1 < len(points) else before, before)
            if not point.regular or until - point.ts < min_hold_ms or until <= before - window_ms:
                continue
            if best is None or point.price < best[0]:
                best = (point.price, point.ts)
        return best

    def charged(self, price: float, before: int, window_ms: int, min_hold_ms: int) -> bool:
        """Whether `price` (within retail rounding) was a regular price held `min_hold_ms` in the window."""
        points = self.points
        for i, point in enumerate(points):
            if point.ts >= before:
                break
            until = min(points[i + 1].ts if i + 1 < len(points) else before, before)
            if (point.regular and until - point.ts >= min_hold_ms and until > before - window_ms
                    and point.price <= price * ROUNDING and price <= point.price * ROUNDING):
                return True
        return False

    def covers(self, before: int, window_ms: int) -> bool:
        """Whether the known history is all the listing charged in the window before `before`."""
        return self.complete or (bool(self.points) and self.points[0].ts <= before - window_ms)

    def cooling(self, violation_type: str, ts: int, cooldown_ms: int) -> bool:
        """Whether a finding of this type was issued for the listing within the cool-down."""
        last = self.flagged.get(violation_type)
        return last is not None and abs(ts - last) < cooldown_ms


@dataclass(slots=True)
class CategoryMarket:
    """A category's learned price levels, listings and the brands its sellers name."""

    index: ComparableIndex = field(default_factory=ComparableIndex)
    listings: OrderedDict[str, ListingRecord] = field(default_factory=OrderedDict)
    # brand key -> (name as written, genuine listings that named it), least recently seen first
    brands: OrderedDict[str, tuple[str, int]] = field(default_factory=OrderedDict)

    def record(self, listing_id: str, actor: str, created: bool, max_listings: int) -> ListingRecord:
        """The listing's record (made on first sight), marked most recently used."""
        record = self.listings.get(listing_id)
        if record is None:
            record = self.listings[listing_id] = ListingRecord(actor, complete=created)
            while len(self.listings) > max_listings:
                self.listings.popitem(last=False)
        else:
            self.listings.move_to_end(listing_id)
            record.complete = record.complete or created
        return record

    def learn_brand(self, written: str, max_brands: int) -> None:
        key = brand_key(written)
        if not key:
            return
        name, count = self.brands.pop(key, (written, 0))
        self.brands[key] = (name, count + 1)
        while len(self.brands) > max_brands:
            self.brands.popitem(last=False)

    def known_brand(self, key: str, min_listings: int) -> str | None:
        """The brand's name if enough genuine listings of this category named it."""
        entry = self.brands.get(key)
        return entry[0] if entry is not None and entry[1] >= min_listings else None


MIN_FUZZY_CHARS = 6  # a protected name at least this long is also found misspelt by one letter


@dataclass(slots=True)
class BrandRegistry:
    """The brands the platform protects (from `brand.registered`), by brand key, with their names.

    Counterfeiters misspell protected names ("Brakenridge" for "Brackenridge")
    so that exact matching misses them: every key of `MIN_FUZZY_CHARS` or
    more is also indexed by its one-letter deletions, and found within one
    edit (a letter dropped, added or changed).
    """

    names: dict[str, str] = field(default_factory=dict)
    near: dict[str, str] = field(default_factory=dict)  # one-letter deletion of a key -> that key
    lengths: set[int] = field(default_factory=set)  # of the keys indexed by their deletions
    # key -> what `find` answered, until the next registration: titles repeat their words
    memo: dict[str, str | None] = field(default_factory=dict)

    def register(self, brand: str, aliases: list[str], max_brands: int) -> None:
        self.memo.clear()
        for written in (brand, *aliases):
            key = brand_key(written)
            if key and (key in self.names or len(self.names) < max_brands):
                self.names[key] = brand
                if len(key) >= MIN_FUZZY_CHARS:
                    self.lengths.add(len(key))
                    for variant in _deletions(key):
                        self.near.setdefault(variant, key)

    def find(self, key: str) -> str | None:
        """The registered key `key` names, exactly or within one edit."""
        if key in self.names:
            return key
        n = len(key)
        if n < MIN_FUZZY_CHARS - 1 or not (n in self.lengths or n - 1 in self.lengths or n + 1 in self.lengths):
            return None  # one edit from no registered key's length
        if key in self.memo:
            return self.memo[key]
        if len(self.memo) >= _MEMO_SIZE:
            self.memo.clear()
        found = self.memo[key] = self._within_one_edit(key)
        return found

    def _within_one_edit(self, key: str) -> str | None:
        for candidate in (key, *_deletions(key)):
            found = self.near.get(candidate) or (candidate if candidate in self.names else None)
            if found is not None and _one_edit(key, found):
                return found
        return None


def _deletions(key: str) -> set[str]:
    return {key[:i] + key[i + 1:] for i in range(len(key))}


def _one_edit(a: str, b: str) -> bool:
    """Whether `a` becomes `b` by dropping, adding or changing one letter.

    >>> _one_edit("brakenridge", "brackenridge"), _one_edit("luma", "lima"), _one_edit("luma", "lamp")
    (True, True, False)
    """
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) <= 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


class Mention(NamedTuple):
    """A brand named in a title, at tokens [start, end) of its normalised form."""

    key: str
    name: str
    start: int
    end: int
    registered: bool


def brands_in(text: str, registry: BrandRegistry | None, market: CategoryMarket,
              min_listings: int) -> list[Mention]:
    """Registered or known brands a text names (longest match first at each position).

    >>> market = CategoryMarket()
    >>> for _ in range(3):
    ...     market.learn_brand("Aster & Vale", 100)
    >>> registry = BrandRegistry()
    >>> registry.register("Luma", ["LUMA Paris"], 100)
    >>> [(m.name, m.registered) for m in brands_in("Aster & Vale tote, LUMA paris style", registry, market, 3)]
    [('Aster & Vale', False), ('Luma', True)]
    >>> registry.register("Brackenridge", [], 100)
    >>> [m.name for m in brands_in("inspired Brakenridge pannier", registry, market, 3)]
    ['Brackenridge']
    """
    keys = normalized(text).keys
    found: list[Mention] = []
    i = 0
    while i < len(keys):
        for n in range(min(MAX_BRAND_TOKENS, len(keys) - i), 0, -1):
            words = keys[i:i + n]
            if CLAUSE_BREAK in words:
                continue
            key = " ".join(words)
            protected = registry.find(key) if registry is not None else None
            registered = registry.names[protected] if protected is not None else None
            name = registered or market.known_brand(key, min_listings)
            if name is not None:
                found.append(Mention(key, name, i, i + n, registered is not None))
                i += n - 1
                break
        i += 1
    return found
