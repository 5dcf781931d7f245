"""Misleading price claims: a creator says a price on a LIVE that the listing does not charge.

TikTok Shop's own example: a $9.99 product may be promoted as "less than
$10", never as "$9". A creator's speech (`live.transcript`, or a host's own
`live.comment`) that states a price below what the listing charges, a bound
the listing does not meet ("under $10" for $12), or a former ("was") price
the listing never charged, misleads buyers.

Two stages, because the evidence lives with two different entities:

1. keyed by LIVE (the `detect` stage, creator shards): remember which shop
   the LIVE sells for (`live.started`), read the prices said in it
   (`price_talk.amounts`) with the words around them, and `Forward` each
   `PriceClaim` to that shop;
2. keyed by shop (the `shops` stage): keep the shop's listings (title words,
   recent prices), match the claim's words to the listing they name, and
   judge it `hold_seconds` of event time later (`Wake`), so a price change
   delivered late is taken into account before anyone is penalised.

Exact prices, rounding up ("about $10" for 9.99), real former prices and
amounts in another currency than the listing's are clean.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from detectors.base import Forward, Signal, Wake, clamp01
from detectors.price_talk import NOW, UNDER, WAS, Amount, amounts, same_currency
from detectors.pricing.levels import ROUNDING, money, title_words
from detectors.pricing.market import ListingRecord, PricePoint
from detectors.registry import register
from pipeline.contract.events import (
    ListingCreated, ListingRemoved, ListingUpdated, LiveComment, LiveEnded, LiveStarted, LiveTranscript,
)

DAY_MS = 86_400_000


class MisleadingPriceClaimConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of misleading price claims (table `[detectors.misleading_price_claim]`).

    Parameters
    ----------
    hold_seconds
        A claim is judged this long (event time) after it was said, once late
        price changes of the listing have had time to arrive.
    min_shared_words
        Words of the listing's title the sentence must share to name it.
    price_tolerance
        A stated price this share below the listing's price is still rounding
        ("9.90" for 9.99); further below, it misleads.
    reference_window_days, min_hold_seconds
        A stated former price must be one the listing charged as its regular
        price, for at least `min_hold_seconds`, within this many days.
    max_listings, max_pending, max_unrouted
        Listings remembered per shop, claims waiting per shop, sentences kept
        per LIVE until its shop is known.
    cooldown_seconds
        One violation per creator and listing within this period.
    """

    hold_seconds: float
    min_shared_words: int
    price_tolerance: float
    reference_window_days: float
    min_hold_seconds: float
    max_listings: int
    max_pending: int
    max_unrouted: int
    cooldown_seconds: float


class PriceClaim(msgspec.Struct, frozen=True):
    """A price a creator said on a LIVE, on its way to the shop the LIVE sells for."""

    event_id: str  # of the utterance
    ts: int
    seller_id: str
    creator: str  # actor reference
    live_id: str
    source: str  # the event type it was said in
    text: str  # the sentence, cut to a bounded excerpt
    words: frozenset[str]
    amount: Amount
    topic: ClassVar[str] = "live-events"
    type: ClassVar[str] = "live.price_claim"


@dataclass(slots=True)
class LiveShop:
    """One LIVE: the shop it sells for (once known), and sentences said before that was known."""

    creator: str
    seller_id: str | None = None
    unrouted: list[PriceClaim] = field(default_factory=list)


@dataclass(slots=True)
class ShopListing:
    """What a shop's listing says about itself: its title (and its words), currency and prices."""

    title: str
    words: frozenset[str]
    currency: str
    record: ListingRecord


@dataclass(slots=True)
class ShopCatalog:
    """One shop: its listings' titles and prices, claims waiting to be judged, and cool-downs."""

    listings: OrderedDict[str, ShopListing] = field(default_factory=OrderedDict)
    pending: list[PriceClaim] = field(default_factory=list)
    flagged: dict[str, int] = field(default_factory=dict)  # "creator|listing" -> ts of its last violation


