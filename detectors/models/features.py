"""Per-actor behaviour features for the online models, computed in one place.

Rules catch what the policy team already knows; the anomaly model
(`anomaly.py`) looks for what they do not, and it needs each seller
and creator described by a few numbers that mean the same thing for a small
shop and a big one. `ActorFeatures` keeps, per actor, rolling event-time
statistics of everything the actor does and turns them into a `FeatureUpdate`
when something that matters changes:

sellers (orders, refunds, listings, sign-ins)
    `orders_per_hour`, `order_growth` (last `burst_seconds` vs the seller's
    own long-run rate), `new_buyer_share` (orders from accounts at most
    `new_account_days` old), `devices_per_order` and `payments_per_order`
    (distinct buyer devices / payment hashes per order), `refund_rate`,
    `listings_per_hour`, `image_reuse_share` (new listings reusing an image
    the seller already used), `new_category_listings` (listings in a category
    the seller never used before), `price_changes_per_listing`,
    `max_price_raise` (largest price step up of one listing),
    `max_price_over_usual` and `max_was_over_usual` (a price, or a "was"
    price, against the seller's own usual price level);
creators (LIVE stats and comments, sign-ins)
    `likes_per_viewer`, `comments_per_viewer`, `shares_per_viewer`,
    `follows_per_viewer` (per viewer per stats interval), `commenters_per_viewer`
    (distinct commenters in `commenter_window_seconds` per viewer),
    `viewer_jump` (viewers now vs this LIVE's recent level), `like_jump`,
    `comment_jump`, `follow_jump` (observed now vs what the creator's own
    per-viewer rates predict for the viewers now);
both
    `login_novelty` (the largest share, over the recent window, of a sign-in's
    device, network (IP prefix) and country that the actor never used: 0 all
    known, 1/3 a new phone at home, 1 all new; an actor's first sign-in is how
    it is learned), `payout_changes`.

"Now" is the last `recent_seconds` (counts, shares, maxima) or the last
`live_recent_intervals` stats intervals; baselines are exponentially weighted
in event time (a LIVE's baselines robustly: bought engagement must not become
the new normal within minutes). Shares are smoothed by `share_prior_count`.
Values are plain numbers a reviewer can read (a ratio of 4.0 means four
times); `FEATURE_KIND` says how a model should scale each one and `RISK_SIDE`
which side of it is a risk.

State is explicit, picklable and bounded: every per-actor collection is
capped (`max_*` keys) or expires in event time, and `ActorFeatureShard` evicts
actors idle for `idle_eviction_hours`. `ActorFeatures` has the detectors'
shape (`entity(event)`, `on_event(state, event) -> (state, update | None)`);
`ActorFeatureShard` hosts it with dedupe, lateness and eviction as one keyed
dataflow step (key: `feature_key`, the actor's shard).

Work per event is O(1): counters live in `recent_seconds / bucket_seconds`
event-time buckets; distinct devices/payments/commenters are dicts kept in
last-seen order so expiry pops from the front. The models score updates, not
events: an actor rescores at most once per `rescore_seconds` after a notable
event (an order from a new account or a device or card already seen in the
window, a new listing), once per `quiet_rescore_seconds` after ordinary
orders and refunds, once per `live_rescore_seconds` of LIVE stats; sign-ins,
payout changes and listing updates always rescore; comments never do. On the
simulator that is one update per ~10 events.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import ClassVar

import msgspec

from detectors.base import HOUR_MS, forget_before, remember_recent
from detectors.models.config import ActorFeaturesConfig
from pipeline.contract.events import (
    AccountLogin,
    Event,
    ListingCreated,
    ListingRemoved,
    ListingUpdated,
    LiveComment,
    LiveEnded,
    LiveStarted,
    LiveStats,
    LiveTranscript,
    OrderPlaced,
    OrderRefunded,
    PayoutChanged,
)

SELLER_FEATURES = (
    "orders_per_hour", "order_growth", "new_buyer_share", "devices_per_order", "payments_per_order",
    "refund_rate", "listings_per_hour", "image_reuse_share", "new_category_listings",
    "price_changes_per_listing", "max_price_raise", "max_price_over_usual", "max_was_over_usual",
    "login_novelty", "payout_changes",
)
CREATOR_FEATURES = (
    "likes_per_viewer", "comments_per_viewer", "shares_per_viewer", "follows_per_viewer",
    "commenters_per_viewer", "viewer_jump", "like_jump", "comment_jump", "follow_jump",
    "login_novelty", "payout_changes",
)
FEATURES_OF_ROLE = {"seller": SELLER_FEATURES, "creator": CREATOR_FEATURES}

# How a model should put each feature on a common scale: "ratio" (> 0, 1 is
# usual: take the log), "count" (>= 0, heavy-tailed: log1p), "share" (0..1 as is).
FEATURE_KIND: dict[str, str] = {
    "orders_per_hour": "count", "order_growth": "ratio", "new_buyer_share": "share",
    "devices_per_order": "share", "payments_per_order": "share", "refund_rate": "share",
    "listings_per_hour": "count", "image_reuse_share": "share", "new_category_listings": "count",
    "price_changes_per_listing": "count", "max_price_raise": "ratio", "max_price_over_usual": "ratio",
    "max_was_over_usual": "ratio", "login_novelty": "share", "payout_changes": "count",
    "likes_per_viewer": "count", "comments_per_viewer": "count", "shares_per_viewer": "count",
    "follows_per_viewer": "count", "commenters_per_viewer": "count", "viewer_jump": "ratio",
    "like_jump": "ratio", "comment_jump": "ratio", "follow_jump": "ratio",
}

# Which side of a feature is a risk: +1 only unusually high values, -1 only
# unusually low ones, 0 both. A seller whose orders slow down, or a price cut,
# is not suspicious; fake engagement pushes one metric up while the ratios of
# everything real go down.
RISK_SIDE: dict[str, int] = {
    "orders_per_hour": 1, "order_growth": 1, "new_buyer_share": 1, "devices_per_order": -1,
    "payments_per_order": -1, "refund_rate": 1, "listings_per_hour": 1, "image_reuse_share": 1,
    "new_category_listings": 1, "price_changes_per_listing": 1, "max_price_raise": 1,
    "max_price_over_usual": 1, "max_was_over_usual": 1, "login_novelty": 1, "payout_changes": 1,
    "likes_per_viewer": 0, "comments_per_viewer": -1, "shares_per_viewer": -1, "follows_per_viewer": 0,
    "commenters_per_viewer": -1, "viewer_jump": 1, "like_jump": 0, "comment_jump": -1, "follow_jump": 1,
}


class FeatureUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """An actor's features at event time `ts`, for the online models (internal, not a contract record).

    `features` holds only what is known for the actor (a creator's LIVE
    features appear after its first stats); a model fills the rest in.
    """

    actor: str
    role: str  # "seller" or "creator"
    ts: int
    trigger: str  # the event type that made this update
    features: dict[str, float]


# ---- small building blocks -------------------------------------------------------------

# Recent-bucket columns: sums first, then maxima (of logs, 0 = usual).
ORDERS, NEW_BUYER_ORDERS, LISTINGS, REUSED_IMAGES, NEW_CATEGORY, PRICE_CHANGES, PAYOUTS = range(7)
RAISE_LOG, PRICE_OVER_LOG, WAS_OVER_LOG, NOVELTY = range(7, 11)
_SUMS, _COLUMNS = 7, 11


@dataclass(slots=True)
class RecentBuckets:
    """Counts and maxima in fixed event-time buckets over the last `n` buckets.

    >>> b = RecentBuckets(width_ms=1000, n=3)
    >>> for ts, orders in ((500, 1), (1500, 1), (2500, 2)):
    ...     b.row(ts)[ORDERS] += orders
    >>> b.window(2500, last=1)[0][ORDERS], b.window(2500, last=1)[1], b.window(3500, last=1)[0][ORDERS]
    (4.0, 2.0, 3.0)
    """

    width_ms: int
    n: int
    buckets: dict[int, list[float]] = field(default_factory=dict)  # bucket index -> columns

    def row(self, ts: int) -> list[float]:
        """The columns of `ts`'s bucket (created, and buckets too old to matter dropped, on first use)."""
        index = ts // self.width_ms
        row = self.buckets.get(index)
        if row is None:
            row = self.buckets[index] = [0.0] * _COLUMNS
            oldest = index - self.n
            for old in [i for i in self.buckets if i <= oldest]:  # at most a few: the dict holds <= n + 1 rows
                del self.buckets[old]
        return row

    def window(self, now: int, last: int) -> tuple[list[float], float]:
        """One pass over the buckets up to `now`: column sums (maxima for the max columns)
        over all `n` buckets, and the sum of ORDERS over the `last` buckets."""
        newest = now // self.width_ms
        oldest, burst_oldest = newest - self.n, newest - last
        rows = [row for i, row in self.buckets.items() if oldest < i <= newest]
        if not rows:
            return [0.0] * _COLUMNS, 0.0
        columns = list(zip(*rows))
        burst = sum(row[ORDERS] for i, row in self.buckets.items() if burst_oldest < i <= newest)
        return [sum(c) for c in columns[:_SUMS]] + [max(c) for c in columns[_SUMS:]], burst


