"""Per-actor behaviour features for the online models, computed in one place.

Rules catch what the policy team already knows; the anomaly model
(`detectors/models.py`) looks for what they do not, and it needs each seller
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
    `login_novelty` (largest of: 0 known device and country, 1 new device,
    2 new device and new country, over the recent window), `payout_changes`.

"Now" is the last `recent_seconds` (counts, shares, maxima) or the last
`live_recent_intervals` stats intervals; baselines are exponentially weighted
in event time. Values are plain numbers a reviewer can read (a ratio of 4.0
means four times); `FEATURE_KIND` says how a model should scale each one.

State is explicit, picklable and bounded: every per-actor collection is
capped (`max_*` keys) or expires in event time, and `ActorFeatureShard` evicts
actors idle for `idle_eviction_hours`. `ActorFeatures` has the detectors'
shape (`entity(event)`, `on_event(state, event) -> (state, update | None)`)
so it could run in a detect step; `ActorFeatureShard` hosts it with dedupe,
lateness and eviction as one keyed dataflow step (see `feature_key`).

Work per event is O(1): counters live in `recent_seconds / bucket_seconds`
event-time buckets; distinct devices/payments/commenters are dicts kept in
last-seen order so expiry pops from the front. Scoring is throttled: an actor
emits at most one update per `rescore_seconds` (LIVE stats: per
`live_rescore_seconds`), except that sign-ins, payout changes and listing
updates always emit; comments and transcripts never do.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar, Iterable

import msgspec

from pipeline.detect import Deduper, EntityStates
from pipeline.events import (
    AccountLogin, Event, ListingCreated, ListingRemoved, ListingUpdated, LiveComment, LiveEnded, LiveStarted,
    LiveStats, LiveTranscript, OrderPlaced, OrderRefunded, PayoutChanged, actor_of,
)
from pipeline.routing import shard_of

HOUR_MS = 3_600_000

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
    "max_was_over_usual": "ratio", "login_novelty": "count", "payout_changes": "count",
    "likes_per_viewer": "count", "comments_per_viewer": "count", "shares_per_viewer": "count",
    "follows_per_viewer": "count", "commenters_per_viewer": "count", "viewer_jump": "ratio",
    "like_jump": "ratio", "comment_jump": "ratio", "follow_jump": "ratio",
}


class ActorFeaturesConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Windows and bounds of `ActorFeatures` (table `[models.features]`).

    Parameters
    ----------
    bucket_seconds
        Width of the event-time buckets that hold recent counts.
    recent_seconds
        The "now" window of counts, shares and maxima (a multiple of `bucket_seconds`).
    burst_seconds
        The short window of `order_growth` (a multiple of `bucket_seconds`).
    baseline_half_life_hours
        Half-life of the seller's long-run order and refund rates.
    new_account_days
        A buyer account at most this many days old counts as new.
    share_prior_count
        Shares are smoothed: x / (n + share_prior_count), so one new buyer out of
        one order is not "100% new buyers" (same for refunds, reused images, and
        (distinct + prior) / (orders + prior) for devices and payments).
    min_known_listings
        A listing's category counts as new only once the seller has this many
        listings (the first listings are how the seller's categories are learned).
    live_recent_intervals
        Stats intervals that form a LIVE's "now".
    live_baseline_half_life_intervals
        Half-life, in stats intervals, of the creator's per-viewer rates and
        of the LIVE's viewer level.
    min_live_intervals
        Stats intervals of baseline a `*_jump` needs (before that it is 1, usual).
    commenter_window_seconds
        Window of `commenters_per_viewer`.
    rescore_seconds
        An actor emits at most one update per this much event time (orders,
        refunds, new listings); sign-ins, payout changes and listing updates
        always emit.
    live_rescore_seconds
        The same for LIVE stats.
    max_distinct
        Distinct buyer devices, payment hashes or commenters remembered per
        actor and window (the oldest go first).
    max_listings
        Listings (with their last price) remembered per seller.
    max_images, max_categories, max_login_devices, max_login_countries
        Image hashes, categories, sign-in devices and countries remembered per actor.
    idle_eviction_hours
        An actor with no event for this long (event time) is forgotten.
    """

    bucket_seconds: float
    recent_seconds: float
    burst_seconds: float
    baseline_half_life_hours: float
    new_account_days: int
    share_prior_count: float
    min_known_listings: int
    live_recent_intervals: int
    live_baseline_half_life_intervals: float
    min_live_intervals: int
    commenter_window_seconds: float
    rescore_seconds: float
    live_rescore_seconds: float
    max_distinct: int
    max_listings: int
    max_images: int
    max_categories: int
    max_login_devices: int
    max_login_countries: int
    idle_eviction_hours: float


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
    >>> b.add(500, ORDERS), b.add(1500, ORDERS), b.add(2500, ORDERS, 2.0)
    (None, None, None)
    >>> b.total(ORDERS, 2500), b.total(ORDERS, 2500, last=1), b.total(ORDERS, 3500)
    (4.0, 2.0, 3.0)
    """

    width_ms: int
    n: int
    buckets: dict[int, list[float]] = field(default_factory=dict)  # bucket index -> columns

    def _bucket(self, ts: int) -> list[float]:
        index = ts // self.width_ms
        row = self.buckets.get(index)
        if row is None:
            row = self.buckets[index] = [0.0] * _COLUMNS
            oldest = index - self.n
            for old in [i for i in self.buckets if i <= oldest]:  # at most a few: the dict holds <= n + 1 rows
                del self.buckets[old]
        return row

    def add(self, ts: int, column: int, amount: float = 1.0) -> None:
        self._bucket(ts)[column] += amount

    def raise_to(self, ts: int, column: int, value: float) -> None:
        row = self._bucket(ts)
        if value > row[column]:
            row[column] = value

    def total(self, column: int, now: int, last: int | None = None) -> float:
        """Sum of `column` over the `last` buckets up to `now` (default: all `n`)."""
        newest = now // self.width_ms
        oldest = newest - (last or self.n)
        return sum(row[column] for i, row in self.buckets.items() if oldest < i <= newest)

    def largest(self, column: int, now: int) -> float:
        newest = now // self.width_ms
        return max((row[column] for i, row in self.buckets.items() if newest - self.n < i <= newest), default=0.0)


def touch(seen: dict[str, int], key: str, ts: int, limit: int) -> bool:
    """Remember `key` as seen at `ts` (last-seen order, at most `limit` keys); True if it was new.

    >>> seen = {}
    >>> touch(seen, "a", 1, 2), touch(seen, "b", 2, 2), touch(seen, "a", 3, 2), touch(seen, "c", 4, 2)
    (True, True, False, True)
    >>> list(seen)
    ['a', 'c']
    """
    previous = seen.pop(key, None)
    seen[key] = ts if previous is None or ts > previous else previous
    if len(seen) > limit:
        del seen[next(iter(seen))]
    return previous is None


def expire(seen: dict[str, int], cutoff: int) -> None:
    """Forget keys last seen before `cutoff` (the dict is in last-seen order)."""
    while seen:
        oldest = next(iter(seen))
        if seen[oldest] >= cutoff:
            return
        del seen[oldest]


@dataclass(slots=True)
class DecayedRate:
    """An exponentially weighted event rate in event time: events per hour, recent ones weigh more.

    `amount` decays with the half-life; so does `span`, the time observed, so a
    young actor's rate is not diluted by time it did not exist.

    >>> r = DecayedRate(half_life_ms=3_600_000)
    >>> for minute in range(0, 120, 10):
    ...     r.add(minute * 60_000)
    >>> round(r.per_hour(120 * 60_000), 1)
    6.0
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
    devices: dict[str, int] = field(default_factory=dict)  # buyer device -> last order ts
    payments: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class ListingState:
    prices: dict[str, float] = field(default_factory=dict)  # listing -> last price, least recent first
    images: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    listings_seen: int = 0
    usual_log_price: float = 0.0  # exponentially weighted mean of log prices
    prices_seen: int = 0


