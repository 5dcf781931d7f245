"""Per-actor behaviour features (detectors/models/features.py): what they say, when they are emitted, what they keep."""

from __future__ import annotations

import pickle

import msgspec
import pytest

from detectors.models.config import shipped_models_config
from detectors.models.features import CREATOR_FEATURES, FEATURE_KIND, RISK_SIDE, SELLER_FEATURES, ActorFeatures
from pipeline.engine.detect import FeatureShard, feature_key
from sinks.metrics import Metrics
from pipeline.contract.events import (
    AccountLogin, ListingCreated, ListingUpdated, LiveComment, LiveEnded, LiveStats, LiveTranscript, OrderPlaced,
    OrderRefunded, PayoutChanged,
)

T0 = 1_793_491_200_000
SECOND, MINUTE, HOUR = 1000, 60_000, 3_600_000

_ids = iter(range(10**9))


def order(minute, seller="S1", buyer=None, device=None, payment=None, age=400, amount=20.0):
    n = next(_ids)
    return OrderPlaced(event_id=f"o{n}", ts=T0 + int(minute * MINUTE), order_id=f"O{n}", seller_id=seller,
                       buyer_id=buyer or f"B{n}", listing_id="L1", amount=amount, currency="USD", creator_id=None,
                       live_id=None, buyer_account_age_days=age, device_id=device or f"d{n}",
                       shipping_address_hash=f"sa{n}", payment_hash=payment or f"pm{n}")


def refund(minute, seller="S1"):
    n = next(_ids)
    return OrderRefunded(event_id=f"r{n}", ts=T0 + int(minute * MINUTE), order_id=f"O{n}", seller_id=seller,
                         buyer_id="B", amount=5.0, reason=None)


def listing(minute, listing_id, price, *, created=True, category="home", original=None, image=None, seller="S1"):
    n = next(_ids)
    cls = ListingCreated if created else ListingUpdated
    return cls(event_id=f"l{n}", ts=T0 + int(minute * MINUTE), seller_id=seller, listing_id=listing_id,
               title="Lamp", category=category, price=price, currency="USD", brand=None,
               original_price=original, image_hash=image or f"{n:016x}", stock=5)


def login(minute, device="phone", country="US", actor="seller:S1"):
    n = next(_ids)
    return AccountLogin(event_id=f"a{n}", ts=T0 + int(minute * MINUTE), actor=actor, device_id=device,
                        ip="24.1.2.3", country=country)


def payout(minute, actor="seller:S1"):
    return PayoutChanged(event_id=f"p{next(_ids)}", ts=T0 + int(minute * MINUTE), actor=actor, payout_hash="po-2")


def stats(second, viewers, likes, comments=5, shares=1, follows=1, live="V1", creator="C1"):
    return LiveStats(event_id=f"s{next(_ids)}", ts=T0 + int(second * SECOND), live_id=live, creator_id=creator,
                     viewers=viewers, likes=likes, comments=comments, shares=shares, new_followers=follows)


def comment(second, user, live="V1", creator="C1", by_host=False):
    return LiveComment(event_id=f"c{next(_ids)}", ts=T0 + int(second * SECOND), live_id=live, creator_id=creator,
                       user_id=user, text="nice", by_host=by_host)


def run(events, **overrides):
    """All feature updates of `events`, one actor state per actor (as the shard keeps them)."""
    features = ActorFeatures(configured(**overrides))
    states, updates = {}, []
    for event in events:
        actor = features.entity(event)
        state, update = features.on_event(states.get(actor), event)
        states[actor] = state
        if update is not None:
            updates.append(update)
    return updates, states


def configured(**overrides):
    return msgspec.structs.replace(shipped_models_config().features, **overrides)


def last(updates, actor="seller:S1"):
    return [u for u in updates if u.actor == actor][-1].features


