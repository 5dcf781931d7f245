"""One LIVE stream: viewers, engagement, chat, host talk and the orders it brings.

Real viewers follow a curve (ramp up, plateau, decay) with autocorrelated noise;
every engagement count is drawn from the *real* viewers with the creator's own
rates, so likes, comments, shares, follows, distinct commenters and orders all
move with the audience. Two things break that on purpose:

- `BoughtEngagement` adds viewers (or follows, or likes) that come from nowhere:
  the number jumps while everything real stays where it was;
- `ViralSurge` multiplies the *real* audience over several minutes, so the
  engagement grows with it (the honest look-alike).

`live.stats` reports, per interval, exactly the `live.comment` events emitted
in that interval (viewers' and the host's). Stats ticks are 10 s +- 2 s apart
and come from their own random stream, so a scenario can know them in advance
(`stats_ticks`) and say when its evidence is complete.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from simulator import wire
from simulator.phrases import (
    FOLLOW_PUSH_LINES,
    HOST_COMMENTS,
    HOST_LINES,
    LIKE_GOAL_LINES,
    LIVE_TITLES,
    VIEWER_COMMENTS,
    VIEWER_CONTACT_ASKS,
)
from simulator.population import Creator

STATS_EVERY_MS = 10_000
STATS_JITTER_MS = 2_000


@dataclass(frozen=True)
class BoughtEngagement:
    """Inflation bought from a vendor: `metric` is "viewers", "followers" or "likes"."""

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
class Scripted:
    """A fixed line at a fixed time: channel "transcript", "host_comment" or "viewer_comment"."""

    ts: int
    channel: str
    text: str


@dataclass
class LiveSpec:
    live_id: str
    creator: Creator
    start: int
    end: int
    peak: float  # real viewers at the plateau
    bought: BoughtEngagement | None = None
    viral: ViralSurge | None = None
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
    emit = m.tl.emit
    creator, live_id = spec.creator, spec.live_id
    creator_id = creator.creator_id
    rng = m.rng("live", live_id)
    shop = creator.shop
    ticks = stats_ticks(m.population.seed, live_id, spec.start, spec.end)
    topic = shop.categories[0].title() if shop else "Chat"
    emit(wire.live_started(spec.start, live_id, creator_id, shop.seller_id if shop else None,
                           rng.choice(LIVE_TITLES).format(cat=topic)))

    buyer_ids, n_buyers = m.buyers.ids, len(m.buyers)
    audience_offset = rng.randrange(n_buyers)  # this creator's regulars: a slice of the buyer pool
    ramp_until, decay_from = rng.uniform(0.06, 0.2), rng.uniform(0.7, 0.88)
    duration = spec.end - spec.start
    host_lines = HOST_LINES + spec.topic_lines * 4  # a topic LIVE talks about its topic a lot
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
                                      rng.choice(LIKE_GOAL_LINES)))
        if follow_boost_left == 0 and rng.random() < 0.002:
            follow_boost, follow_boost_left = rng.uniform(3.0, 5.0), rng.randint(3, 8)
            emit(wire.live_transcript(prev + 1 + rng.randrange(span), live_id, creator_id,
                                      rng.choice(FOLLOW_PUSH_LINES)))

        comments = poisson(rng, real * creator.comment_rate * dt)
        for _ in range(comments):
            user = buyer_ids[(audience_offset + rng.randrange(audience)) % n_buyers]
            text = rng.choice(VIEWER_COMMENTS) if rng.random() > 0.002 else rng.choice(VIEWER_CONTACT_ASKS)
            emit(wire.live_comment(prev + 1 + rng.randrange(span), live_id, creator_id, user, text, False))
        if rng.random() < 0.04:
            comments += 1
            emit(wire.live_comment(prev + 1 + rng.randrange(span), live_id, creator_id, creator_id,
                                   rng.choice(HOST_COMMENTS), True))
        if rng.random() < 0.45:
            emit(wire.live_transcript(prev + 1 + rng.randrange(span), live_id, creator_id, rng.choice(host_lines)))
        while next_scripted < len(scripted) and scripted[next_scripted].ts <= tick:
            line = scripted[next_scripted]
            next_scripted += 1
            if line.channel == "transcript":
                emit(wire.live_transcript(line.ts, live_id, creator_id, line.text))
            else:
                by_host = line.channel == "host_comment"
                user = creator_id if by_host else buyer_ids[(audience_offset + rng.randrange(audience)) % n_buyers]
                emit(wire.live_comment(line.ts, live_id, creator_id, user, line.text, by_host))
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
            elif bought.metric == "followers":
                follows += round(max(expected_follows, 0.3) * bought.factor * rng.uniform(0.8, 1.2))
            else:
                likes += round(max(expected_likes, 3.0) * (bought.factor - 1.0) * rng.uniform(0.85, 1.15))
        elif bought_viewers and k > bought.last_tick:
            bought_viewers = 0

        viewers = real + bought_viewers
        emit(wire.live_stats(tick, live_id, creator_id, viewers, likes, comments, shares, follows))
        prev = tick
        yield tick
    emit(wire.live_ended(max(spec.end, prev + 1), live_id, creator_id))
