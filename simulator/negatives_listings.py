"""Honest sellers whose listings and orders look like abuse: sales, clearances, relists, pricey product
types, brand resellers, demand rushes, colour variants and words that sound banned."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from simulator.catalog import image_hash, listing_title
from simulator.market import Market, lower_price, start_sale
from simulator.population import Listing, Population, Seller, token
from simulator.scenario import (
    HardNegative,
    HonestVolunteers,
    Plan,
    every,
    everyday_listing,
    order_burst,
    paced_times,
)
from simulator.timeline import DAY, HOUR, MINUTE, Script


def publish_titled(m: Market, seller: Seller, title: str, category: str, price: float, rng: random.Random,
                   brand: str | None = None, product_type: str | None = None) -> Listing:
    """`listing.created` of an honest listing with a given title and price."""
    return m.publish(seller, Listing(m.new_listing_id(seller), title, category, brand, price, image_hash(rng),
                                     rng.randint(10, 80), product_type=product_type))


def genuine_flash_sale(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """A sale (real "was" price), then 40-150 orders within 10-30 minutes from distinct, long-standing buyers."""
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
    """3-8 listings marked down 40-75% for good, "was" = the real previous price."""
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


def restock_relist(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """A sold-out listing comes back 2-3 times, hours apart, with a similar title and a new photo each time."""
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
        title = f"{base.title} {run_rng.choice(m.world.wording.restock_suffixes)}"
        m.publish(seller, Listing(m.new_listing_id(seller), title, base.category, base.brand,
                                  m.tag(base.price * run_rng.uniform(0.95, 1.08)), image_hash(run_rng),
                                  run_rng.randint(10, 60), product_type=base.product_type))

    return Plan(hard_negatives=[HardNegative(seller.ref, "restock_relist")],
                scripts=[(times[0], every(times, relist))])


def premium_brand_sellers(pop: Population) -> Plan:
    """Every premium seller: protected brands at their going rates, from the warm-up on."""
    return Plan(hard_negatives=[HardNegative(s.ref, "premium_brand_seller") for s in pop.honest_sellers if s.premium])


# ---- newer look-alikes: played by actors cast for them (`extra`, so the older stream stays as it was) ----


def newcomer_posts(pop: Population, scenario: str, i: int, count: tuple[int, int], gaps: tuple[int, int],
                   make_post: Callable[[Seller, random.Random], Callable[[Market, int], None]],
                   span: int = HOUR) -> Plan:
    """A seller cast for the scenario publishes `count` listings `gaps` minutes apart within `span`;
    `make_post(seller, rng)` returns what publishes the k-th one."""
    rng = pop.rng("negative", scenario, i)
    seller = pop.add_seller(extra=True)
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(span)), rng.randint(*count), gaps)
    post = make_post(seller, pop.rng("negative-run", scenario, i))
    return Plan(hard_negatives=[HardNegative(seller.ref, scenario)], scripts=[(times[0], every(times, post))])


def expensive_product_type(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """A specialist lists 2-5 items of a product type several times its category's going rate (a standing
    desk among home goods), at that type's own going rate."""
    world = pop.world

    def make_post(seller: Seller, rng: random.Random) -> Callable[[Market, int], None]:
        pricey = [c for c in world.categories if c.specialist_types]
        category = rng.choice([c for c in pricey if c.name in seller.categories] or pricey)
        product_type = rng.choice(category.specialist_types)
        brands = [b for c, b, _ in seller.brands if c == category.name] or [None]

        def specialist_listing(m: Market, k: int) -> None:
            brand = rng.choice(brands)
            title = listing_title(rng, world, category, brand, product_type)
            rate = category.going_rate * category.factor(product_type)
            spread = max(-1.5, min(1.5, rng.gauss(0, 1)))
            price = m.tag(rate * math.exp(category.sigma(product_type, 0.2) * spread))
            publish_titled(m, seller, title, category.name, price, rng, brand, product_type.name)

        return specialist_listing

    return newcomer_posts(pop, "expensive_product_type", i, (2, 5), (2, 20), make_post)


