"""One LIVE stream: viewers, engagement, chat, host talk and the orders it brings.

Real viewers follow a curve (ramp up, plateau, decay) with autocorrelated noise;
every engagement count is drawn from the *real* viewers with the creator's own
rates, so likes, comments, shares, follows, distinct commenters and orders all
move with the audience. Two things break that on purpose:

- `BoughtEngagement` adds viewers (or follows, or likes, or likes and follows
  together) that come from nowhere: the number jumps while everything real
  stays where it was;
- `ViralSurge` multiplies the *real* audience over several minutes, so the
  engagement grows with it (the honest look-alike); `FollowSpike` is a
  shout-out or raid: new viewers arrive (a `ViralSurge`), greet the host in
  the chat and follow at many times the usual rate for a minute or two.

`live.stats` reports, per interval, exactly the `live.comment` events emitted
in that interval (viewers' and the host's). Stats ticks are 10 s +- 2 s apart
and come from their own random stream, so a scenario can know them in advance
(`stats_ticks`) and say when its evidence is complete.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from simulator import wire
from simulator.population import Creator

STATS_EVERY_MS = 10_000
STATS_JITTER_MS = 2_000


@dataclass(frozen=True)
class BoughtEngagement:
    """Inflation bought from a vendor: `metric` is "viewers", "followers", "likes" or "likes_and_followers"."""

    metric: str
    first_tick: int  # index of the first inflated stats event
    last_tick: int  # index of the last inflated stats event
    factor: float  # viewers: total / pre-jump viewers; followers, likes: multiple of the normal rate
    ramp_ticks: int = 1  # viewers reach the bought level over this many stats intervals


@dataclass(frozen=True)
class ViralSurge:
    """The real audience grows `factor` times over `rise_ticks` stats intervals."""

    first_tick: int
    rise_ticks: int
    factor: float


@dataclass(frozen=True)
class FollowSpike:
    """Organic follows at `factor` x the usual rate for the stats intervals first_tick..last_tick."""

    first_tick: int
    last_tick: int
    factor: float


@dataclass(frozen=True)
class Scripted:
    """A line at a fixed time: channel "transcript", "host_comment" or "viewer_comment".

    `text` may be a function of the market, called when the line is said (a host
    talking about a listing says its price at that moment).
    """

    ts: int
    channel: str
    text: str | Callable[[Any], str]

    def said(self, m) -> str:
        return self.text if isinstance(self.text, str) else self.text(m)


@dataclass
class LiveSpec:
    live_id: str
    creator: Creator
    start: int
    end: int
    peak: float  # real viewers at the plateau
    bought: BoughtEngagement | None = None
    viral: ViralSurge | None = None
    follow_spike: FollowSpike | None = None
    scripted: tuple[Scripted, ...] = ()  # sorted by ts, all inside (start, end)
    topic_lines: tuple[str, ...] = ()  # extra ordinary host talk of this LIVE


def live_id_for(seed: int, creator_id: str, start: int) -> str:
    """A stable live id that says nothing about the live."""
    return "V" + hashlib.blake2b(f"{seed}:{creator_id}:{start}".encode(), digest_size=5).hexdigest()


def stats_ticks(seed: int, live_id: str, start: int, end: int) -> list[int]:
    """Event times of the LIVE's `live.stats` events (the same for the plan and the script).

    >>> ticks = stats_ticks(7, "V1", 0, 60_000)
    >>> all(8_000 <= b - a <= 12_000 for a, b in zip([0] + ticks, ticks)), ticks[-1] < 60_000
    (True, True)
    """
    rng = random.Random(f"{seed}:ticks:{live_id}")
    ticks = []
    t = start + STATS_EVERY_MS + rng.randint(-STATS_JITTER_MS, STATS_JITTER_MS)
    while t < end:
        ticks.append(t)
        t += STATS_EVERY_MS + rng.randint(-STATS_JITTER_MS, STATS_JITTER_MS)
    return ticks


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (exact for small means, normal approximation above 15)."""
    if mean <= 0.0:
        return 0
    if mean > 15.0:
        return max(0, int(rng.gauss(mean, math.sqrt(mean)) + 0.5))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _audience_shape(f: float, ramp_until: float, decay_from: float) -> float:
    """Share of the plateau audience at fraction `f` of the LIVE."""
    if f < ramp_until:
        return 0.15 + 0.85 * f / ramp_until
    if f > decay_from:
        return 1.0 - 0.65 * (f - decay_from) / (1.0 - decay_from)
    return 1.0


