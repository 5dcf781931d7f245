"""Listing detectors: spam, and (with the rest of the catalog) pricing and goods.

`ListingSpam` finds a burst of near-duplicate listings from one seller: the
same main image, or titles that differ only by numbers, emoji, punctuation or
word order. Two or three similar listings over a day (a restock, colour
variants with their own photos) stay clean; a burst of `min_listings` within
`window_seconds` does not.

The pricing and goods detectors learn each category's going rate from the
stream (a robust median and spread of recent log prices per currency and
brand) and remember a little about each listing:

- `PriceGouging`: an in-stock item whose price jumps to several times what it
  cost recently, or a price far above its (category, brand) going rate. A
  premium brand is judged against its own level, a price drop never fires.
- `FakeDiscount`: a "was" price the listing never had (its history since
  creation is known), or one far above the going rate. A sale whose "was"
  price is the real previous price is clean.
- `CounterfeitListing`: a protected brand offered with replica wording, or at
  a small fraction of that brand's learned going rate. Replica wording alone
  ("inspired by nature") is not enough.

No level judges anything before it has enough observations: precision first.
"""

from __future__ import annotations

import math
import re
from array import array
from bisect import bisect_right
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

import msgspec

from detectors.base import CoolDown, Signal, clamp01
from detectors.text import CLAUSE_BREAK, normalize, normalized, phrase_matcher, title_signature
from pipeline.contract.events import ListingCreated, ListingUpdated, ListingUpserted


class ListingSpamConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of `ListingSpam` (table `[detectors.listing_spam]`).

    Parameters
    ----------
    window_seconds
        How far back new listings are compared.
    min_listings
        Near-duplicate listings (the new one included) that make a burst.
    cooldown_seconds
        One violation per seller and duplicate cluster within this period.
    """

    window_seconds: float
    min_listings: int
    cooldown_seconds: float


@dataclass(slots=True)
class _Posted:
    ts: int
    listing_id: str
    image_hash: str | None
    signature: str
    title: str


@dataclass(slots=True)
class SellerListings:
    """A seller's recently created listings, oldest first."""

    actor: str
    recent: deque[_Posted] = field(default_factory=deque)
    cooldown: CoolDown = field(default_factory=lambda: CoolDown(0))


class ListingSpam:
    """A burst of duplicate or near-duplicate listings.

    Examples
    --------
    >>> det = ListingSpam(ListingSpamConfig(window_seconds=3600, min_listings=4, cooldown_seconds=21600))
    >>> def listing(i, title):
    ...     return ListingCreated(event_id=f"e{i}", ts=i * 60_000, seller_id="S1", listing_id=f"L{i}",
    ...         title=title, category="phones", price=9.0, currency="USD", brand=None,
    ...         original_price=None, image_hash=None, stock=5)
    >>> state, found = None, []
    >>> for i, t in enumerate(["Phone case 1", "🔥 phone case 2", "Case phone #3", "Phone case 4", "Phone case 5"]):
    ...     state, signals = det.on_event(state, listing(i, t))
    ...     found += signals
    >>> [(s.actor, s.detected_at, s.evidence["duplicates"]) for s in found]
    [('seller:S1', 180000, 4)]
    """

    name: ClassVar[str] = "listing_spam_v1"
    violation_type: ClassVar[str] = "listing_spam"
    event_types: ClassVar[frozenset[type]] = frozenset({ListingCreated})

    def __init__(self, config: ListingSpamConfig) -> None:
        self.config = config
        self._window_ms = int(config.window_seconds * 1000)
        self._cooldown_ms = int(config.cooldown_seconds * 1000)

    def entity(self, event: ListingCreated) -> str:
        return event.seller_id

    def on_event(self, state: SellerListings | None, event: ListingCreated) -> tuple[SellerListings, list[Signal]]:
        if state is None:
            state = SellerListings(actor=f"seller:{event.seller_id}", cooldown=CoolDown(self._cooldown_ms))
        posted = _Posted(event.ts, event.listing_id, event.image_hash, title_signature(event.title), event.title)
        state.recent.append(posted)
        newest = max(p.ts for p in state.recent)
        # Arrival order is roughly event order, so trimming from the left is enough;
        # listings kept for 2 windows so one that arrives late still finds its burst.
        while state.recent and state.recent[0].ts < newest - 2 * self._window_ms:
            state.recent.popleft()
        cluster = self._burst(self._near_duplicates(state, posted))
        if len(cluster) < self.config.min_listings:
            return state, []
        finding = f"img:{posted.image_hash}" if posted.image_hash and all(
            p.image_hash == posted.image_hash for p in cluster) else f"title:{posted.signature}"
        if not state.cooldown.ready(finding, cluster[-1].ts):
            return state, []
        return state, [self._signal(state, event, finding, cluster)]

    def _near_duplicates(self, state: SellerListings, new: _Posted) -> list[_Posted]:
        """Distinct listings within a window of the new one sharing its image or title signature."""
        by_listing: dict[str, _Posted] = {}
        for p in state.recent:
            if abs(p.ts - new.ts) <= self._window_ms and (
                (new.image_hash is not None and p.image_hash == new.image_hash)
                or (new.signature and p.signature == new.signature)
            ):
                by_listing[p.listing_id] = p
        return sorted(by_listing.values(), key=lambda p: (p.ts, p.listing_id))

    def _burst(self, matches: list[_Posted]) -> list[_Posted]:
        """The largest run of `matches` (sorted by time) that fits in one window."""
        best: list[_Posted] = []
        start = 0
        for end in range(len(matches)):
            while matches[end].ts - matches[start].ts > self._window_ms:
                start += 1
            if end - start + 1 > len(best):
                best = matches[start:end + 1]
        return best

    def _signal(self, state: SellerListings, event: ListingCreated, finding: str, cluster: list[_Posted]) -> Signal:
        n, need = len(cluster), self.config.min_listings
        return Signal(
            actor=state.actor,
            violation_type=self.violation_type,
            detector=self.name,
            subject=finding,
            detected_at=cluster[-1].ts,  # the event time at which the burst was complete
            window_start=cluster[0].ts,
            window_end=cluster[-1].ts,
            confidence=clamp01(0.6 + 0.1 * (n - need + 1)),
            evidence={
                "duplicates": n,
                "threshold": need,
                "window_seconds": self.config.window_seconds,
                "matched_on": finding.split(":", 1)[0],
                "image_hash": cluster[-1].image_hash,
                "listing_ids": [p.listing_id for p in cluster],
                "titles": [p.title for p in cluster[:10]],
            },
            explanation=(
                f"You created {n} near-identical listings within "
                f"{int(self.config.window_seconds // 60)} minutes; list each product once."
            ),
        )


