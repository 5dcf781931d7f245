"""Hard negatives: honest actors who look suspicious. None of them is ever labelled.

Each scenario is played by honest actors taken from the ordinary population
(never an injected abuser), after the first hour like the abuse:

- organic_viral_live: the real audience of a LIVE grows 10-20x over 5-15
  minutes, and likes, comments, distinct commenters and orders grow with it.
- genuine_flash_sale: a sale (real "was" price), then 40-150 orders within
  10-30 minutes from distinct, long-standing buyer accounts.
- premium_brand_seller: every premium seller: luxury brands at their real price level.
- legitimate_clearance: 3-8 listings marked down 40-75%, "was" = the real previous price.
- traveller_login: a sign-in from abroad on a new device with no payout change,
  or with a payout change hours later, after signing in at home again.
- restock_relist: a sold-out listing comes back 2-3 times, hours apart, with a
  similar title and a new photo each time.
- viewer_asks_whatsapp: viewers ask for outside contact (`by_host` false) and
  the host declines without naming any app.
- honest_health_talk: ordinary wellness talk ("this moisturizer helps dry
  skin") on a LIVE, or in a seller's listing titles.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

from simulator.catalog import image_hash, retail_price
from simulator.live import Scripted, ViralSurge, live_script, stats_ticks
from simulator.market import Market, start_sale
from simulator.phrases import (
    HONEST_HEALTH_LINES,
    HONEST_HEALTH_TITLES,
    HOST_DECLINES_COMMENTS,
    HOST_DECLINES_LINES,
    VIEWER_CONTACT_ASKS,
)
from simulator.population import TRAVEL_COUNTRIES, Creator, Listing, Population, Seller, ip_in, token
from simulator.scenario import HardNegative, Plan, every, paced_times, planned_live, times_in_live
from simulator.timeline import HOUR, MINUTE, Script

SCENARIOS = (
    "organic_viral_live", "genuine_flash_sale", "premium_brand_seller", "legitimate_clearance", "traveller_login",
    "restock_relist", "viewer_asks_whatsapp", "honest_health_talk",
)


class HonestVolunteers:
    """Hands out honest actors for scenarios, each at most once while any are left."""

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


def organic_viral_live(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    rng = pop.rng("negative", "organic_viral_live", i)
    creator = who.creator()
    spec = planned_live(pop, creator, rng, (50, 100))
    n = len(stats_ticks(pop.seed, spec.live_id, spec.start, spec.end))
    first = rng.randint(min(24, n // 4), max(min(24, n // 4), int(0.35 * n)))
    spec.viral = ViralSurge(first, max(2, min(rng.randint(30, 90), n - first - 1)), rng.uniform(10.0, 20.0))
    return Plan(hard_negatives=[HardNegative(creator.ref, "organic_viral_live")],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def genuine_flash_sale(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    rng = pop.rng("negative", "genuine_flash_sale", i)
    seller = who.seller()
    span = pop.window.fit(rng.randint(10, 30) * MINUTE)
    start = pop.window.pick_start(rng, span + 2 * MINUTE)
    n_orders = rng.randint(40, 150)
    order_times = sorted(start + 2 * MINUTE + rng.randint(0, span) for _ in range(n_orders))
    run_rng = pop.rng("negative-run", "genuine_flash_sale", i)

    def flash_sale(m: Market) -> Script:
        own = [lst for lst in seller.listings if not lst.reserved and lst.original_price is None]
        on_sale = start_sale(m, seller, run_rng.sample(own, min(len(own), run_rng.randint(1, 3))), run_rng,
                             depth=(0.2, 0.5), lasts=(HOUR, 2 * HOUR))
        for listing in on_sale:
            listing.stock += n_orders
        shoppers = run_rng.sample(m.buyers.independent, min(n_orders, len(m.buyers.independent)))
        for t, buyer in zip(order_times, shoppers, strict=False):  # a small pool: fewer orders
            yield t
            if on_sale:
                m.place_order(t, seller, run_rng.choice(on_sale), buyer, run_rng)

    return Plan(hard_negatives=[HardNegative(seller.ref, "genuine_flash_sale")], scripts=[(start, flash_sale)])


def legitimate_clearance(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    rng = pop.rng("negative", "legitimate_clearance", i)
    seller = who.seller()
    start = pop.window.pick_start(rng, 0)
    run_rng = pop.rng("negative-run", "legitimate_clearance", i)

    def clearance(m: Market) -> Script:
        own = [lst for lst in seller.listings if not lst.reserved and lst.original_price is None]
        marked_down = start_sale(m, seller, run_rng.sample(own, min(len(own), run_rng.randint(3, 8))), run_rng,
                                 depth=(0.4, 0.75), lasts=None)
        for listing in marked_down:
            listing.reserved = True  # stays on clearance
        yield from ()

    return Plan(hard_negatives=[HardNegative(seller.ref, "legitimate_clearance")], scripts=[(start, clearance)])


def traveller_login(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    rng = pop.rng("negative", "traveller_login", i)
    actor = who.seller() if i % 2 == 0 else who.creator()
    account = actor.account
    account.logs_in_early, account.may_change_payout = True, False
    pays_later = (i // 2 + i) % 2 == 1  # sellers and creators, each both ways
    span = pop.window.fit(3.5 * HOUR if pays_later else 2 * HOUR, share=0.9)
    abroad_at = pop.window.pick_start(rng, span)
    country = rng.choice([c for c in TRAVEL_COUNTRIES if c != account.country])
    home_again = abroad_at + int(span * rng.uniform(0.6, 0.8))
    new_hash_at = home_again + int(span * rng.uniform(0.05, 0.15))
    again_abroad = abroad_at + rng.randint(20, 100) * MINUTE
    run_rng = pop.rng("negative-run", "traveller_login", i)

    def travel(m: Market) -> Script:
        device, ip = token(run_rng, "d"), ip_in(run_rng, country)  # a hotel, a new phone
        m.sign_in(account, device, ip, country)
        if not pays_later:
            yield again_abroad
            m.sign_in(account, device, ip, country)
            return
        yield home_again
        m.sign_in(account, account.devices[0], account.ips[0], account.country)
        yield new_hash_at
        m.change_payout(account, f"po-{run_rng.getrandbits(40):010x}")

    return Plan(hard_negatives=[HardNegative(account.ref, "traveller_login")], scripts=[(abroad_at, travel)])


def restock_relist(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    rng = pop.rng("negative", "restock_relist", i)
    seller = who.seller()
    span = pop.window.fit(4 * HOUR, share=0.9)  # hours apart, as far as the stream allows
    gaps = (max(1, span // MINUTE // 4), max(2, span // MINUTE // 3))  # about an hour apart in a 6-hour stream
    times = paced_times(rng, pop.window.pick_start(rng, span), rng.randint(3, 4), gaps)
    run_rng = pop.rng("negative-run", "restock_relist", i)
    sold_out: list[Listing] = []

    def relist(m: Market, k: int) -> None:
        if k == 0:  # the original sells out and is taken down
            own = [lst for lst in seller.listings if not lst.reserved]
            if own:
                original = run_rng.choice(own)
                original.reserved = True
                m.unpublish(seller, original)
                sold_out.append(original)
            return
        if not sold_out:
            return
        base = sold_out[0]
        title = f"{base.title} {run_rng.choice(('(Restock)', '- New Batch', '- Back in Stock', 'v2'))}"
        m.publish(seller, Listing(m.new_listing_id(seller), title, base.category, base.brand,
                                  retail_price(base.price * run_rng.uniform(0.95, 1.08)), image_hash(run_rng),
                                  run_rng.randint(10, 60)))

    return Plan(hard_negatives=[HardNegative(seller.ref, "restock_relist")],
                scripts=[(times[0], every(times, relist))])


def viewer_asks_whatsapp(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    rng = pop.rng("negative", "viewer_asks_whatsapp", i)
    creator = who.creator()
    spec = planned_live(pop, creator, rng, (40, 90))
    lines = []
    for t in times_in_live(pop, spec, rng, rng.randint(2, 5)):
        lines.append(Scripted(t - 3_000, "viewer_comment", rng.choice(VIEWER_CONTACT_ASKS)))
        lines.append(Scripted(t + rng.randint(2_000, 6_000), "host_comment", rng.choice(HOST_DECLINES_COMMENTS))
                     if rng.random() < 0.5 else
                     Scripted(t + rng.randint(2_000, 6_000), "transcript", rng.choice(HOST_DECLINES_LINES)))
    spec.scripted = tuple(sorted(lines, key=lambda line: line.ts))
    return Plan(hard_negatives=[HardNegative(creator.ref, "viewer_asks_whatsapp")],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def honest_health_talk(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    rng = pop.rng("negative", "honest_health_talk", i)
    if i % 2 == 0:
        creator = who.creator()
        spec = planned_live(pop, creator, rng, (30, 80))
        spec.topic_lines = HONEST_HEALTH_LINES
        spec.scripted = tuple(Scripted(t, "transcript", rng.choice(HONEST_HEALTH_LINES))
                              for t in times_in_live(pop, spec, rng, rng.randint(2, 4)))
        return Plan(hard_negatives=[HardNegative(creator.ref, "honest_health_talk")],
                    scripts=[(spec.start, partial(live_script, spec=spec))])
    seller = who.seller()
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(HOUR)), rng.randint(1, 3), (5, 40))
    run_rng = pop.rng("negative-run", "honest_health_talk", i)

    def wellness_listing(m: Market, k: int) -> None:
        title, category = run_rng.choice(HONEST_HEALTH_TITLES)
        m.publish(seller, Listing(m.new_listing_id(seller), title, category, None,
                                  retail_price(run_rng.lognormvariate(2.7, 0.35)), image_hash(run_rng),
                                  run_rng.randint(10, 80)))

    return Plan(hard_negatives=[HardNegative(seller.ref, "honest_health_talk")],
                scripts=[(times[0], every(times, wellness_listing))])


def premium_brand_sellers(pop: Population) -> Plan:
    return Plan(hard_negatives=[HardNegative(s.ref, "premium_brand_seller") for s in pop.honest_sellers if s.premium])


_PLANNERS: dict[str, Callable[[Population, HonestVolunteers, int], Plan]] = {
    "organic_viral_live": organic_viral_live,
    "genuine_flash_sale": genuine_flash_sale,
    "legitimate_clearance": legitimate_clearance,
    "traveller_login": traveller_login,
    "restock_relist": restock_relist,
    "viewer_asks_whatsapp": viewer_asks_whatsapp,
    "honest_health_talk": honest_health_talk,
}


def plan_hard_negatives(pop: Population, per_scenario: int) -> list[Plan]:
    who = HonestVolunteers(pop, pop.rng("negative", "volunteers"))
    plans = [premium_brand_sellers(pop)]
    for planner in _PLANNERS.values():
        plans += [planner(pop, who, i) for i in range(per_scenario)]
    return plans