@dataclass(slots=True)
class DecayedRate:
    """An exponentially weighted event rate in event time: events per hour, recent ones weigh more.

    `amount` decays with the half-life; so does `span`, the time observed, so a
    young actor's rate is not diluted by time it did not exist.

    >>> r = DecayedRate(half_life_ms=3_600_000)
    >>> for minute in range(0, 120, 10):
    ...     r.add(minute * 60_000)
    >>> round(r.per_hour(120 * 60_000), 1)  # six an hour, the older ones weighing a little less
    5.7
    """

    half_life_ms: int
    amount: float = 0.0
    span_ms: float = 0.0
    ts: int | None = None

    def _advance(self, ts: int) -> None:
        if self.ts is None:
            self.ts = ts
            return
        dt = ts - self.ts
        if dt <= 0:
            return  # a late event counts at the current time
        decay = 0.5 ** (dt / self.half_life_ms)
        self.amount *= decay
        self.span_ms = self.span_ms * decay + self.half_life_ms / math.log(2) * (1.0 - decay)
        self.ts = ts

    def add(self, ts: int, amount: float = 1.0) -> None:
        self._advance(ts)
        self.amount += amount

    def total(self, ts: int) -> float:
        self._advance(ts)
        return self.amount

    def per_hour(self, ts: int) -> float:
        self._advance(ts)
        return self.amount / max(self.span_ms, HOUR_MS / 4) * HOUR_MS