# ---- pricing and goods -----------------------------------------------------------
#
# Listing upserts are routed by category, so the three detectors below key their
# state by category: each category's state holds the price levels learned from
# its own listings (per currency and brand) plus a self-bounded record per
# listing. Levels are judged before they learn (score first, then learn), and a
# price that was just flagged is never learned, so abusers cannot drag the going
# rate towards themselves.

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


def _remember(records: OrderedDict, key: str, record: Any, limit: int) -> None:
    """Keep `record` as the most recent of at most `limit` records."""
    records[key] = record
    records.move_to_end(key)
    while len(records) > limit:
        records.popitem(last=False)


_ROUNDING = 1.01  # prices within 1% are the same price (retail rounding)


def _ends_a_sale(points: list[tuple[int, float, int | None, float | None]], at: int) -> bool:
    """Point `at` returns to the regular ("was") price the point before it showed.

    The end of a sale is not judged as gouging: whether that "was" price was
    ever real is `FakeDiscount`'s finding, and one act is one violation.
    """
    if at == 0:
        return False
    _, previous_price, _, shown_was = points[at - 1]
    return shown_was is not None and previous_price < points[at][1] <= shown_was * _ROUNDING


def _in_stock(stock: int | None) -> bool:
    """Stock is optional in the contract: unknown counts as available."""
    return stock is None or stock > 0


def _money(x: float) -> str:
    return f"{x:,.2f}"


# ---- price gouging ------------------------------------------------------------------


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
        _remember(state.listings, event.listing_id, history, cfg.max_listings)
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
        far = None if _ends_a_sale(history.points, at) else far_above_going_rate(
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
        if not recent or not _in_stock(stock):
            return None
        previous, highest = recent[-1], max(p[1] for p in recent)
        if price < cfg.raise_ratio * previous[1] or price < cfg.raise_over_recent_high * highest:
            return None
        if _ends_a_sale(history.points, at):
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
            what = (f"you raised the price of listing {event.listing_id} to {_money(raise_['raised_price'])} "
                    f"from {_money(raise_['recent_price'])} ({raise_['raise_ratio']:.1f}x) while it was in stock")
        else:
            what = (f"listing {event.listing_id} is priced at {_money(event.price)}, "
                    f"{far['ratio_to_going_rate']:.1f}x the going rate of {_money(far['going_rate'])} "
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


# ---- fake discount ----------------------------------------------------------------------


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
        _remember(state.listings, event.listing_id, record, cfg.max_listings)
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
            why = f"the listing never sold for more than {_money(never['highest_real_price'])}"
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
                f"Listing {event.listing_id} shows a \"was\" price of {_money(was)} but {why}; "
                "only show a previous price you really charged."),
        )


# ---- counterfeit listing --------------------------------------------------------------------


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
        _remember(state.listings, event.listing_id, record, cfg.max_listings)
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
            why = (f"sells {brand} at {_money(event.price)}, "
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
