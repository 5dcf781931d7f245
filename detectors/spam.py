"""Listing spam: a burst of duplicate or near-duplicate listings from one seller.

`ListingSpam` finds the same main image, or titles that differ only by
numbers, emoji, punctuation or word order, `min_listings` times within
`window_seconds`. Two or three similar listings over a day (a restock, colour
variants with their own photos) stay clean.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import msgspec

from detectors.base import CoolDown, Signal, clamp01
from detectors.registry import register
from detectors.text import title_signature
from pipeline.contract.events import ListingCreated


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


@register
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
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "listing_spam"
    Config: ClassVar[type] = ListingSpamConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
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