def _viral_multiplier(surge: ViralSurge | None, k: int) -> float:
    if surge is None or k < surge.first_tick:
        return 1.0
    p = min(1.0, (k - surge.first_tick) / surge.rise_ticks)
    return 1.0 + (surge.factor - 1.0) * p * p * (3.0 - 2.0 * p)  # smooth S-curve


def live_script(m, spec: LiveSpec) -> Iterator[int]:
    """Run one LIVE: at each stats tick, emit the next interval's chat, talk and orders and its stats."""
    words = m.world.wording
    creator, live_id = spec.creator, spec.live_id
    emit = partial(m.tl.emit, extra=True) if creator.extra else m.tl.emit
    creator_id = creator.creator_id
    rng = m.rng("live", live_id)
    shop = creator.shop
    ticks = stats_ticks(m.population.seed, live_id, spec.start, spec.end)
    topic = shop.categories[0].title() if shop else "Chat"
    emit(wire.live_started(spec.start, live_id, creator_id, shop.seller_id if shop else None,
                           rng.choice(words.live_titles).format(cat=topic)))

    buyer_ids, n_buyers = m.buyers.ids, len(m.buyers)
    audience_offset = rng.randrange(n_buyers)  # this creator's regulars: a slice of the buyer pool
    ramp_until, decay_from = rng.uniform(0.06, 0.2), rng.uniform(0.7, 0.88)
    duration = spec.end - spec.start
    host_lines = tuple(words.host_lines) + tuple(spec.topic_lines) * 4  # a topic LIVE talks about its topic a lot
    scripted, next_scripted = spec.scripted, 0
    bought, viral = spec.bought, spec.viral
    noise = 0.0
    like_boost, like_boost_left, follow_boost, follow_boost_left = 1.0, 0, 1.0, 0
    bought_viewers_full = bought_viewers = 0
    viewers = 0
    prev = spec.start
    for k, tick in enumerate(ticks):
        span = tick - prev
        dt = span / STATS_EVERY_MS
        noise = 0.85 * noise + rng.gauss(0.0, 0.035)
        shape = _audience_shape((tick - spec.start) / duration, ramp_until, decay_from)
        real = max(1, int(spec.peak * shape * _viral_multiplier(viral, k) * (1.0 + noise)))
        audience = 20 + int(real * 0.8)

        # Honest moments: a like goal or a follow push lifts one rate for a minute or two.
        if like_boost_left == 0 and rng.random() < 0.003:
            like_boost, like_boost_left = rng.uniform(2.0, 3.5), rng.randint(6, 18)
            emit(wire.live_transcript(prev + 1 + rng.randrange(span), live_id, creator_id,
                                      rng.choice(words.like_goal_lines)))
        if follow_boost_left == 0 and rng.random() < 0.002:
            follow_boost, follow_boost_left = rng.uniform(3.0, 5.0), rng.randint(3, 8)
            emit(wire.live_transcript(prev + 1 + rng.randrange(span), live_id, creator_id,
                                      rng.choice(words.follow_push_lines)))

        greeted = 0
        spike = spec.follow_spike
        if spike is not None and spike.first_tick <= k <= spike.last_tick:
            if k == spike.first_tick:
                emit(wire.live_transcript(prev + 1 + rng.randrange(span), live_id, creator_id,
                                          rng.choice(words.shoutout_lines)))
            for _ in range(poisson(rng, 2.0 + real * creator.comment_rate * dt)):  # newcomers say hi
                user = buyer_ids[rng.randrange(n_buyers)]
                emit(wire.live_comment(prev + 1 + rng.randrange(span), live_id, creator_id, user,
                                       rng.choice(words.raid_comments), False))
                greeted += 1
        comments = poisson(rng, real * creator.comment_rate * dt)
        for _ in range(comments):
            user = buyer_ids[(audience_offset + rng.randrange(audience)) % n_buyers]
            text = rng.choice(words.viewer_comments) if rng.random() > 0.002 else rng.choice(words.viewer_contact_asks)
            emit(wire.live_comment(prev + 1 + rng.randrange(span), live_id, creator_id, user, text, False))
        comments += greeted
        if rng.random() < 0.04:
            comments += 1
            emit(wire.live_comment(prev + 1 + rng.randrange(span), live_id, creator_id, creator_id,
                                   rng.choice(words.host_comments), True))
        if rng.random() < 0.45:
            emit(wire.live_transcript(prev + 1 + rng.randrange(span), live_id, creator_id, rng.choice(host_lines)))
        while next_scripted < len(scripted) and scripted[next_scripted].ts <= tick:
            line = scripted[next_scripted]
            next_scripted += 1
            if line.channel == "transcript":
                emit(wire.live_transcript(line.ts, live_id, creator_id, line.said(m)))
            else:
                by_host = line.channel == "host_comment"
                user = creator_id if by_host else buyer_ids[(audience_offset + rng.randrange(audience)) % n_buyers]
                emit(wire.live_comment(line.ts, live_id, creator_id, user, line.said(m), by_host))
                comments += 1

        if shop is not None and shop.listings:
            for _ in range(poisson(rng, real * creator.buy_rate * dt)):
                listing = rng.choice(shop.listings)
                if listing.stock > 0:
                    buyer = (audience_offset + rng.randrange(audience)) % n_buyers
                    m.place_order(prev + 1 + rng.randrange(span), shop, listing, buyer, rng,
                                  creator_id=creator_id, live_id=live_id)

        expected_likes = real * creator.like_rate * dt
        expected_follows = real * creator.follow_rate * dt
        likes = poisson(rng, expected_likes * like_boost)
        follows = poisson(rng, expected_follows * follow_boost)
        if spike is not None and spike.first_tick <= k <= spike.last_tick:
            follows += poisson(rng, max(expected_follows, 0.3) * spike.factor)  # newcomers follow
        shares = poisson(rng, real * creator.share_rate * dt)
        like_boost_left = max(0, like_boost_left - 1)
        like_boost = like_boost if like_boost_left else 1.0
        follow_boost_left = max(0, follow_boost_left - 1)
        follow_boost = follow_boost if follow_boost_left else 1.0

        if bought is not None and bought.first_tick <= k <= bought.last_tick:
            if bought.metric == "viewers":
                if k == bought.first_tick:
                    bought_viewers_full = int(viewers * (bought.factor - 1.0))
                done = min(1.0, (k - bought.first_tick + 1) / bought.ramp_ticks)
                bought_viewers = int(bought_viewers_full * done * rng.uniform(0.985, 1.015))
            else:
                if bought.metric in ("followers", "likes_and_followers"):  # a bought batch: at least 5 a time
                    follows += max(5, round(max(expected_follows, 0.3) * bought.factor * rng.uniform(0.8, 1.2)))
                if bought.metric in ("likes", "likes_and_followers"):
                    likes += round(max(expected_likes, 3.0) * (bought.factor - 1.0) * rng.uniform(0.85, 1.15))
        elif bought_viewers and k > bought.last_tick:
            bought_viewers = 0

        viewers = real + bought_viewers
        emit(wire.live_stats(tick, live_id, creator_id, viewers, likes, comments, shares, follows))
        prev = tick
        yield tick
    emit(wire.live_ended(max(spec.end, prev + 1), live_id, creator_id))