@dataclass(slots=True)
class LoginState:
    devices: dict[str, int] = field(default_factory=dict)
    countries: dict[str, int] = field(default_factory=dict)
    logins: int = 0


@dataclass(slots=True)
class LiveState:
    """A creator's LIVE: its recent intervals and the creator's own per-viewer rates."""

    live_id: str | None = None
    intervals: deque = field(default_factory=deque)  # (ts, viewers, likes, comments, shares, follows), newest last
    live_intervals: int = 0  # stats intervals of the current LIVE
    viewer_level: float = 0.0  # this LIVE's recent viewers (exponentially weighted)
    rates: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # per viewer per interval
    rated_intervals: int = 0  # intervals behind `rates` (all LIVEs of the creator)
    commenters: dict[str, int] = field(default_factory=dict)
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


# ---- the feature computer ------------------------------------------------------------------

_ALWAYS = (AccountLogin, PayoutChanged, ListingUpdated)  # rare and telling: always rescored
_NEVER = (LiveComment, LiveTranscript, LiveStarted, LiveEnded, ListingRemoved)  # only feed state


class ActorFeatures:
    """Rolling per-actor features; emits a `FeatureUpdate` when they should be rescored.

    Examples
    --------
    >>> cfg = ActorFeaturesConfig(bucket_seconds=300, recent_seconds=3600, burst_seconds=900,
    ...     baseline_half_life_hours=6, new_account_days=30, share_prior_count=5, min_known_listings=5, live_recent_intervals=2,
    ...     live_baseline_half_life_intervals=12, min_live_intervals=6, commenter_window_seconds=120,
    ...     rescore_seconds=60, live_rescore_seconds=20, max_distinct=500, max_listings=2000,
    ...     max_images=500, max_categories=50, max_login_devices=20, max_login_countries=10,
    ...     idle_eviction_hours=48)
    >>> features = ActorFeatures(cfg)
    >>> def order(i, minute, device, age):
    ...     return OrderPlaced(event_id=f"o{i}", ts=minute * 60_000, order_id=f"O{i}", seller_id="S1",
    ...         buyer_id=f"B{i}", listing_id="L1", amount=5.0, currency="USD", creator_id=None, live_id=None,
    ...         buyer_account_age_days=age, device_id=device, shipping_address_hash=None, payment_hash=None)
    >>> state = None
    >>> for i in range(20):  # a burst: 20 orders in 20 minutes from 2 devices of fresh accounts
    ...     state, update = features.on_event(state, order(i, i, f"d{i % 2}", 1))
    >>> update.actor, update.features["orders_per_hour"], update.features["new_buyer_share"]
    ('seller:S1', 20.0, 0.95)
    >>> update.features["devices_per_order"]
    0.143
    """

    name: ClassVar[str] = "actor_features_v1"
    event_types: ClassVar[frozenset[type]] = frozenset({
        ListingCreated, ListingUpdated, ListingRemoved, OrderPlaced, OrderRefunded,
        LiveStarted, LiveStats, LiveComment, LiveTranscript, LiveEnded, AccountLogin, PayoutChanged,
    })

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
        self._live_rescore_ms = int(config.live_rescore_seconds * 1000)
        self._live_alpha = 1.0 - 0.5 ** (1.0 / config.live_baseline_half_life_intervals)
        self.idle_eviction_ms = int(config.idle_eviction_hours * HOUR_MS)

    def entity(self, event: Event) -> str | None:
        return actor_of(event)

    def on_event(self, state: ActorState | None, event: Event) -> tuple[ActorState | None, FeatureUpdate | None]:
        """Fold one event into the actor's state; return the state and an update if it is time to rescore."""
        if state is None:
            actor = actor_of(event)
            state = ActorState(actor=actor, role=actor.split(":", 1)[0],
                               recent=RecentBuckets(self._bucket_ms, self._n_buckets))
        newest = event.ts >= state.newest
        if newest:
            state.newest = event.ts
        changed = self._fold(state, event)
        if not changed or not newest or isinstance(event, _NEVER):
            return state, None
        interval = self._live_rescore_ms if isinstance(event, LiveStats) else self._rescore_ms
        if not isinstance(event, _ALWAYS) and event.ts - state.last_emit < interval:
            return state, None
        state.last_emit = event.ts
        return state, FeatureUpdate(actor=state.actor, role=state.role, ts=event.ts, trigger=event.type,
                                    features=self.features(state))

    # ---- folding events into state -------------------------------------------------------------

    def _fold(self, state: ActorState, event: Event) -> bool:
        """Update the state; False when the event changes nothing the features read."""
        if isinstance(event, OrderPlaced):
            self._on_order(state, event)
        elif isinstance(event, OrderRefunded):
            self._orders(state).refunds.add(event.ts)
        elif isinstance(event, (ListingCreated, ListingUpdated)):
            return self._on_listing(state, event)
        elif isinstance(event, ListingRemoved):
            if state.listings is not None:
                state.listings.prices.pop(event.listing_id, None)
        elif isinstance(event, AccountLogin):
            self._on_login(state, event)
        elif isinstance(event, PayoutChanged):
            state.recent.add(event.ts, PAYOUTS)
        elif isinstance(event, LiveStats):
            return self._on_stats(state, event)
        elif isinstance(event, LiveComment):
            if not event.by_host:
                live = self._live(state)
                touch(live.commenters, event.user_id, event.ts, self.config.max_distinct)
        elif isinstance(event, LiveEnded):
            live = self._live(state)
            if live.live_id == event.live_id:
                live.live_id, live.live_intervals, live.viewer_level = None, 0, 0.0
                live.intervals.clear()
        return True

    def _orders(self, state: ActorState) -> OrderState:
        if state.orders is None:
            hl = self._half_life_ms
            state.orders = OrderState(DecayedRate(hl), DecayedRate(hl))
        return state.orders

    def _live(self, state: ActorState) -> LiveState:
        if state.live is None:
            state.live = LiveState()
        return state.live

    def _on_order(self, state: ActorState, event: OrderPlaced) -> None:
        orders = self._orders(state)
        orders.rate.add(event.ts)
        state.recent.add(event.ts, ORDERS)
        if event.buyer_account_age_days <= self.config.new_account_days:
            state.recent.add(event.ts, NEW_BUYER_ORDERS)
        limit = self.config.max_distinct
        # A missing device or payment hash is its own value: it links nobody.
        touch(orders.devices, event.device_id or f"none:{event.order_id}", event.ts, limit)
        touch(orders.payments, event.payment_hash or f"none:{event.order_id}", event.ts, limit)

    def _on_listing(self, state: ActorState, event: ListingCreated | ListingUpdated) -> bool:
        cfg = self.config
        if state.listings is None:
            state.listings = ListingState()
        lst, recent, ts = state.listings, state.recent, event.ts
        previous = lst.prices.pop(event.listing_id, None)
        lst.prices[event.listing_id] = event.price
        if len(lst.prices) > cfg.max_listings:
            del lst.prices[next(iter(lst.prices))]
        log_price = math.log(event.price)
        if lst.prices_seen >= 3:  # against the usual level before this price joins it
            recent.raise_to(ts, PRICE_OVER_LOG, log_price - lst.usual_log_price)
            if event.original_price is not None and event.original_price > event.price:
                recent.raise_to(ts, WAS_OVER_LOG, math.log(event.original_price) - lst.usual_log_price)
        if isinstance(event, ListingCreated):
            recent.add(ts, LISTINGS)
            if event.image_hash is not None and not touch(lst.images, event.image_hash, ts, cfg.max_images):
                recent.add(ts, REUSED_IMAGES)
            if touch(lst.categories, event.category, ts, cfg.max_categories) and \
                    lst.listings_seen >= cfg.min_known_listings:
                recent.add(ts, NEW_CATEGORY)
            lst.listings_seen += 1
        elif previous is not None and previous != event.price:
            recent.add(ts, PRICE_CHANGES)
            recent.raise_to(ts, RAISE_LOG, math.log(event.price / previous))
        elif previous is not None and event.original_price is None:
            return False  # a restock or a title edit: nothing the features read changed
        weight = 1.0 / min(lst.prices_seen + 1, 50)  # a running mean at first, then exponentially weighted
        lst.usual_log_price += weight * (log_price - lst.usual_log_price)
        lst.prices_seen += 1
        return True

    def _on_login(self, state: ActorState, event: AccountLogin) -> None:
        cfg = self.config
        if state.logins is None:
            state.logins = LoginState()
        logins = state.logins
        new_device = touch(logins.devices, event.device_id, event.ts, cfg.max_login_devices)
        new_country = touch(logins.countries, event.country, event.ts, cfg.max_login_countries)
        if logins.logins > 0:  # the first sign-in is how the actor is learned
            state.recent.raise_to(event.ts, NOVELTY, float(new_device) + float(new_device and new_country))
        logins.logins += 1

    def _on_stats(self, state: ActorState, event: LiveStats) -> bool:
        live = self._live(state)
        if live.live_id != event.live_id:
            live.live_id, live.live_intervals, live.viewer_level = event.live_id, 0, 0.0
            live.intervals.clear()
        elif live.intervals and event.ts <= live.intervals[-1][0]:
            return False  # a late interval: the LIVE has moved on
        current = (event.ts, event.viewers, event.likes, event.comments, event.shares, event.new_followers)
        live.last = self._live_features(live, current)
        # Learn this interval into the baselines only after judging it.
        live.intervals.append(current)
        if len(live.intervals) > self.config.live_recent_intervals:
            live.intervals.popleft()
        a = self._live_alpha
        live.viewer_level = event.viewers if live.live_intervals == 0 else \
            live.viewer_level + a * (event.viewers - live.viewer_level)
        live.live_intervals += 1
        if event.viewers > 0:
            observed = (event.likes, event.comments, event.shares, event.new_followers)
            weight = max(a, 1.0 / (live.rated_intervals + 1))
            for k in range(4):
                live.rates[k] += weight * (observed[k] / event.viewers - live.rates[k])
            live.rated_intervals += 1
        return True

    def _live_features(self, live: LiveState, current: tuple) -> dict[str, float]:
        window = [*list(live.intervals)[-(self.config.live_recent_intervals - 1):], current] \
            if self.config.live_recent_intervals > 1 else [current]
        viewers = sum(iv[1] for iv in window)
        likes, comments, shares, follows = (sum(iv[k] for iv in window) for k in range(2, 6))
        expire(live.commenters, current[0] - self._commenter_ms)
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
        for name, k, observed in (("like_jump", 0, likes), ("comment_jump", 1, comments), ("follow_jump", 3, follows)):
            expected = live.rates[k] * viewers
            out[name] = (observed + 1.0) / (expected + 1.0) if warm and live.rated_intervals >= 6 else 1.0
        return out

    # ---- the features -----------------------------------------------------------------------------

    def features(self, state: ActorState) -> dict[str, float]:
        """The actor's features at its newest event time (rounded: they are read by people too)."""
        now, recent = state.newest, state.recent
        out: dict[str, float] = {}
        if state.role == "seller":
            out.update(self._order_features(state, now))
            out.update(self._listing_features(state, now))
        elif state.live is not None and state.live.last:
            out.update(state.live.last)
        out["login_novelty"] = recent.largest(NOVELTY, now)
        out["payout_changes"] = recent.total(PAYOUTS, now)
        return {k: round(v, 3) for k, v in out.items()}

    def _order_features(self, state: ActorState, now: int) -> dict[str, float]:
        orders, recent = state.orders, state.recent
        if orders is None:
            return {}
        expire(orders.devices, now - self._recent_ms)
        expire(orders.payments, now - self._recent_ms)
        n = recent.total(ORDERS, now)
        burst = recent.total(ORDERS, now, last=self._burst_buckets) * self._n_buckets / self._burst_buckets
        prior = self.config.share_prior_count
        return {
            "orders_per_hour": n * self._per_hour,
            "order_growth": (burst * self._per_hour + 1.0) / (orders.rate.per_hour(now) + 1.0),
            "new_buyer_share": recent.total(NEW_BUYER_ORDERS, now) / (n + prior),
            # The prior on both sides: a few orders from one device is usual, not a ring.
            "devices_per_order": (min(len(orders.devices), n) + prior) / (n + prior),
            "payments_per_order": (min(len(orders.payments), n) + prior) / (n + prior),
            "refund_rate": min(1.0, orders.refunds.total(now) / (orders.rate.total(now) + prior)),
        }

    def _listing_features(self, state: ActorState, now: int) -> dict[str, float]:
        lst, recent = state.listings, state.recent
        if lst is None:
            return {}
        created = recent.total(LISTINGS, now)
        return {
            "listings_per_hour": created * self._per_hour,
            "image_reuse_share": recent.total(REUSED_IMAGES, now) / (created + self.config.share_prior_count),
            "new_category_listings": recent.total(NEW_CATEGORY, now),
            "price_changes_per_listing": recent.total(PRICE_CHANGES, now) / max(len(lst.prices), 1),
            "max_price_raise": math.exp(recent.largest(RAISE_LOG, now)),
            "max_price_over_usual": math.exp(recent.largest(PRICE_OVER_LOG, now)),
            "max_was_over_usual": math.exp(recent.largest(WAS_OVER_LOG, now)),
        }