# ---- per-actor state ---------------------------------------------------------------------


@dataclass(slots=True)
class OrderState:
    rate: DecayedRate  # long-run orders per hour
    refunds: DecayedRate  # long-run refunds (same half-life, so refunds / orders is a rate)
    # buyer device / payment -> last order ts; OrderedDict: forgetting the oldest is O(1)
    devices: OrderedDict[str, int] = field(default_factory=OrderedDict)
    payments: OrderedDict[str, int] = field(default_factory=OrderedDict)


@dataclass(slots=True)
class ListingState:
    # listing -> [last price, highest price seen], least recently touched first
    prices: dict[str, list[float]] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    # category -> [mean log price, prices seen]: the seller's usual level there, least recent first
    levels: dict[str, list[float]] = field(default_factory=dict)
    overall: list[float] = field(default_factory=lambda: [0.0, 0.0])  # the same over all categories
    listings_seen: int = 0


@dataclass(slots=True)
class LoginState:
    devices: dict[str, int] = field(default_factory=dict)  # device -> last sign-in ts, least recent first
    networks: dict[str, int] = field(default_factory=dict)  # IP prefix (first two octets or IPv6 groups)
    countries: dict[str, int] = field(default_factory=dict)
    logins: int = 0


@dataclass(slots=True)
class LiveState:
    """A creator's LIVE: its recent intervals and the creator's own per-viewer rates."""

    live_id: str | None = None
    intervals: deque = field(default_factory=deque)  # (ts, viewers, likes, comments, shares, follows), newest last
    live_intervals: int = 0  # stats intervals of the current LIVE
    viewer_level: float = 0.0  # this LIVE's recent viewers (exponentially weighted)
    # likes, comments and follows per viewer and interval (the creator's own rates, across its LIVEs)
    rates: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    rated_intervals: int = 0  # intervals behind `rates` (all LIVEs of the creator)
    commenters: OrderedDict[str, int] = field(default_factory=OrderedDict)  # O(1) forgetting of the oldest
    last: dict[str, float] = field(default_factory=dict)  # the LIVE features last computed


@dataclass(slots=True)
class ActorState:
    """What the feature step remembers about one actor."""

    actor: str
    role: str
    recent: RecentBuckets
    newest: int = -(2**62)
    last_emit: int = -(2**62)
    orders: OrderState | None = None
    listings: ListingState | None = None
    logins: LoginState | None = None
    live: LiveState | None = None