def steady_seller(hours=4, per_hour=6, seller="S1"):
    """An ordinary shop: an order every 10 minutes from established buyers, each on their own device."""
    return [order(m, seller=seller) for m in range(0, hours * 60, 60 // per_hour)]


# ---- sellers: orders ------------------------------------------------------------------


def test_a_steady_shop_looks_usual():
    updates, _ = run(steady_seller())
    f = last(updates)
    assert f["orders_per_hour"] == pytest.approx(6.0)
    assert 0.6 < f["order_growth"] < 1.6
    assert f["new_buyer_share"] == 0.0 and f["devices_per_order"] == 1.0 and f["payments_per_order"] == 1.0
    assert f["refund_rate"] == 0.0 and f["login_novelty"] == 0.0
    assert set(f) <= set(SELLER_FEATURES)


def test_a_burst_of_orders_from_fresh_accounts_on_few_devices_stands_out_in_every_order_feature():
    burst = [order(240 + i / 2, device=f"ring-{i % 2}", payment=f"card-{i % 2}", age=1) for i in range(30)]
    updates, states = run(steady_seller() + burst + [refund(256), refund(257)])
    f = ActorFeatures(configured()).features(states["seller:S1"])  # the refunds are ordinary: no rescore yet
    assert f["orders_per_hour"] >= 30
    assert f["order_growth"] > 5  # the last 15 minutes vs the shop's own long-run rate
    assert f["new_buyer_share"] > 0.75
    assert f["devices_per_order"] < 0.3 and f["payments_per_order"] < 0.3
    assert f["refund_rate"] > 0.03


def test_counts_leave_the_recent_window_when_it_ends():
    updates, _ = run(steady_seller(hours=1) + [order(200)])
    assert last(updates)["orders_per_hour"] == 1.0  # the first hour's orders are gone


# ---- sellers: listings -----------------------------------------------------------------


def catalog(n=10, price=20.0):
    return [listing(i, f"L{i}", price * (1 + (i % 3) / 10)) for i in range(n)]


def test_an_invented_was_price_is_measured_against_what_the_listing_really_cost():
    honest_sale = listing(90, "L1", 18.0, created=False, original=22.0)  # "was" = the price it had
    fake = listing(95, "L2", 23.0, created=False, original=96.0)  # "was" 4x the highest it ever had
    updates, _ = run(catalog() + [honest_sale])
    assert last(updates)["max_was_over_usual"] == pytest.approx(1.0)
    updates, _ = run(catalog() + [honest_sale, fake])
    assert last(updates)["max_was_over_usual"] == pytest.approx(96.0 / 24.0)


def test_a_steep_raise_and_a_price_far_above_the_sellers_usual_level():
    updates, _ = run(catalog() + [listing(90, "L4", 110.0, created=False)])
    f = last(updates)
    assert f["max_price_raise"] == pytest.approx(110.0 / 22.0)
    assert f["max_price_over_usual"] > 4
    assert f["price_changes_per_listing"] == pytest.approx(0.1)


def test_a_price_cut_is_not_a_raise():
    updates, _ = run(catalog() + [listing(90, "L4", 11.0, created=False)])
    assert last(updates)["max_price_raise"] == 1.0


def test_duplicate_images_and_a_new_category_show_in_listing_features():
    spam = [listing(100 + i, f"S{i}", 20.0, image="ab" * 8) for i in range(8)]
    updates, _ = run(catalog() + spam)
    f = last(updates)
    assert f["listings_per_hour"] == 8
    assert f["image_reuse_share"] == pytest.approx(7 / (8 + 5))  # smoothed by share_prior_count
    updates, _ = run(catalog() + [listing(100, "X1", 20.0, category="health")])
    assert last(updates)["new_category_listings"] == 1


def test_the_first_listings_teach_the_categories_and_are_not_new():
    updates, _ = run([listing(i, f"L{i}", 20.0, category=c) for i, c in enumerate(["home", "toys", "books"])])
    assert last(updates)["new_category_listings"] == 0


# ---- sign-ins --------------------------------------------------------------------------------


def test_login_novelty_is_the_share_of_a_sign_in_that_is_new_and_payout_changes_count():
    base = [login(0), login(100)]
    updates, _ = run(base)
    assert [u.features["login_novelty"] for u in updates] == [0.0, 0.0]  # the first sign-in teaches
    updates, _ = run(base + [login(200, device="tablet")])  # a new phone at home
    assert last(updates)["login_novelty"] == pytest.approx(1 / 3)
    stranger = AccountLogin(event_id="x", ts=T0 + 200 * MINUTE, actor="seller:S1", device_id="d-x",
                            ip="41.7.8.9", country="NG")
    updates, _ = run(base + [stranger, payout(220)])
    assert last(updates)["login_novelty"] == 1.0 and last(updates)["payout_changes"] == 1.0
    assert updates[-1].trigger == "account.payout_changed"


# ---- creators: LIVE ----------------------------------------------------------------------------


def live(intervals, viewers=200, likes=10, comments=4, follows=1, creator="C1"):
    """`intervals` ordinary stats intervals of one LIVE, 10 s apart, with a few distinct commenters."""
    out = []
    for i in range(intervals):
        out += [comment(i * 10 + 1, f"u{i % 12}", creator=creator), comment(i * 10 + 2, f"u{(i + 5) % 12}",
                                                                            creator=creator)]
        out.append(stats(i * 10 + 5, viewers, likes, comments=comments, follows=follows, creator=creator))
    return out


def test_bought_viewers_jump_while_engagement_per_viewer_collapses():
    bought = [stats(300 + i * 10 + 5, 2000, 10, comments=4) for i in range(13)]  # two judged minutes
    updates, _ = run(live(30) + bought)
    f = last(updates, "creator:C1")
    assert f["viewer_jump"] > 4
    assert f["like_jump"] < 0.2 and f["comment_jump"] < 0.3
    assert f["likes_per_viewer"] < 0.01
    assert set(f) <= set(CREATOR_FEATURES)


def test_bought_likes_and_followers_jump_against_the_creators_own_rates():
    updates, _ = run(live(30) + [stats(305 + i * 10, 200, 300, follows=40) for i in range(13)])
    f = last(updates, "creator:C1")
    assert f["like_jump"] > 10 and f["follow_jump"] > 10
    assert 0.8 < f["viewer_jump"] < 1.3


def test_an_organic_surge_brings_engagement_along():
    ramp = [stats(300 + i * 10 + 5, 200 + 60 * i, 10 + 3 * i, comments=4 + i) for i in range(30)]
    updates, _ = run(live(30) + ramp)
    f = last(updates, "creator:C1")
    assert 0.5 < f["like_jump"] < 2.0 and 0.5 < f["comment_jump"] < 2.5


def test_distinct_commenters_per_viewer():
    updates, _ = run(live(30))
    assert last(updates, "creator:C1")["commenters_per_viewer"] == pytest.approx(12 / 200)


def test_a_new_live_starts_its_own_viewer_level():
    second = [stats(4000 + i * 10, 5000, 250, live="V2") for i in range(8)]
    updates, _ = run(live(30) + [LiveEnded(event_id="e", ts=T0 + 3000 * SECOND, live_id="V1", creator_id="C1")]
                     + second)
    assert last(updates, "creator:C1")["viewer_jump"] == pytest.approx(1.0)


# ---- when updates are emitted ----------------------------------------------------------------------


def test_notable_orders_rescore_once_a_minute_ordinary_ones_every_ten_and_sign_ins_always():
    ordinary = [order(i / 10) for i in range(30)]  # 30 orders in 3 minutes, established buyers
    assert len(run(ordinary)[0]) == 1
    fresh = [order(i / 10, age=2) for i in range(30)]  # ... from new accounts
    assert len(run(fresh)[0]) == 3
    shared = [order(i / 10, device="d-1") for i in range(30)]  # ... from one device
    assert len(run(shared)[0]) == 3
    updates, _ = run([login(0), login(0.1), login(0.2, device="x")])
    assert len(updates) == 3


def test_comments_and_transcripts_never_rescore_and_stats_are_throttled():
    talk = LiveTranscript(event_id="t", ts=T0 + 1, live_id="V1", creator_id="C1", text="hello")
    updates, _ = run([comment(i, f"u{i}") for i in range(50)] + [talk])
    assert updates == []
    updates, _ = run([stats(i * 10, 100, 5) for i in range(12)])  # 120 s of stats, live_rescore_seconds = 60
    assert len(updates) == 2


def test_a_late_event_updates_the_counts_without_a_rescore():
    updates, states = run(steady_seller(hours=1) + [order(30)])
    assert updates[-1].ts < T0 + 59 * MINUTE  # the late order (minute 30) emitted nothing
    assert ActorFeatures(configured()).features(states["seller:S1"])["orders_per_hour"] == 7


# ---- the shard: dedupe, lateness, eviction, bounds, recovery -------------------------------------------


class shard:
    """A feature shard as the `actor_features` step runs it, fed one batch at a time."""

    def __init__(self, resume=None, **overrides):
        self.shard = FeatureShard(ActorFeatures(configured(**overrides)), Metrics(), allowed_lateness_ms=300_000,
                                  dedupe_horizon_ms=7_200_000, resume=resume)
        self.state, self.features = self.shard.state, self.shard.features

    def process(self, events):
        return self.shard.on_batch([list(events)], now=0.0)

    def keys_held(self):
        return self.shard.keys_held()


def test_the_shard_drops_redeliveries_and_too_late_events():
    s = shard()
    events = steady_seller(hours=1)
    s.process(events + events[:3])  # redelivered
    late = order(0)  # an hour behind the newest event: beyond the allowed lateness
    s.process([late])
    state = s.state.actors.get("seller:S1")
    assert s.features.features(state)["orders_per_hour"] == 6


def test_idle_actors_are_evicted_and_state_stays_bounded_over_many_actors():
    s = shard(idle_eviction_hours=1)
    for k in range(2000):
        s.process([order(k * 0.1, seller=f"S{k}")])
    assert s.keys_held() < 700  # about an hour's worth of sellers (one new seller per 6 s)


def test_per_actor_collections_are_capped():
    events = [order(i / 100, device=f"d{i}", payment=f"p{i}") for i in range(3000)]
    events += [listing(i / 100, f"L{i}", 10.0, image=f"{i:016x}") for i in range(3000)]
    _, states = run(events, max_distinct=100, max_listings=200, max_images=150)
    st = states["seller:S1"]
    assert len(st.orders.devices) <= 100 and len(st.orders.payments) <= 100
    assert len(st.listings.prices) <= 200 and len(st.listings.images) <= 150
    assert len(st.recent.buckets) <= st.recent.n + 1


def test_state_survives_pickling_and_continues_exactly():
    events = steady_seller() + [login(10), login(200, device="x")] + live(40)
    a, b = shard(), shard()
    first = a.process(events[:150])
    resumed = shard(resume=pickle.loads(pickle.dumps(a.state)))
    assert first + resumed.process(events[150:]) == b.process(events)


def test_the_same_events_give_the_same_updates():
    events = steady_seller() + live(40)
    assert shard().process(events) == shard().process(events)


def test_every_feature_has_a_kind_and_a_risk_side():
    for name in set(SELLER_FEATURES) | set(CREATOR_FEATURES):
        assert FEATURE_KIND[name] in ("ratio", "count", "share") and RISK_SIDE[name] in (-1, 0, 1)


def test_the_feature_key_follows_the_actor_across_topics():
    assert feature_key(order(0, seller="S9"), 64) == feature_key(login(0, actor="seller:S9"), 64)


def test_a_redelivered_stats_interval_counts_once():
    events = live(30)
    once, _ = run(events)
    redelivered = [copy for e in events for copy in ([e, e] if isinstance(e, LiveStats) else [e])]
    twice = shard().process(redelivered)
    assert twice == shard().process(events)
    assert [u.features for u in once] == [u.features for u in twice]
