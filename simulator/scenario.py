"""What every scenario (abuse or hard negative) is made of, and the helpers they share.

A `Plan` is decided when the cast is built: the labels or hard-negative
entries it stands for, and the scripts that act it out on the timeline.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from simulator.live import LiveSpec, live_id_for, stats_ticks
from simulator.market import Market
from simulator.population import Creator, Listing, Population, Seller, Window
from simulator.price_talk import is_nameable, line_about
from simulator.timeline import MINUTE, Script


@dataclass(frozen=True)
class Label:
    actor: str
    violation_type: str
    evidence_ts: int
    variant: str = ""  # the tactic's variant (not in labels.jsonl: see simulator.label_variants)

    def as_dict(self) -> dict:
        return {"actor": self.actor, "violation_type": self.violation_type, "evidence_ts": self.evidence_ts}


@dataclass(frozen=True)
class HardNegative:
    actor: str
    scenario: str

    def as_dict(self) -> dict:
        return {"actor": self.actor, "scenario": self.scenario}


@dataclass
class Plan:
    """What one scenario puts on the timeline, and what it means."""

    labels: list[Label] = field(default_factory=list)
    hard_negatives: list[HardNegative] = field(default_factory=list)
    scripts: list[tuple[int, Callable[[Market], Script]]] = field(default_factory=list)

    def launch(self, m: Market) -> None:
        for at, make in self.scripts:
            m.tl.spawn(make(m), at=at)


class HonestVolunteers:
    """Hands out honest actors for hard-negative scenarios, each at most once while any are left."""

    def __init__(self, pop: Population, rng: random.Random) -> None:
        self._rng = rng
        self._sellers = [s for s in pop.honest_sellers if not s.premium]
        self._creators = list(pop.honest_creators)
        rng.shuffle(self._sellers)
        rng.shuffle(self._creators)
        self._all_sellers, self._all_creators = list(self._sellers), list(self._creators)

    def seller(self) -> Seller:
        return self._sellers.pop() if self._sellers else self._rng.choice(self._all_sellers)

    def creator(self) -> Creator:
        return self._creators.pop() if self._creators else self._rng.choice(self._all_creators)


def spread(rng: random.Random, start: int, span: int, n: int) -> list[int]:
    """`n` sorted times in [start, start + span], the first exactly at `start`."""
    return [start] + sorted(start + rng.randint(1, max(1, span)) for _ in range(n - 1))


def within(times: list[int], window: Window) -> list[int]:
    """`times` (the first is the earliest) squeezed towards the first so that all are before the abuse
    window's end: a short stream gets the same sequence, faster.

    >>> within([0, 10, 30], Window(0, 25)), within([0, 10, 30], Window(0, 10_000))
    ([0, 7, 22], [0, 10, 30])
    """
    last = max(times)
    if last <= window.abuse_end or last == times[0]:
        return times
    factor = max(0.0, window.abuse_end - 1 - times[0]) / (last - times[0])
    return [times[0] + int((t - times[0]) * factor) for t in times]


def paced_times(rng: random.Random, start: int, n: int, gap_minutes: tuple[int, int]) -> list[int]:
    """`n` times from `start`, one gap of `gap_minutes` apart after another."""
    times = [start]
    for _ in range(n - 1):
        times.append(times[-1] + rng.randint(*gap_minutes) * MINUTE)
    return times


def every(times: list[int], act: Callable[[Market, int], None]) -> Callable[[Market], Script]:
    """A plan script that does `act(market, k)` at the k-th of `times`."""

    def script(m: Market) -> Script:
        for k, t in enumerate(times):
            yield t
            act(m, k)

    return script


def take_over_listing(seller: Seller, rng: random.Random) -> Listing | None:
    """One of the seller's ordinary listings for a scenario to take over (upkeep leaves it alone then)."""
    own = [listing for listing in seller.listings if not listing.reserved]
    if not own:
        return None
    listing = rng.choice(own)
    listing.reserved = True
    return listing