def _network(ip: str) -> str:
    """The network part of an address: a new phone at home keeps it, a stranger abroad does not.

    >>> _network("24.1.2.3"), _network("2001:db8:1:2::7")
    ('24.1', '2001:db8')
    """
    return ".".join(ip.split(".", 2)[:2]) if "." in ip else ":".join(ip.split(":", 2)[:2])


def _learn_level(level: list[float] | None, log_price: float) -> list[float]:
    """A running mean of log prices at first, then exponentially weighted (the last ~50 count)."""
    if level is None:
        return [log_price, 1.0]
    n = level[1] + 1.0
    return [level[0] + (log_price - level[0]) / min(n, 50.0), n]


# ---- the feature computer ------------------------------------------------------------------

# When an event makes its actor rescored.
ALWAYS, THROTTLED, LIVE, NEVER = "always", "throttled", "live", "never"
# What a folded event changed: nothing the features read (False), something (ORDINARY), something telling.
ORDINARY, NOTABLE = 1, 2


class ActorFeatures:
    """Rolling per-actor features; emits a `FeatureUpdate` when they should be rescored.

    Examples
    --------
    >>> from detectors.models.config import shipped_models_config
    >>> features = ActorFeatures(shipped_models_config().features)
    >>> def order(i, minute, device, age):
    ...     return OrderPlaced(event_id=f"o{i}", ts=minute * 60_000, order_id=f"O{i}", seller_id="S1",
    ...         buyer_id=f"B{i}", listing_id="L1", amount=5.0, currency="USD", creator_id=None, live_id=None,
    ...         buyer_account_age_days=age, device_id=device, shipping_address_hash=None, payment_hash=None)
    >>> state, updates = None, []
    >>> for i in range(20):  # a burst: 20 orders in 20 minutes from 2 devices of fresh accounts
    ...     state, update = features.on_event(state, order(i, i, f"d{i % 2}", 1))
    ...     updates += [update] if update else []
    >>> last = updates[-1].features  # one update a minute (rescore_seconds = 60)
    >>> len(updates), updates[-1].actor, last["orders_per_hour"], last["new_buyer_share"], last["devices_per_order"]
    (20, 'seller:S1', 20.0, 0.8, 0.28)
    """

    name: ClassVar[str] = "actor_features_v1"
    # What each event type does: fold it into the state, then maybe rescore.
    RESCORE: ClassVar[dict[type, str]] = {
        OrderPlaced: THROTTLED, OrderRefunded: THROTTLED, ListingCreated: THROTTLED,
        ListingUpdated: ALWAYS, ListingRemoved: NEVER, AccountLogin: ALWAYS, PayoutChanged: ALWAYS,
        LiveStats: LIVE, LiveComment: NEVER, LiveEnded: NEVER,
    }
    # The events it reads (the dataflow routes only these here): transcripts and
    # `live.started` carry nothing the features use.
    event_types: ClassVar[frozenset[type]] = frozenset(RESCORE)

    def __init__(self, config: ActorFeaturesConfig) -> None:
        self.config = config
        self._bucket_ms = int(config.bucket_seconds * 1000)
        self._recent_ms = int(config.recent_seconds * 1000)
        self._n_buckets = max(1, round(config.recent_seconds / config.bucket_seconds))
        self._burst_buckets = max(1, round(config.burst_seconds / config.bucket_seconds))
        self._per_hour = HOUR_MS / (self._n_buckets * self._bucket_ms)
        self._half_life_ms = int(config.baseline_half_life_hours * HOUR_MS)
        self._commenter_ms = int(config.commenter_window_seconds * 1000)
        self._rescore_ms = int(config.rescore_seconds * 1000)
        self._quiet_rescore_ms = int(config.quiet_rescore_seconds * 1000)
        self._live_rescore_ms = int(config.live_rescore_seconds * 1000)
        self._live_alpha = 1.0 - 0.5 ** (1.0 / config.live_baseline_half_life_intervals)
        self.idle_eviction_ms = int(config.idle_eviction_hours * HOUR_MS)
        self._fold = {
            OrderPlaced: self._on_order, OrderRefunded: self._on_refund, ListingCreated: self._on_listing,
            ListingUpdated: self._on_listing, ListingRemoved: self._on_removed, AccountLogin: self._on_login,
            PayoutChanged: self._on_payout, LiveComment: self._on_comment, LiveEnded: self._on_ended,
        }

    def entity(self, event: Event) -> str | None:
        return actor_key(event) if type(event) in self.RESCORE else None

    def on_event(self, state: ActorState | None, event: Event) -> tuple[ActorState | None, FeatureUpdate | None]:
        """Fold one event into the actor's state; return the state and an update if it is time to rescore."""
        rescore = self.RESCORE.get(type(event))
        if rescore is None:
            return state, None
        if state is None:
            actor = actor_key(event)
            state = ActorState(actor=actor, role=actor.split(":", 1)[0],
                               recent=RecentBuckets(self._bucket_ms, self._n_buckets))
        ts = event.ts
        newest = ts >= state.newest
        if newest:
            state.newest = ts
        if rescore is LIVE:
            due = newest and ts - state.last_emit >= self._live_rescore_ms
            if not self._on_stats(state, event, judge=due) or not due:
                return state, None
        else:
            change = self._fold[type(event)](state, event)
            if not change or not newest or rescore is NEVER:
                return state, None
            if rescore is THROTTLED and \
                    ts - state.last_emit < (self._rescore_ms if change is NOTABLE else self._quiet_rescore_ms):
                return state, None
        state.last_emit = ts
        return state, FeatureUpdate(actor=state.actor, role=state.role, ts=ts, trigger=event.type,
                                    features=self.features(state))

    # ---- folding events into state (each returns False, ORDINARY or NOTABLE: what it changed) ----------

    def _orders(self, state: ActorState) -> OrderState:
        if state.orders is None:
            hl = self._half_life_ms
            state.orders = OrderState(DecayedRate(hl), DecayedRate(hl))
        return state.orders

    def _live(self, state: ActorState) -> LiveState:
        if state.live is None:
            state.live = LiveState()
        return state.live

    def _on_order(self, state: ActorState, event: OrderPlaced) -> int:
        orders = self._orders(state)
        orders.rate.add(event.ts)
        row = state.recent.row(event.ts)
        row[ORDERS] += 1.0
        notable = event.buyer_account_age_days <= self.config.new_account_days
        if notable:
            row[NEW_BUYER_ORDERS] += 1.0
        limit = self.config.max_distinct
        # A missing device or payment hash is its own value: it links nobody.
        if not remember_recent(orders.devices, event.device_id or f"none:{event.order_id}", event.ts, limit):
            notable = True
        if not remember_recent(orders.payments, event.payment_hash or f"none:{event.order_id}", event.ts, limit):
            notable = True
        return NOTABLE if notable else ORDINARY

    def _on_refund(self, state: ActorState, event: OrderRefunded) -> int:
        self._orders(state).refunds.add(event.ts)
        return ORDINARY

    def _on_removed(self, state: ActorState, event: ListingRemoved) -> bool:
        if state.listings is not None:
            state.listings.prices.pop(event.listing_id, None)
        return True

    def _on_payout(self, state: ActorState, event: PayoutChanged) -> bool:
        state.recent.row(event.ts)[PAYOUTS] += 1.0
        return True

    def _on_comment(self, state: ActorState, event: LiveComment) -> bool:
        self.remember_commenter(state, event)
        return True

    def remember_commenter(self, state: ActorState, event: LiveComment) -> None:
        """A viewer's comment: remember who (hosts do not count)."""
        if not event.by_host:
            remember_recent(self._live(state).commenters, event.user_id, event.ts, self.config.max_distinct)

    def _on_ended(self, state: ActorState, event: LiveEnded) -> bool:
        live = self._live(state)
        if live.live_id == event.live_id:
            live.live_id, live.live_intervals, live.viewer_level = None, 0, 0.0
            live.intervals.clear()
        return True

    def _on_listing(self, state: ActorState, event: ListingCreated | ListingUpdated) -> bool:
        cfg = self.config
        if state.listings is None:
            state.listings = ListingState()
        lst, ts = state.listings, event.ts
        row = state.recent.row(ts)
        known = lst.prices.pop(event.listing_id, None)
        previous, highest = (known[0], known[1]) if known is not None else (None, None)
        lst.prices[event.listing_id] = [event.price, max(event.price, highest or 0.0)]
        if len(lst.prices) > cfg.max_listings:
            del lst.prices[next(iter(lst.prices))]
        level = lst.levels.pop(event.category, None)
        usual = level if level is not None and level[1] >= 3 else lst.overall if lst.overall[1] >= 3 else None
        log_price = math.log(event.price)
        if usual is not None:  # against the usual level before this price joins it
            row[PRICE_OVER_LOG] = max(row[PRICE_OVER_LOG], log_price - usual[0])
        if event.original_price is not None and event.original_price > event.price:
            # A "was" price against what this listing really cost, or else what the seller usually charges.
            reference = math.log(highest) if highest is not None else usual[0] if usual is not None else None
            if reference is not None:
                row[WAS_OVER_LOG] = max(row[WAS_OVER_LOG], math.log(event.original_price) - reference)
        changed = True
        if type(event) is ListingCreated:
            row[LISTINGS] += 1.0
            if event.image_hash is not None and not remember_recent(lst.images, event.image_hash, ts, cfg.max_images):
                row[REUSED_IMAGES] += 1.0
            if level is None and lst.listings_seen >= cfg.min_known_listings:
                row[NEW_CATEGORY] += 1.0
            lst.listings_seen += 1
        elif previous is not None and previous != event.price:
            row[PRICE_CHANGES] += 1.0
            row[RAISE_LOG] = max(row[RAISE_LOG], math.log(event.price / previous))
        elif previous is not None and event.original_price is None:
            changed = False  # a restock or a title edit: nothing the features read changed
        lst.levels[event.category] = _learn_level(level, log_price) if changed else level or [log_price, 1.0]
        if len(lst.levels) > cfg.max_categories:
            del lst.levels[next(iter(lst.levels))]
        if changed:
            lst.overall = _learn_level(lst.overall, log_price)
        return NOTABLE if changed else False

    def _on_login(self, state: ActorState, event: AccountLogin) -> bool:
        cfg = self.config
        if state.logins is None:
            state.logins = LoginState()
        logins, ts = state.logins, event.ts
        new = (remember_recent(logins.devices, event.device_id, ts, cfg.max_login_devices)
               + remember_recent(logins.networks, _network(event.ip), ts, cfg.max_login_devices)
               + remember_recent(logins.countries, event.country, ts, cfg.max_login_countries))
        if logins.logins > 0:  # the first sign-in is how the actor is learned
            row = state.recent.row(ts)
            row[NOVELTY] = max(row[NOVELTY], new / 3.0)
        logins.logins += 1
        return True

    def _on_stats(self, state: ActorState, event: LiveStats, judge: bool) -> bool:
        live = self._live(state)
        if live.live_id != event.live_id:
            live.live_id, live.live_intervals, live.viewer_level = event.live_id, 0, 0.0
            live.intervals.clear()
        elif live.intervals and event.ts <= live.intervals[-1][0]:
            return False  # a late interval: the LIVE has moved on
        current = (event.ts, event.viewers, event.likes, event.comments, event.shares, event.new_followers)
        if judge:
            live.last = self._live_features(live, current)
        # Learn this interval into the baselines only after judging it, and robustly
        # (`live_baseline_max_step`): bought engagement must not become the new normal.
        live.intervals.append(current)
        if len(live.intervals) > self.config.live_recent_intervals:
            live.intervals.popleft()
        a, step = self._live_alpha, self.config.live_baseline_max_step
        settled = live.live_intervals >= self.config.min_live_intervals
        viewers = event.viewers
        if live.live_intervals == 0:
            live.viewer_level = float(viewers)
        else:
            level = live.viewer_level
            seen = min(max(viewers, level / step), level * step) if settled else viewers
            live.viewer_level = level + a * (seen - level)
        live.live_intervals += 1
        if viewers > 0:
            robust = live.rated_intervals >= self.config.min_live_intervals
            weight = max(a, 1.0 / (live.rated_intervals + 1))
            rates, per_viewer = live.rates, 1.0 / viewers
            for k, count in ((0, event.likes), (1, event.comments), (2, event.new_followers)):
                seen, rate = count * per_viewer, rates[k]
                if robust:
                    seen = min(max(seen, rate / step), rate * step + per_viewer)
                rates[k] = rate + weight * (seen - rate)
            live.rated_intervals += 1
        return True

    def _live_features(self, live: LiveState, current: tuple) -> dict[str, float]:
        keep = self.config.live_recent_intervals - 1
        window = [*list(live.intervals)[-keep:], current] if keep > 0 else [current]
        viewers = sum(iv[1] for iv in window)
        likes, comments, shares, follows = (sum(iv[k] for iv in window) for k in range(2, 6))
        forget_before(live.commenters, current[0] - self._commenter_ms)
        per_viewer = 1.0 / max(viewers, 1)
        out = {
            "likes_per_viewer": likes * per_viewer,
            "comments_per_viewer": comments * per_viewer,
            "shares_per_viewer": shares * per_viewer,
            "follows_per_viewer": follows * per_viewer,
            "commenters_per_viewer": len(live.commenters) / max(current[1], 1),
        }
        warm = live.live_intervals >= self.config.min_live_intervals
        out["viewer_jump"] = current[1] / max(live.viewer_level, 1.0) if warm else 1.0
        # Observed vs what the creator's own rates predict for the viewers now (+1: small counts are noise).
        judged = warm and live.rated_intervals >= self.config.min_live_intervals
        rates = live.rates
        out["like_jump"] = (likes + 1.0) / (rates[0] * viewers + 1.0) if judged else 1.0
        out["comment_jump"] = (comments + 1.0) / (rates[1] * viewers + 1.0) if judged else 1.0
        out["follow_jump"] = (follows + 1.0) / (rates[2] * viewers + 1.0) if judged else 1.0
        return out

    # ---- the features -----------------------------------------------------------------------------

    def features(self, state: ActorState) -> dict[str, float]:
        """The actor's features at its newest event time."""
        now = state.newest
        window, burst = state.recent.window(now, self._burst_buckets)
        out: dict[str, float] = {}
        if state.role == "seller":
            if state.orders is not None:
                self._order_features(state.orders, now, window, burst, out)
            if state.listings is not None:
                self._listing_features(state.listings, window, out)
        elif state.live is not None and state.live.last:
            out.update(state.live.last)
        out["login_novelty"] = window[NOVELTY]
        out["payout_changes"] = window[PAYOUTS]
        return out

    def _order_features(self, orders: OrderState, now: int, window: list[float], burst: float,
                        out: dict[str, float]) -> None:
        forget_before(orders.devices, now - self._recent_ms)
        forget_before(orders.payments, now - self._recent_ms)
        n, prior = window[ORDERS], self.config.share_prior_count
        out["orders_per_hour"] = n * self._per_hour
        burst_per_hour = burst * self._per_hour * self._n_buckets / self._burst_buckets
        out["order_growth"] = (burst_per_hour + 1.0) / (orders.rate.per_hour(now) + 1.0)
        out["new_buyer_share"] = window[NEW_BUYER_ORDERS] / (n + prior)
        # The prior on both sides: a few orders from one device is usual, not a ring.
        out["devices_per_order"] = (min(len(orders.devices), n) + prior) / (n + prior)
        out["payments_per_order"] = (min(len(orders.payments), n) + prior) / (n + prior)
        out["refund_rate"] = min(1.0, orders.refunds.total(now) / (orders.rate.total(now) + prior))

    def _listing_features(self, lst: ListingState, window: list[float], out: dict[str, float]) -> None:
        created = window[LISTINGS]
        out["listings_per_hour"] = created * self._per_hour
        out["image_reuse_share"] = window[REUSED_IMAGES] / (created + self.config.share_prior_count)
        out["new_category_listings"] = window[NEW_CATEGORY]
        out["price_changes_per_listing"] = window[PRICE_CHANGES] / max(len(lst.prices), 1)
        out["max_price_raise"] = math.exp(window[RAISE_LOG])
        out["max_price_over_usual"] = math.exp(window[PRICE_OVER_LOG])
        out["max_was_over_usual"] = math.exp(window[WAS_OVER_LOG])


# ---- who an event is about ----------------------------------------------------------------------------


_SELLER_EVENTS = frozenset({ListingCreated, ListingUpdated, ListingRemoved, OrderPlaced, OrderRefunded})
_CREATOR_EVENTS = frozenset({LiveStarted, LiveStats, LiveComment, LiveTranscript, LiveEnded})


def actor_key(event: Event) -> str:
    """`actor_of` for the events the features read, without its attribute probing (this is the hot path).

    >>> actor_key(AccountLogin(event_id="e", ts=1, actor="creator:C1", device_id="d", ip="1.2.3.4", country="US"))
    'creator:C1'
    """
    kind = type(event)
    if kind in _SELLER_EVENTS:
        return "seller:" + event.seller_id
    if kind in _CREATOR_EVENTS:
        return "creator:" + event.creator_id
    return event.actor


