"""Order detectors: fake orders placed to inflate a seller's sales or ranking.

`OrderBrushing` looks for a *ring*: orders from new buyer accounts that are
tied to each other by a shared device, payment or shipping-address hash.
Real buyers do not share those with strangers; at most a household shares an
address, a laptop or a card, which makes a pair or three, not a ring of new
accounts ordering from the same shop within hours.

Brushers also buy aged accounts, so a ring of accounts of any age counts
too, when more accounts than a household are tied by devices and cards
alone: an address is no tie between old accounts (a building's mailroom, an
office, a parcel locker receives strangers' parcels), a phone or a card
shared by more accounts than a household is.

The seller's own order flow is the baseline: an hourly, bias-corrected
exponential average of its order rate, its share of new-account buyers and
its rate of "linked" orders (ones that shared an identifier with another
buyer's when they arrived, whatever the accounts' ages). A ring must stand
out from that rate, so a shop whose buyers routinely share identifiers (a
campus, a family business) needs a bigger ring than a shop where it never
happens. Orders of a ring already flagged are kept out of the baseline
(score first, then learn, and never learn from what was flagged). A genuine
flash sale (many orders from old accounts with their own devices and cards)
has no ring and stays clean however much it lifts the rate.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from statistics import median
from typing import ClassVar

import msgspec

from detectors.registry import register
from detectors.base import CoolDown, Signal, clamp01
from pipeline.contract.events import OrderPlaced, OrderRefunded

HOUR_MS = 3_600_000


class OrderBrushingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of `OrderBrushing` (table `[detectors.order_brushing]`).

    Parameters
    ----------
    window_seconds
        How far back orders are linked into rings (event time).
    new_account_days
        A buyer account at most this many days old is new.
    min_buyers
        Distinct buyer accounts a ring needs.
    min_orders
        Orders a ring needs.
    min_new_account_share
        Share of the ring's buyers that must be new accounts.
    min_buyers_any_age
        Distinct buyer accounts a ring needs when its buyers are not mostly
        new, counted through shared devices and cards only.
    linked_burst_ratio
        A ring must hold at least this many times the linked orders the
        seller normally sees in one window.
    baseline_half_life_hours
        Half-life of the seller's learned hourly rates.
    max_window_orders
        Orders one seller keeps in its window at most (the oldest go first).
    max_ring_orders
        Orders a ring search visits at most (bounds the work per order).
    cooldown_seconds
        One violation per seller within this period.
    """

    window_seconds: float
    new_account_days: int
    min_buyers: int
    min_orders: int
    min_new_account_share: float
    min_buyers_any_age: int
    linked_burst_ratio: float
    baseline_half_life_hours: float
    max_window_orders: int
    max_ring_orders: int
    cooldown_seconds: float


@dataclass(slots=True)
class _Order:
    ts: int
    order_id: str
    buyer_id: str
    listing_id: str
    amount: float
    new_account: bool
    identifiers: tuple[str, ...]  # "device:…", "payment:…", "address:…" (nulls left out)
    refunded: bool = False
    flagged: bool = False  # part of a ring already reported


@dataclass(slots=True)
class HourlyRate:
    """A bias-corrected exponential average of per-hour counts, folded when an hour ends.

    >>> r = HourlyRate()
    >>> for hour, n in enumerate([4, 6, 5]):
    ...     r.add(hour * HOUR_MS, n, decay=0.5)
    >>> r.add(3 * HOUR_MS, 0, decay=0.5)  # closes hour 2
    >>> round(r.per_hour(), 2), r.hours
    (5.14, 3)
    """

    bucket_start: int | None = None
    bucket: float = 0.0
    weighted: float = 0.0
    weight: float = 0.0
    hours: int = 0  # completed hours learned

    def add(self, ts: int, count: float, decay: float) -> None:
        hour = ts - ts % HOUR_MS
        if self.bucket_start is None:
            self.bucket_start = hour
        elif hour > self.bucket_start:
            self._close(hour, decay)
        self.bucket += count  # a late order from a closed hour counts in the open one

    def _close(self, hour: int, decay: float) -> None:
        elapsed = (hour - self.bucket_start) // HOUR_MS
        self._fold(self.bucket, decay)
        # Empty hours in between are zeros; past ~2 half-lives they change nothing.
        for _ in range(min(elapsed - 1, 48)):
            self._fold(0.0, decay)
        self.bucket_start, self.bucket = hour, 0.0

    def _fold(self, count: float, decay: float) -> None:
        self.weighted = decay * self.weighted + (1 - decay) * count
        self.weight = decay * self.weight + (1 - decay)
        self.hours += 1

    def per_hour(self) -> float:
        return self.weighted / self.weight if self.weight else 0.0