def genuine_sale_after_history(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """An honest 5-12% price rise, held for hours (at least two in a 6-hour stream), then a 20-45% sale whose
    "was" is that long-charged price; the sale price is below the price before the rise too."""
    rng = pop.rng("negative", "genuine_sale_after_history", i)
    seller = pop.add_seller(extra=True)
    held = pop.window.fit(rng.randint(120, 200) * MINUTE, share=0.6)
    rise_at = pop.window.pick_start(rng, held)
    run_rng = pop.rng("negative-run", "genuine_sale_after_history", i)
    taken: list[Listing] = []

    def step(m: Market, k: int) -> None:
        if k == 0:
            taken.append(everyday_listing(m, seller, run_rng))
            taken[0].price = m.tag(taken[0].price * run_rng.uniform(1.05, 1.12))
        else:
            listing = taken[0]
            listing.original_price = listing.price
            listing.price = lower_price(m, listing.price, 1 - run_rng.uniform(0.2, 0.45))
        m.republish(seller, taken[0])

    return Plan(hard_negatives=[HardNegative(seller.ref, "genuine_sale_after_history")],
                scripts=[(rise_at, every([rise_at, rise_at + held], step))])


def authorized_reseller(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """An everyday shop that also stocks 2-4 protected-brand items, at the brand's going rate."""
    world = pop.world

    def make_post(seller: Seller, rng: random.Random) -> Callable[[Market, int], None]:
        def branded_listing(m: Market, k: int) -> None:
            category = world.category[rng.choice(world.premium_categories)]
            brand, rate = rng.choice(world.premium[category.name])
            product_type = category.pick_type(rng)
            title = listing_title(rng, world, category, brand, product_type)
            price = m.tag(rate * category.factor(product_type) * rng.lognormvariate(0.0, 0.15))
            publish_titled(m, seller, title, category.name, price, rng, brand, product_type.name)

        return branded_listing

    return newcomer_posts(pop, "authorized_reseller", i, (2, 4), (3, 25), make_post)


def brand_outlet_clearance(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """A premium seller clears 2-6 protected-brand listings at 40-65% off for good ("was" = the real price):
    still 35-60% of the brand's going rate, far above any counterfeit's."""
    rng = pop.rng("negative", "brand_outlet_clearance", i)
    seller = pop.add_seller(extra=True, premium=True)
    start = pop.window.pick_start(rng, 0)
    run_rng = pop.rng("negative-run", "brand_outlet_clearance", i)

    def clearance(m: Market) -> Script:
        own = [lst for lst in seller.listings if not lst.reserved and lst.original_price is None]
        for listing in start_sale(m, seller, run_rng.sample(own, min(len(own), run_rng.randint(2, 6))), run_rng,
                                  depth=(0.4, 0.65), lasts=None):
            listing.reserved = True
        yield from ()

    return Plan(hard_negatives=[HardNegative(seller.ref, "brand_outlet_clearance")], scripts=[(start, clearance)])


def first_order_promo(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """A welcome coupon brings 20-50 brand-new buyer accounts (0-3 days old) within 20-40 minutes; each has
    its own device, card and address."""
    rng = pop.rng("negative", "first_order_promo", i)
    seller = pop.add_seller(extra=True)
    span = pop.window.fit(rng.randint(20, 40) * MINUTE)
    start = pop.window.pick_start(rng, span)
    times = sorted(start + rng.randint(0, span) for _ in range(rng.randint(20, 50)))
    newcomers = [(pop.buyer_ids.take("B"), rng.randint(0, 3), token(rng, "d"), token(rng, "sa"), token(rng, "pm"))
                 for _ in times]
    run_rng = pop.rng("negative-run", "first_order_promo", i)

    def promo(m: Market) -> Script:
        for t, (buyer, age, device, address, payment) in zip(times, newcomers, strict=True):
            yield t
            stocked = [lst for lst in seller.listings if lst.stock > 0]
            if stocked:
                m.place_order_as(t, seller, run_rng.choice(stocked), 1, buyer, age + (t - start) // DAY, device,
                                 address, payment)

    return Plan(hard_negatives=[HardNegative(seller.ref, "first_order_promo")], scripts=[(start, promo)])


def modest_raise_in_demand(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """Real buyers rush one listing (25-60 orders in 15-30 minutes); the seller raises it 10-25% meanwhile."""
    rng = pop.rng("negative", "modest_raise_in_demand", i)
    seller = pop.add_seller(extra=True)
    span = pop.window.fit(rng.randint(15, 30) * MINUTE)
    start = pop.window.pick_start(rng, span)
    orders = sorted(start + rng.randint(0, span) for _ in range(rng.randint(25, 60)))
    raise_at = start + int(span * rng.uniform(0.3, 0.7))
    run_rng = pop.rng("negative-run", "modest_raise_in_demand", i)

    def rush(m: Market) -> Script:
        listing = everyday_listing(m, seller, run_rng)
        m.tl.spawn(order_burst(m, seller, listing, orders, run_rng), at=start)
        yield raise_at
        listing.price = m.tag(listing.price * run_rng.uniform(1.10, 1.25))
        m.republish(seller, listing)

    return Plan(hard_negatives=[HardNegative(seller.ref, "modest_raise_in_demand")], scripts=[(start, rush)])


def colour_variants_listing(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """One product listed in 4-7 colours within minutes: titles differ by the colour, each has its own photo."""
    colours = pop.world.titles.colors

    def make_post(seller: Seller, rng: random.Random) -> Callable[[Market, int], None]:
        shades = rng.sample(colours, len(colours))
        model: list[Listing] = []

        def variant(m: Market, k: int) -> None:
            if not model:
                model.append(m.ordinary_listing(seller, rng))
            base = model[0]
            title = f"{base.title.partition(' - ')[0].partition(' (')[0]} - {shades[k % len(shades)]}"
            publish_titled(m, seller, title, base.category, base.price, rng, base.brand, base.product_type)

        return variant

    return newcomer_posts(pop, "colour_variants_listing", i, (4, 7), (0, 3), make_post, span=30 * MINUTE)


def innocent_lookalike_words(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """1-3 honest listings whose titles contain a banned-sounding word ("glue gun", "ivory throw")."""
    world = pop.world

    def make_post(seller: Seller, rng: random.Random) -> Callable[[Market, int], None]:
        def lookalike(m: Market, k: int) -> None:
            item = rng.choice(world.wording.lookalike_titles)
            rate = world.category[item.category].going_rate
            publish_titled(m, seller, item.title, item.category, m.tag(rate * rng.lognormvariate(0.0, 0.3)), rng)

        return lookalike

    return newcomer_posts(pop, "innocent_lookalike_words", i, (1, 3), (5, 30), make_post)
