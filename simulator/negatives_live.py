"""Honest LIVEs that look like abuse: viral audiences, shout-outs, contact requests, health and price talk."""

from __future__ import annotations

from functools import partial

from simulator.live import FollowSpike, Scripted, ViralSurge, live_script, stats_ticks
from simulator.market import Market, lower_price
from simulator.population import Population
from simulator.scenario import (
    HardNegative,
    HonestVolunteers,
    ListingTalk,
    Plan,
    every,
    paced_times,
    planned_live,
    shop_for,
    times_in_live,
)
from simulator.timeline import HOUR, MINUTE


def organic_viral_live(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """The real audience grows 10-20x over 5-15 minutes; likes, chat and orders grow with it."""
    rng = pop.rng("negative", "organic_viral_live", i)
    creator = who.creator()
    spec = planned_live(pop, creator, rng, (50, 100))
    n = len(stats_ticks(pop.seed, spec.live_id, spec.start, spec.end))
    first = rng.randint(min(24, n // 4), max(min(24, n // 4), int(0.35 * n)))
    spec.viral = ViralSurge(first, max(2, min(rng.randint(30, 90), n - first - 1)), rng.uniform(10.0, 20.0))
    return Plan(hard_negatives=[HardNegative(creator.ref, "organic_viral_live")],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def shoutout_follower_spike(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """A shout-out or raid: viewers jump 1.8-3x within 10-20 s and stay, newcomers greet the host in the
    chat, and follows run at 15-40x the usual rate for one to two minutes."""
    rng = pop.rng("negative", "shoutout_follower_spike", i)
    creator = pop.add_creator(extra=True)
    spec = planned_live(pop, creator, rng, (40, 90))
    n = len(stats_ticks(pop.seed, spec.live_id, spec.start, spec.end))
    first = rng.randint(min(24, n // 4), max(min(24, n // 4), int(0.5 * n)))
    spec.viral = ViralSurge(first, rng.randint(1, 2), rng.uniform(1.8, 3.0))
    spec.follow_spike = FollowSpike(first, min(n - 1, first + rng.randint(6, 12) - 1), rng.uniform(15.0, 40.0))
    return Plan(hard_negatives=[HardNegative(creator.ref, "shoutout_follower_spike")],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def viewer_asks_whatsapp(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """Viewers ask for an outside contact (`by_host` false); the host declines without naming any app."""
    words = pop.world.wording
    rng = pop.rng("negative", "viewer_asks_whatsapp", i)
    creator = who.creator()
    spec = planned_live(pop, creator, rng, (40, 90))
    lines = []
    for t in times_in_live(pop, spec, rng, rng.randint(2, 5)):
        lines.append(Scripted(t - 3_000, "viewer_comment", rng.choice(words.viewer_contact_asks)))
        lines.append(Scripted(t + rng.randint(2_000, 6_000), "host_comment", rng.choice(words.host_declines_comments))
                     if rng.random() < 0.5 else
                     Scripted(t + rng.randint(2_000, 6_000), "transcript", rng.choice(words.host_declines_lines)))
    spec.scripted = tuple(sorted(lines, key=lambda line: line.ts))
    return Plan(hard_negatives=[HardNegative(creator.ref, "viewer_asks_whatsapp")],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def honest_health_talk(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """Ordinary wellness talk on a LIVE, or in a seller's listing titles."""
    words = pop.world.wording
    rng = pop.rng("negative", "honest_health_talk", i)
    if i % 2 == 0:
        creator = who.creator()
        spec = planned_live(pop, creator, rng, (30, 80))
        spec.topic_lines = tuple(words.honest_health_lines)
        spec.scripted = tuple(Scripted(t, "transcript", rng.choice(words.honest_health_lines))
                              for t in times_in_live(pop, spec, rng, rng.randint(2, 4)))
        return Plan(hard_negatives=[HardNegative(creator.ref, "honest_health_talk")],
                    scripts=[(spec.start, partial(live_script, spec=spec))])
    from simulator.negatives_listings import publish_titled  # the listing half lives with the listings

    seller = who.seller()
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(HOUR)), rng.randint(1, 3), (5, 40))
    run_rng = pop.rng("negative-run", "honest_health_talk", i)

    def wellness_listing(m: Market, k: int) -> None:
        item = run_rng.choice(words.honest_health_titles)
        publish_titled(m, seller, item.title, item.category, m.tag(m.world.currency.per_usd
                                                                  * run_rng.lognormvariate(2.7, 0.35)), run_rng)

    return Plan(hard_negatives=[HardNegative(seller.ref, "honest_health_talk")],
                scripts=[(times[0], every(times, wellness_listing))])


# ---- price talk: true statements about a listing's price -----------------------------------------------


def _price_talk(pop: Population, who: HonestVolunteers, i: int, scenario: str, kinds: tuple[str, ...]) -> tuple:
    """A creator talking 2-4 times on a LIVE about one listing of its shop, in the given kinds of true line."""
    rng = pop.rng("negative", scenario, i)
    creator = pop.add_creator(extra=True)
    shop = shop_for(pop, creator)
    spec = planned_live(pop, creator, rng, (30, 80))
    talk = ListingTalk(shop, pop.rng("negative-run", scenario, i))
    spec.scripted = tuple(
        Scripted(t, "transcript" if rng.random() < 0.65 else "host_comment", partial(talk.say, rng.choice(kinds)))
        for t in times_in_live(pop, spec, rng, rng.randint(2, 4)))
    plan = Plan(hard_negatives=[HardNegative(creator.ref, scenario)],
                scripts=[(spec.start, partial(live_script, spec=spec))])
    return plan, spec, talk, rng


def exact_price_talk(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """The exact price ("the ceramic vase is only $9.99 today")."""
    return _price_talk(pop, who, i, "exact_price_talk", ("exact",))[0]


def rounded_up_price_talk(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """A round amount above the price, as a limit ("under $10" for 9.99)."""
    return _price_talk(pop, who, i, "rounded_up_price_talk", ("under",))[0]


def local_format_price_talk(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """The exact price in another honest format of the world ("9,99 $", "1.480 ¥"), or converted, rounded
    up, into the currency some viewers think in ("about CA$14")."""
    return _price_talk(pop, who, i, "local_format_price_talk", ("local", "local", "abroad"))[0]


def real_former_price_talk(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """"Was X, now Y" where X is the price the listing really charged until 30-90 minutes before the LIVE
    (a sale with X as its "was", or a permanent price cut)."""
    plan, spec, talk, rng = _price_talk(pop, who, i, "real_former_price_talk", ("real_was", "real_was", "exact"))
    cut_at = max(pop.window.catalog_ready, spec.start - rng.randint(30, 90) * MINUTE)
    as_sale = rng.random() < 0.5

    def cut(m: Market, k: int) -> None:
        listing = talk.pick(m)
        talk.was = listing.price
        if as_sale:
            listing.original_price = listing.price
        listing.price = lower_price(m, listing.price, talk.rng.uniform(0.6, 0.85))
        m.republish(talk.shop, listing)

    plan.scripts.append((cut_at, every([cut_at], cut)))
    return plan