@dataclass(slots=True)
class SellerOrders:
    """One seller's recent orders, indexed by identifier, and its learned order flow."""

    actor: str
    # order_id -> order, arrival order; OrderedDict so dropping the oldest is O(1)
    orders: OrderedDict[str, _Order] = field(default_factory=OrderedDict)
    by_identifier: dict[str, dict[str, None]] = field(default_factory=dict)  # identifier -> order ids
    newest: int = -(2**62)
    orders_rate: HourlyRate = field(default_factory=HourlyRate)
    new_account_rate: HourlyRate = field(default_factory=HourlyRate)
    linked_rate: HourlyRate = field(default_factory=HourlyRate)
    log_amount: float | None = None  # exponential average of log(amount): the seller's typical order
    cooldown: CoolDown = field(default_factory=lambda: CoolDown(0))


@dataclass(slots=True)
class _Ring:
    orders: list[_Order]
    buyers: set[str]
    new_buyers: set[str]
    shared: dict[str, tuple[int, int]]  # identifier -> (orders, distinct buyers), shared ones only
    ties: tuple[str, ...]  # the identifier kinds it was linked through


# What ties buyer accounts into a ring: any shared identifier between new
# accounts; between accounts of any age, only what one person holds.
ANY_TIE = ("device", "payment", "address")
PERSONAL_TIE = ("device", "payment")