def planned_live(pop: Population, creator: Creator, rng: random.Random, minutes: tuple[int, int]) -> LiveSpec:
    """A LIVE of `creator` inside the abuse window, booked so its honest schedule avoids it."""
    window = pop.window
    duration = window.fit(rng.randint(*minutes) * MINUTE)
    start = window.pick_start(rng, duration)
    creator.planned.append((start, start + duration))
    return LiveSpec(live_id=live_id_for(pop.seed, creator.creator_id, start), creator=creator, start=start,
                    end=start + duration, peak=creator.peak_viewers * rng.lognormvariate(0.0, 0.35))


def times_in_live(pop: Population, spec: LiveSpec, rng: random.Random, n: int) -> list[int]:
    """`n` times in distinct stats intervals of the LIVE, after its first few minutes."""
    ticks = stats_ticks(pop.seed, spec.live_id, spec.start, spec.end)
    earliest = min(18, len(ticks) // 3)
    chosen = sorted(rng.sample(range(earliest, len(ticks)), min(n, len(ticks) - earliest)))
    return [ticks[k] - rng.randint(500, 7_000) for k in chosen]


def is_blatant(rng: random.Random) -> bool:
    return rng.random() < 0.45


def shop_for(pop: Population, creator: Creator) -> Seller:
    """The shop the creator's LIVEs sell for (a creator without one opens its own)."""
    if creator.shop is None:
        creator.shop = pop.add_seller(extra=creator.extra)
    return creator.shop


def everyday_listing(m: Market, seller: Seller, rng: random.Random, *, nameable: bool = False) -> Listing:
    """One of the seller's in-stock everyday listings, not on sale, taken over for a scenario (a new one
    is published when there is none). `nameable`: one whose title words no other title of the shop has
    all of, so a host can name it."""
    own = [lst for lst in seller.listings
           if not lst.reserved and lst.original_price is None and lst.stock > 0 and lst.price >= 2]
    if nameable:
        own = [lst for lst in own if is_nameable(lst, seller.listings)]
    listing = rng.choice(own) if own else m.publish(seller, m.ordinary_listing(seller, rng))
    listing.reserved = True
    return listing


class ListingTalk:
    """A host talking about one listing of the LIVE's shop; the listing is picked when the first line is said.

    `say(kind, m)` is one line of that kind (`simulator.price_talk.line_about`). `was` is the
    former price a "real_was" line states; a scenario that lowers the price sets it.
    """

    def __init__(self, shop: Seller, rng: random.Random, *, share: tuple[float, float] = (0.5, 0.8),
                 was_factor: tuple[float, float] = (1.5, 3.0)) -> None:
        self.shop, self.rng = shop, rng
        self.share, self.was_factor = share, was_factor
        self.listing: Listing | None = None
        self.was: float | None = None

    def pick(self, m: Market) -> Listing:
        if self.listing is None:
            self.listing = everyday_listing(m, self.shop, self.rng, nameable=True)
        return self.listing

    def say(self, kind: str, m: Market) -> str:
        listing = self.pick(m)
        was = self.was
        if kind == "invented_was_price":
            was = m.tag(listing.highest_price * self.rng.uniform(*self.was_factor))
        return line_about(m.world, kind, listing, self.shop.listings, self.rng, was=was,
                          share=self.rng.uniform(*self.share))


def order_burst(m: Market, seller: Seller, listing: Listing, times: list[int], rng: random.Random) -> Script:
    """Orders of `listing` at `times` from distinct, long-standing buyers (real demand)."""
    shoppers = rng.sample(m.buyers.independent, min(len(times), len(m.buyers.independent)))
    listing.stock += len(times)
    for t, buyer in zip(times, shoppers, strict=False):
        yield t
        if listing.active:
            m.place_order(t, seller, listing, buyer, rng)