@register
class MisleadingPriceClaim:
    """A creator's spoken price that the listing it names does not charge.

    Examples
    --------
    >>> from detectors.price_claims import example
    >>> [(s.actor, s.evidence["kind"], s.evidence["stated_price"], s.evidence["listing_price"]) for s in example()]
    [('creator:C1', 'below_listing_price', 9.0, 9.99)]
    """

    name: ClassVar[str] = "misleading_price_claim_v1"
    table: ClassVar[str] = "misleading_price_claim"
    violation_types: ClassVar[tuple[str, ...]] = ("misleading_price_claim",)
    Config: ClassVar[type] = MisleadingPriceClaimConfig
    event_types: ClassVar[frozenset[type]] = frozenset({LiveStarted, LiveTranscript, LiveComment, LiveEnded})
    joined_types: ClassVar[frozenset[type]] = frozenset({ListingCreated, ListingUpdated, ListingRemoved, PriceClaim})
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds

    def __init__(self, config: MisleadingPriceClaimConfig) -> None:
        self.config = config
        self._hold_ms = int(config.hold_seconds * 1000)
        self._window_ms = int(config.reference_window_days * DAY_MS)
        self._min_hold_ms = int(config.min_hold_seconds * 1000)
        self._cooldown_ms = int(config.cooldown_seconds * 1000)

    def entity(self, event: Any) -> str | None:
        kind = type(event)
        if kind is PriceClaim or kind in (ListingCreated, ListingUpdated, ListingRemoved):
            return event.seller_id
        if kind is LiveComment and not event.by_host:
            return None  # a viewer's words are not the creator's claim
        return event.live_id

    def on_event(self, state: Any, event: Any) -> tuple[Any, list[Any]]:
        kind = type(event)
        if kind is PriceClaim:
            return self._on_claim(state or ShopCatalog(), event)
        if kind in (ListingCreated, ListingUpdated, ListingRemoved):
            return self._on_listing(state or ShopCatalog(), event), []
        return self._on_live(state, event)

    # ---- stage 1: what is said on a LIVE --------------------------------------------------

    def _on_live(self, state: LiveShop | None, event: Any) -> tuple[LiveShop | None, list[Any]]:
        if type(event) is LiveEnded:
            return None, []
        state = state or LiveShop(creator=f"creator:{event.creator_id}")
        if type(event) is LiveStarted:
            state.seller_id = event.seller_id
            ready, state.unrouted = state.unrouted, []
            return state, [Forward(c.seller_id or event.seller_id, msgspec.structs.replace(c, seller_id=event.seller_id))
                           for c in ready] if event.seller_id else []
        claims = self._claims(state, event)
        if state.seller_id is None:  # said before the LIVE's start reached us: keep a few until it does
            state.unrouted = (state.unrouted + claims)[-self.config.max_unrouted:]
            return state, []
        return state, [Forward(state.seller_id, claim) for claim in claims]

    def _claims(self, state: LiveShop, event: LiveTranscript | LiveComment) -> list[PriceClaim]:
        text = event.text
        said = amounts(text)
        if not said:
            return []
        words = title_words(text, None)
        excerpt = text if len(text) <= 400 else text[:400] + "…"
        return [PriceClaim(event_id=f"{event.event_id}#{i}", ts=event.ts, seller_id=state.seller_id or "",
                           creator=state.creator, live_id=event.live_id, source=event.type, text=excerpt,
                           words=words, amount=amount)
                for i, amount in enumerate(said)]

    # ---- stage 2: the shop's listings, and the claims about them ----------------------------

    def _on_listing(self, shop: ShopCatalog, event: Any) -> ShopCatalog:
        if type(event) is ListingRemoved:
            shop.listings.pop(event.listing_id, None)
            return shop
        created = type(event) is ListingCreated
        entry = shop.listings.pop(event.listing_id, None)
        record = entry.record if entry else ListingRecord(f"seller:{event.seller_id}", complete=created)
        record.complete = record.complete or created
        record.add(PricePoint(event.ts, event.price, event.original_price, event.stock), self._window_ms, 48)
        shop.listings[event.listing_id] = ShopListing(event.title, title_words(event.title, event.brand),
                                                      event.currency, record)
        while len(shop.listings) > self.config.max_listings:
            shop.listings.popitem(last=False)
        return shop

    def _on_claim(self, shop: ShopCatalog, claim: PriceClaim) -> tuple[ShopCatalog, list[Any]]:
        if len(shop.pending) >= self.config.max_pending:
            shop.pending.pop(0)  # bounded: the oldest unjudged claim gives way
        shop.pending.append(claim)
        return shop, [Wake(claim.ts + self._hold_ms)]

    def on_wake(self, shop: ShopCatalog, at: int) -> tuple[ShopCatalog, list[Signal]]:
        due = [c for c in shop.pending if c.ts + self._hold_ms <= at]
        shop.pending = [c for c in shop.pending if c.ts + self._hold_ms > at]
        signals = []
        for claim in due:
            signal = self._judge(shop, claim, at)
            if signal is not None:
                signals.append(signal)
        return shop, signals

    def _judge(self, shop: ShopCatalog, claim: PriceClaim, at: int) -> Signal | None:
        named = self._named_listings(shop, claim)
        if not named:
            return None
        verdicts = [self._verdict(claim, listing_id, listing) for listing_id, listing in named]
        if any(v is None for v in verdicts):
            return None  # true of some listing it may name: not misleading
        listing_id, finding = verdicts[0]
        key = f"{claim.creator}|{listing_id}"
        last = shop.flagged.get(key)
        if last is not None and abs(claim.ts - last) < self._cooldown_ms:
            return None
        shop.flagged[key] = claim.ts
        return self._signal(claim, listing_id, finding, at)

    def _named_listings(self, shop: ShopCatalog, claim: PriceClaim) -> list[tuple[str, ShopListing]]:
        """The shop's listings whose titles share the most words with the sentence (at least `min_shared_words`)."""
        best, named = self.config.min_shared_words, []
        for listing_id, listing in shop.listings.items():
            shared = len(listing.words & claim.words)
            if shared > best:
                best, named = shared, [(listing_id, listing)]
            elif shared == best:
                named.append((listing_id, listing))
        return named

    def _verdict(self, claim: PriceClaim, listing_id: str, listing: ShopListing) -> tuple[str, dict[str, Any]] | None:
        """Why the claim misleads about this listing, or None when it may be true of it."""
        amount, record = claim.amount, listing.record
        charging = _price_at(record, claim.ts)
        if charging is None or not same_currency(amount.currency, listing.currency):
            return None  # nothing charged yet, or said in another currency: not comparable
        common = {"listing_id": listing_id, "listing_title": listing.title, "listing_price": charging.price,
                  "listing_currency": listing.currency}
        if amount.kind == NOW and amount.value < charging.price * (1.0 - self.config.price_tolerance):
            return listing_id, {**common, "kind": "below_listing_price"}
        if amount.kind == UNDER and charging.price >= amount.value:
            return listing_id, {**common, "kind": "listing_not_under_bound"}
        if amount.kind == WAS and self._never_charged(record, amount.value, claim.ts):
            highest = max(p.price for p in record.points if p.regular)
            return listing_id, {**common, "kind": "former_price_never_charged", "highest_regular_price": highest}
        return None

    def _never_charged(self, record: ListingRecord, was: float, ts: int) -> bool:
        """A stated former price above every regular price the listing charged, over a history we know whole."""
        regular = [p.price for p in record.points if p.regular and p.ts < ts]
        if not regular or not record.covers(ts, self._window_ms):
            return False
        return was > max(regular) * ROUNDING and not record.charged(was, ts, self._window_ms, self._min_hold_ms)

    def _signal(self, claim: PriceClaim, listing_id: str, finding: dict[str, Any], at: int) -> Signal:
        stated, listed = claim.amount.value, finding["listing_price"]
        what = {"below_listing_price": f"said {money(stated)} for an item that costs {money(listed)}",
                "listing_not_under_bound": f"said under {money(stated)} for an item that costs {money(listed)}",
                "former_price_never_charged": f"said it used to cost {money(stated)}, a price it never had"}
        gap = abs(stated - listed) / max(listed, 1e-9)
        return Signal(
            actor=claim.creator, violation_type="misleading_price_claim", detector=self.name,
            subject=f"{claim.live_id}:{listing_id}:{finding['kind']}", detected_at=at, window_start=claim.ts,
            window_end=at, confidence=clamp01(0.7 + gap),
            evidence={"live_id": claim.live_id, "said_in": claim.source, "said_at": claim.ts, "text": claim.text,
                      "stated_price": stated, "stated_currency": claim.amount.currency, **finding},
            explanation=(f"On LIVE {claim.live_id} you {what[finding['kind']]}; "
                         "state prices exactly as the listing charges them."),
        )