# ---- the keyed step ----------------------------------------------------------------------------


def feature_key(event: Event, shards: int) -> str:
    """Key of the feature step that owns this event's actor: `features/<shard>`.

    >>> from pipeline.events import decode
    >>> feature_key(decode(b'{"event_id":"e","type":"live.ended","ts":1,"live_id":"V","creator_id":"C7"}'), 64)
    'features/11'
    """
    return f"features/{shard_of(actor_of(event), shards)}"


@dataclass(slots=True)
class FeatureShardState:
    """Everything a feature shard keeps; pickled into recovery snapshots."""

    dedupe: Deduper
    actors: EntityStates = field(default_factory=EntityStates)
    watermark: int = -(2**62)
    swept_at: int = -(2**62)


class ActorFeatureShard:
    """One shard of the feature step: dedupe, lateness, per-actor state with idle eviction.

    Events of other steps' families all come here too (listings, orders, LIVE,
    account events); governance events do not. Duplicates and late events are
    already counted by the detect steps, so this shard only skips them.

    >>> shard = ActorFeatureShard(ActorFeatures(load_features_config()), allowed_lateness_ms=300_000,
    ...                           dedupe_horizon_ms=7_200_000)
    >>> login = AccountLogin(event_id="e1", ts=0, actor="seller:S1", device_id="d1", ip="1.2.3.4", country="US")
    >>> [u.features["login_novelty"] for u in shard.process([login, login])], shard.keys_held()
    ([0.0], 1)
    """

    SWEEP_EVERY_MS = 60_000

    def __init__(self, features: ActorFeatures, *, allowed_lateness_ms: int, dedupe_horizon_ms: int,
                 resume: FeatureShardState | None = None) -> None:
        self.features = features
        self.allowed_lateness_ms = allowed_lateness_ms
        self.state = resume or FeatureShardState(dedupe=Deduper(dedupe_horizon_ms))

    def process(self, events: Iterable[Event]) -> list[FeatureUpdate]:
        """Run a batch of events (arrival order); return the feature updates they trigger."""
        st, features, out = self.state, self.features, []
        for event in events:
            if st.dedupe.seen_before(event.event_id, event.ts):
                continue
            if event.ts > st.watermark:
                st.watermark = event.ts
            elif event.ts < st.watermark - self.allowed_lateness_ms:
                continue
            actor = features.entity(event)
            if actor is None:
                continue
            state, update = features.on_event(st.actors.get(actor), event)
            st.actors.put(actor, state, event.ts)
            if update is not None:
                out.append(update)
        if st.watermark - st.swept_at >= self.SWEEP_EVERY_MS:
            st.swept_at = st.watermark
            st.dedupe.forget_older_than(st.watermark - st.dedupe.horizon_ms)
            st.actors.evict_idle(st.watermark - features.idle_eviction_ms)
        return out

    def keys_held(self) -> int:
        return len(self.state.actors)


def load_features_config(tables: dict | None = None) -> ActorFeaturesConfig:
    """`[models.features]` from the default config (or from `tables`, the `[models]` table)."""
    from detectors.models import models_config

    return models_config(tables).features
