"""Creators' LIVE abuse: bought engagement and false price claims (evidence_ts: see `simulator/abuse.py`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

from simulator.live import BoughtEngagement, Scripted, live_script, stats_ticks
from simulator.population import Population
from simulator.scenario import Label, ListingTalk, Plan, planned_live, shop_for, times_in_live
from simulator.world import World

INFLATION = "engagement_inflation"
PRICE_CLAIM = "misleading_price_claim"

# (world, rng, first inflated tick, number of ticks) -> (what is bought, index of the evidence tick)
Buy = Callable[[World, random.Random, int, int], tuple[BoughtEngagement, int]]


def _viewer_factor(world: World, rng: random.Random) -> float:
    low, high = world.knob(INFLATION, "viewer_factor")
    return low + (high - low) * rng.random() ** 1.5  # most buy a moderate boost, a few a huge one


def bought_viewers(world: World, rng: random.Random, first: int, n: int) -> tuple[BoughtEngagement, int]:
    """Viewers jump within one or two intervals and stay: evidence when the jump is complete."""
    ramp = rng.choice((1, 2))
    return BoughtEngagement("viewers", first, n - 1, _viewer_factor(world, rng), ramp), first + ramp - 1


def slow_viewer_ramp(world: World, rng: random.Random, first: int, n: int) -> tuple[BoughtEngagement, int]:
    """Bots join over 3-6 intervals (half a minute to a minute): evidence when the ramp is complete."""
    ramp = min(n - first, rng.randint(*world.knob(INFLATION, "ramp_ticks")))
    return BoughtEngagement("viewers", first, n - 1, _viewer_factor(world, rng), ramp), first + ramp - 1


def bought_followers(world: World, rng: random.Random, first: int, n: int) -> tuple[BoughtEngagement, int]:
    last = min(n - 1, first + rng.randint(*world.knob(INFLATION, "follower_extra_ticks")))
    return BoughtEngagement("followers", first, last, rng.uniform(*world.knob(INFLATION, "follower_factor"))), first


def bought_likes(world: World, rng: random.Random, first: int, n: int) -> tuple[BoughtEngagement, int]:
    last = min(n - 1, first + rng.randint(*world.knob(INFLATION, "like_extra_ticks")))
    return BoughtEngagement("likes", first, last, rng.uniform(*world.knob(INFLATION, "like_factor"))), first


def _burst(metric: str) -> Buy:
    """A short burst (one to two minutes) of `metric` at tens of times the LIVE's own rate, viewers flat."""

    def buy(world: World, rng: random.Random, first: int, n: int) -> tuple[BoughtEngagement, int]:
        last = min(n - 1, first + rng.randint(*world.knob(INFLATION, "burst_ticks")) - 1)
        return BoughtEngagement(metric, first, last, rng.uniform(*world.knob(INFLATION, "burst_factor"))), first

    return buy


BUYS: dict[str, Buy] = {
    "bought_viewers": bought_viewers, "bought_followers": bought_followers, "bought_likes": bought_likes,
    "like_and_follow_burst": _burst("likes_and_followers"), "short_follow_burst": _burst("followers"),
    "slow_viewer_ramp": slow_viewer_ramp,
}


def engagement_inflation(pop: Population, i: int) -> Plan:
    world = pop.world
    rng = pop.rng("abuse", INFLATION, i)
    creator = pop.add_creator()
    spec = planned_live(pop, creator, rng, world.knob(INFLATION, "live_minutes"))
    ticks = stats_ticks(pop.seed, spec.live_id, spec.start, spec.end)
    n = len(ticks)
    first = rng.randint(min(18, n // 3), max(min(18, n // 3), min(int(0.55 * n), n - 3)))
    spec.bought, evidence = BUYS[world.variant(INFLATION, i)](world, rng, first, n)
    return Plan(labels=[Label(creator.ref, INFLATION, ticks[evidence])],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def misleading_price_claim(pop: Population, i: int) -> Plan:
    """A host states a price below what the shop's listing charges, or a former price it never charged.

    The first line is false (evidence_ts); later lines repeat the claim or state the exact price.
    """
    world = pop.world
    rng = pop.rng("abuse", PRICE_CLAIM, i)
    creator = pop.add_creator(extra=True)  # with a shop of its own (`extra`: see Account)
    shop = shop_for(pop, creator)
    spec = planned_live(pop, creator, rng, world.knob(PRICE_CLAIM, "live_minutes"))
    variant = world.variant(PRICE_CLAIM, i)
    times = times_in_live(pop, spec, rng, rng.randint(*world.knob(PRICE_CLAIM, "utterances")))
    kinds = [variant] + [variant if rng.random() < 0.6 else "exact" for _ in times[1:]]
    talk = ListingTalk(shop, pop.rng("abuse-run", PRICE_CLAIM, i), share=world.knob(PRICE_CLAIM, "lower_share"),
                       was_factor=world.knob(PRICE_CLAIM, "was_factor"))
    spec.scripted = tuple(Scripted(t, "transcript" if rng.random() < 0.65 else "host_comment", partial(talk.say, kind))
                          for t, kind in zip(times, kinds, strict=True))
    return Plan(labels=[Label(creator.ref, PRICE_CLAIM, times[0])],
                scripts=[(spec.start, partial(live_script, spec=spec))])