@register
class OrderBrushing:
    """Bursts of orders from new buyer accounts that share devices, payment or addresses.

    Examples
    --------
    >>> cfg = OrderBrushingConfig(window_seconds=10800, new_account_days=30, min_buyers=4, min_orders=4,
    ...     min_new_account_share=0.75, min_buyers_any_age=5, linked_burst_ratio=3.0,
    ...     baseline_half_life_hours=6, max_window_orders=5000, max_ring_orders=500, cooldown_seconds=86400)
    >>> def order(i, seller, buyer, device, age):
    ...     return OrderPlaced(event_id=f"e{i}", ts=i * 60_000, order_id=f"O{i}", seller_id=seller,
    ...         buyer_id=buyer, listing_id="L1", amount=3.0, currency="USD", creator_id=None, live_id=None,
    ...         buyer_account_age_days=age, device_id=device, shipping_address_hash=f"a{i}",
    ...         payment_hash=f"p{i}")
    >>> def run(seller, age, devices):
    ...     det, state, found = OrderBrushing(cfg), None, []
    ...     for i, device in enumerate(devices):
    ...         state, signals = det.on_event(state, order(i, seller, f"B{i}", device, age))
    ...         found += signals
    ...     return [(s.actor, s.detected_at // 60_000, s.evidence["buyers"], s.evidence["linked_through"])
    ...             for s in found]

    New accounts: four on shared phones are a ring; old accounts need five.

    >>> run("S1", 2, ["d1", "d1", "d2", "d1", "d1"])
    [('seller:S1', 4, 4, ['device', 'payment', 'address'])]
    >>> run("S2", 400, ["d1", "d1", "d2", "d1", "d1", "d1"])
    [('seller:S2', 5, 5, ['device', 'payment'])]
    """

    name: ClassVar[str] = "order_brushing_v1"
    violation_type: ClassVar[str] = "order_brushing"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "order_brushing"
    Config: ClassVar[type] = OrderBrushingConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
    event_types: ClassVar[frozenset[type]] = frozenset({OrderPlaced, OrderRefunded})

    def __init__(self, config: OrderBrushingConfig) -> None:
        self.config = config
        self._window_ms = int(config.window_seconds * 1000)
        self._cooldown_ms = int(config.cooldown_seconds * 1000)
        self._decay = 0.5 ** (1.0 / config.baseline_half_life_hours)

    def entity(self, event) -> str:
        return event.seller_id

    def on_event(self, state: SellerOrders | None, event) -> tuple[SellerOrders | None, list[Signal]]:
        if state is None:
            state = SellerOrders(actor=f"seller:{event.seller_id}", cooldown=CoolDown(self._cooldown_ms))
        if isinstance(event, OrderRefunded):
            order = state.orders.get(event.order_id)
            if order is not None:
                order.refunded = True
            return state, []
        return state, self._on_order(state, event)

    # -- window -------------------------------------------------------------

    def _on_order(self, state: SellerOrders, event: OrderPlaced) -> list[Signal]:
        if event.order_id in state.orders:
            return []  # the same order delivered again under another event id
        state.newest = max(state.newest, event.ts)
        self._expire(state)
        if event.ts < state.newest - self._window_ms:
            return []  # older than the window: nothing to link it to
        order = self._admit(state, event)
        linked = self._shares_with_another_buyer(state, order)
        signals = self._judge(state, order) if linked else []
        self._learn(state, order, linked)
        return signals

    def _admit(self, state: SellerOrders, event: OrderPlaced) -> _Order:
        identifiers = []
        if event.device_id:
            identifiers.append("device:" + event.device_id)
        if event.payment_hash:
            identifiers.append("payment:" + event.payment_hash)
        if event.shipping_address_hash:
            identifiers.append("address:" + event.shipping_address_hash)
        order = _Order(event.ts, event.order_id, event.buyer_id, event.listing_id, event.amount,
                       event.buyer_account_age_days <= self.config.new_account_days, tuple(identifiers))
        state.orders[order.order_id] = order
        for identifier in identifiers:
            state.by_identifier.setdefault(identifier, {})[order.order_id] = None
        if len(state.orders) > self.config.max_window_orders:
            self._drop(state, next(iter(state.orders)))
        return order

    def _expire(self, state: SellerOrders) -> None:
        horizon = state.newest - self._window_ms
        orders = state.orders
        # Arrival order is event order give or take the allowed lateness: a late
        # order lingers at most that much longer, and ring searches check ts.
        while orders:
            oldest = next(iter(orders))
            if orders[oldest].ts >= horizon:
                return
            self._drop(state, oldest)

    def _drop(self, state: SellerOrders, order_id: str) -> None:
        order = state.orders.pop(order_id)
        for identifier in order.identifiers:
            users = state.by_identifier.get(identifier)
            if users is not None:
                users.pop(order_id, None)
                if not users:
                    del state.by_identifier[identifier]

    def _shares_with_another_buyer(self, state: SellerOrders, order: _Order) -> bool:
        orders = state.orders
        return any(
            orders[oid].buyer_id != order.buyer_id
            for identifier in order.identifiers for oid in state.by_identifier[identifier]
        )

    # -- rings ----------------------------------------------------------------

    def _ring(self, state: SellerOrders, start: _Order, ties: tuple[str, ...]) -> _Ring:
        """Orders in the window connected to `start` through shared identifiers of the kinds `ties`."""
        horizon = state.newest - self._window_ms
        seen = {start.order_id: start}
        queue, visited_ids = [start], set()
        while queue and len(seen) < self.config.max_ring_orders:
            order = queue.pop()
            for identifier in order.identifiers:
                if identifier in visited_ids or identifier.split(":", 1)[0] not in ties:
                    continue
                visited_ids.add(identifier)
                for oid in state.by_identifier.get(identifier, ()):
                    other = state.orders[oid]
                    if oid not in seen and other.ts >= horizon:
                        seen[oid] = other
                        queue.append(other)
        orders = sorted(seen.values(), key=lambda o: (o.ts, o.order_id))
        users: dict[str, set[str]] = {}
        uses: Counter[str] = Counter()
        for o in orders:
            for identifier in o.identifiers:
                users.setdefault(identifier, set()).add(o.buyer_id)
                uses[identifier] += 1
        shared = {i: (uses[i], len(b)) for i, b in users.items() if len(b) > 1}
        return _Ring(orders, {o.buyer_id for o in orders}, {o.buyer_id for o in orders if o.new_account}, shared,
                     ties)

    def _judge(self, state: SellerOrders, order: _Order) -> list[Signal]:
        cfg = self.config
        last = state.cooldown.last.get("ring")
        if last is not None and order.ts - last < self._cooldown_ms:
            return []  # already reported: spare the ring search on every order of a long campaign
        ring = self._ring(state, order, ANY_TIE)
        if len(ring.buyers) < cfg.min_buyers or len(ring.new_buyers) < cfg.min_new_account_share * len(ring.buyers):
            # Not a ring of new accounts: accounts of any age, tied by devices and cards alone?
            ring = self._ring(state, order, PERSONAL_TIE)
            if len(ring.buyers) < cfg.min_buyers_any_age:
                return []
        expected_linked = state.linked_rate.per_hour() * self._window_ms / HOUR_MS
        if len(ring.orders) < cfg.min_orders or len(ring.orders) < cfg.linked_burst_ratio * expected_linked:
            return []
        if not state.cooldown.ready("ring", order.ts):
            return []
        for o in ring.orders:
            o.flagged = True
        return [self._signal(state, order, ring, expected_linked)]

    # -- baseline -----------------------------------------------------------------

    def _learn(self, state: SellerOrders, order: _Order, linked: bool) -> None:
        """Fold the order into the seller's rates, unless it belongs to a flagged ring."""
        decay = self._decay
        counted = not order.flagged
        state.orders_rate.add(order.ts, 1.0 if counted else 0.0, decay)
        state.new_account_rate.add(order.ts, 1.0 if counted and order.new_account else 0.0, decay)
        state.linked_rate.add(order.ts, 1.0 if counted and linked else 0.0, decay)
        if counted:
            log_amount = math.log(order.amount)
            state.log_amount = log_amount if state.log_amount is None else (
                0.95 * state.log_amount + 0.05 * log_amount)

    def _signal(self, state: SellerOrders, order: _Order, ring: _Ring, expected_linked: float) -> Signal:
        cfg = self.config
        orders = ring.orders
        listings = Counter(o.listing_id for o in orders)
        top_two = sum(n for _, n in listings.most_common(2)) / len(orders)
        amounts = [o.amount for o in orders]
        typical = math.exp(state.log_amount) if state.log_amount is not None else None
        refunds = sum(o.refunded for o in orders)
        new_share = len(ring.new_buyers) / len(ring.buyers)
        shared = sorted(ring.shared.items(), key=lambda kv: (-kv[1][0], kv[0]))
        rate_hours = state.orders_rate.hours
        base_rate = state.orders_rate.per_hour()
        base_new_share = state.new_account_rate.per_hour() / base_rate if base_rate else None
        window_orders = [o for o in state.orders.values() if o.ts >= state.newest - self._window_ms]
        small = typical is not None and median(amounts) < typical
        # Stronger with more accounts, concentration on one or two listings, small amounts and refunds.
        confidence = clamp01(
            0.6 + 0.04 * (len(ring.buyers) - cfg.min_buyers) + 0.1 * max(0.0, new_share - cfg.min_new_account_share)
            + (0.1 if top_two >= 0.8 else 0.0) + (0.05 if small else 0.0) + min(0.1, 0.05 * refunds))
        return Signal(
            actor=state.actor,
            violation_type=self.violation_type,
            detector=self.name,
            subject="ring",
            detected_at=order.ts,
            window_start=orders[0].ts,
            window_end=order.ts,
            confidence=min(confidence, 0.99),
            evidence={
                "order_ids": [o.order_id for o in orders[:50]],
                "orders": len(orders),
                "buyers": len(ring.buyers),
                "new_account_buyers": len(ring.new_buyers),
                "new_account_share": round(new_share, 2),
                "linked_through": list(ring.ties),
                "shared_identifiers": [
                    {"kind": i.split(":", 1)[0], "hash": i.split(":", 1)[1], "orders": n, "buyers": b}
                    for i, (n, b) in shared[:10]
                ],
                "listings": dict(listings.most_common(5)),
                "top_two_listings_share": round(top_two, 2),
                "amounts": amounts[:50],
                "median_amount": round(median(amounts), 2),
                "seller_typical_amount": round(typical, 2) if typical is not None else None,
                "refunds_so_far": refunds,
                "baseline_hours": rate_hours,
                "baseline_orders_per_hour": round(base_rate, 2),
                "baseline_new_account_share": round(base_new_share, 2) if base_new_share is not None else None,
                "baseline_linked_orders_per_window": round(expected_linked, 2),
                "window_orders": len(window_orders),
                "window_new_account_share": round(
                    sum(o.new_account for o in window_orders) / len(window_orders), 2),
                "thresholds": {"min_buyers": cfg.min_buyers, "min_orders": cfg.min_orders,
                               "min_new_account_share": cfg.min_new_account_share,
                               "min_buyers_any_age": cfg.min_buyers_any_age,
                               "new_account_days": cfg.new_account_days,
                               "linked_burst_ratio": cfg.linked_burst_ratio,
                               "window_seconds": cfg.window_seconds},
            },
            explanation=(
                f"{len(orders)} orders in {_duration(order.ts - orders[0].ts)} came from {_accounts(ring)} "
                f"that share the same {_details(ring.ties)}, which is how fake orders placed "
                f"to boost a shop's sales look."
            ),
        )


def _accounts(ring: _Ring) -> str:
    """'5 new buyer accounts', '6 buyer accounts, 5 of them new' or '6 buyer accounts, none of them new'."""
    if len(ring.new_buyers) == len(ring.buyers):
        return f"{len(ring.buyers)} new buyer accounts"
    return f"{len(ring.buyers)} buyer accounts, {len(ring.new_buyers) or 'none'} of them new"


def _details(ties: tuple[str, ...]) -> str:
    """What the ring's accounts share, in words: 'device or payment details'.

    >>> _details(ANY_TIE)
    'device, payment or shipping details'
    """
    words = ["shipping" if kind == "address" else kind for kind in ties]
    return (", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]) + " details"


def _duration(ms: int) -> str:
    """A short human span: '40 minutes', '2.5 hours'."""
    minutes = max(1, round(ms / 60_000))
    return f"{minutes} minutes" if minutes < 120 else f"{minutes / 60:.1f} hours"