def _price_at(record: ListingRecord, ts: int) -> PricePoint | None:
    """The price point in force at `ts` (the newest at or before it)."""
    current = None
    for point in record.points:
        if point.ts > ts:
            break
        current = point
    return current


def example() -> list[Signal]:
    """A LIVE for shop S1 says "$9" for the $9.99 ceramic vase, and "under $10" (true) for it."""
    det = MisleadingPriceClaim(msgspec.convert(_shipped_table(), MisleadingPriceClaimConfig))
    states: dict[str, Any] = {}
    live = dict(live_id="V1", creator_id="C1")
    events = [
        ListingCreated(event_id="l1", ts=0, seller_id="S1", listing_id="L1", title="Ceramic Vase - Sage",
                       category="home", price=9.99, currency="USD", brand=None, original_price=None, image_hash=None),
        LiveStarted(event_id="s", ts=60_000, seller_id="S1", title="Home finds", **live),
        LiveTranscript(event_id="t1", ts=120_000, text="this ceramic vase is only $9 today", **live),
        LiveTranscript(event_id="t2", ts=180_000, text="the sage ceramic vase, under $10!", **live),
    ]
    for event in events:
        outputs = [event]
        while outputs:
            item = outputs.pop(0)
            item = item.item if type(item) is Forward else item
            key = det.entity(item)
            state, out = det.on_event(states.get(key), item)
            states[key] = state
            outputs += [o for o in out if type(o) is Forward]
    return det.on_wake(states["S1"], 10**9)[1]


def _shipped_table() -> dict:
    import tomllib
    from pathlib import Path

    with open(Path(__file__).resolve().parents[1] / "config" / "shopguard.toml", "rb") as f:
        return tomllib.load(f)["detectors"]["misleading_price_claim"]
