"""Sellers' listing abuse: counterfeits, banned items, spam bursts, gouging and fake discounts.

Each planner fixes who, when and which variant at cast time (so `labels()` knows
every evidence_ts) and plays it on the timeline; `simulator/abuse.py` says
what each variant's evidence_ts is.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from simulator.catalog import image_hash, listing_title, similar_image_hash
from simulator.market import Market
from simulator.phrases import OBFUSCATION_STYLES, obfuscate
from simulator.population import Listing, Population, Seller
from simulator.scenario import (
    Label,
    Plan,
    every,
    everyday_listing,
    is_blatant,
    order_burst,
    paced_times,
    spread,
    take_over_listing,
    within,
)
from simulator.timeline import MINUTE, Script
from simulator.world import ProhibitedItem

COUNTERFEIT, PROHIBITED, SPAM = "counterfeit_listing", "prohibited_listing", "listing_spam"
GOUGING, FAKE_DISCOUNT = "price_gouging", "fake_discount"

# ---- counterfeits ------------------------------------------------------------------------------

# Counterfeit variants: (price share knob, replica wording?, brand field set?)
_COUNTERFEIT_STYLE = {
    "cheap_protected": ("price_share", False, True), "replica_words": ("words_share", True, True),
    "replica_words_cheap": ("price_share", True, True), "few_percent_no_words": ("few_percent_share", False, True),
    "brand_in_title_only": ("words_share", True, False),
}


def counterfeit_listing_for(m: Market, seller: Seller, rng: random.Random, variant: str, replica_word: str) -> Listing:
    """A protected brand sold as a replica, or at a small share of the brand's going rate for the product type."""
    world = m.world
    share_knob, replica, brand_field = _COUNTERFEIT_STYLE[variant]
    category_name = rng.choice(world.premium_categories)
    brand, level = rng.choice(world.premium[category_name])
    category = world.category[category_name]
    share = rng.uniform(*world.knob(COUNTERFEIT, share_knob))
    product_type = category.pick_type(rng)
    if not replica:
        title = listing_title(rng, world, category, brand, product_type)
    else:
        named = rng.choice([brand] + world.protected[brand].aliases) if not brand_field else brand
        title = (rng.choice(world.wording.replica_titles).replace("{brand}", named)
                 .replace("{noun}", product_type.name).replace("{word}", replica_word))
    return Listing(m.new_listing_id(seller), title, category_name, brand if brand_field else None,
                   m.tag(level * category.factor(product_type) * share), image_hash(rng), rng.randint(20, 200),
                   reserved=True, product_type=product_type.name)


def counterfeit_listing(pop: Population, i: int) -> Plan:
    world = pop.world
    rng = pop.rng("abuse", COUNTERFEIT, i)
    seller = pop.add_seller()
    variant = world.variant(COUNTERFEIT, i)
    word = rng.choice(world.wording.replica_words)
    count = rng.randint(3, 6) if is_blatant(rng) else rng.randint(1, 2)
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(90 * MINUTE)), count, (3, 30))
    run_rng = pop.rng("abuse-run", COUNTERFEIT, i)

    def post(m: Market, k: int) -> None:
        m.publish(seller, counterfeit_listing_for(m, seller, run_rng, variant, word))

    return Plan(labels=[Label(seller.ref, COUNTERFEIT, times[0])], scripts=[(times[0], every(times, post))])


# ---- banned items --------------------------------------------------------------------------------


def prohibited_listing_for(m: Market, seller: Seller, rng: random.Random, item: ProhibitedItem, style: str,
                           cover: str | None = None) -> Listing:
    """A banned item with its keyword disguised in `style`; `cover` is an ordinary title it hides behind."""
    joiner = "  " if style == "spaced" else " "  # keep the words apart when the letters are spaced
    disguised = joiner.join(obfuscate(word, style) for word in item.keyword.split())
    title = item.template.replace("{kw}", disguised)
    title = title[0].upper() + title[1:]
    if cover is not None:
        title = f"{cover} | {title[0].lower()}{title[1:]}"
    return Listing(m.new_listing_id(seller), title, item.category, None, m.tag(rng.uniform(*item.price)),
                   image_hash(rng), rng.randint(1, 20), reserved=True)


def prohibited_listing(pop: Population, i: int) -> Plan:
    world = pop.world
    items = world.wording.prohibited_items
    rng = pop.rng("abuse", PROHIBITED, i)
    seller = pop.add_seller(catalog=(2, 15))
    style = rng.choice(OBFUSCATION_STYLES)
    variant = world.variant(PROHIBITED, i)
    if variant != "disguised_keyword":
        style = "plain"
    classes = list(dict.fromkeys(item.banned for item in items))
    banned_class = classes[i % len(classes)]
    chosen = [rng.choice([item for item in items if item.banned == banned_class])]
    chosen += rng.sample(items, rng.randint(*world.knob(PROHIBITED, "extra_items")))
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(90 * MINUTE)), len(chosen), (4, 30))
    run_rng = pop.rng("abuse-run", PROHIBITED, i)

    def post(m: Market, k: int) -> None:
        cover = m.ordinary_listing(seller, run_rng).title if variant == "buried_in_ordinary_title" else None
        m.publish(seller, prohibited_listing_for(m, seller, run_rng, chosen[k], style, cover))

    return Plan(labels=[Label(seller.ref, PROHIBITED, times[0])], scripts=[(times[0], every(times, post))])


# ---- spam -------------------------------------------------------------------------------------------


def near_duplicate_title(rng: random.Random, title: str, k: int, emoji: list[str], marks: list[str]) -> str:
    """The same title, changed only by a number, an emoji or the order of its words."""
    roll = rng.random()
    if roll < 0.35:
        return f"{title} {rng.choice(marks)}{k + rng.randint(1, 9)}"
    if roll < 0.65:
        mark = rng.choice(emoji)
        return f"{mark} {title} {mark}" if rng.random() < 0.5 else f"{title} {mark}{mark}"
    head, _, tail = title.partition(" - ")
    words = head.split()
    rng.shuffle(words)
    return " ".join(words) + (f" - {tail}" if tail else "")


def _spam_copy(m: Market, seller: Seller, base: Listing, rng: random.Random, k: int, variant: str) -> Listing:
    """The k-th copy of a spammer's listing: same photo (or a re-shot one), title barely changed."""
    words = m.world.wording
    photo = base.image_hash
    if variant == "colour_cycle_spam":
        title = f"{base.title.partition(' - ')[0]} - {words.spam_variants[k % len(words.spam_variants)]}"
    else:
        title = near_duplicate_title(rng, base.title, k, words.spam_emoji, words.spam_number_marks)
    if variant == "perceptual_near_duplicate":
        photo = similar_image_hash(rng, base.image_hash)
    return Listing(m.new_listing_id(seller), title, base.category, base.brand, m.tag(base.price * rng.uniform(0.95, 1.05)),
                   photo, rng.randint(5, 100), reserved=True, product_type=base.product_type)


def listing_spam(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", SPAM, i)
    seller = pop.add_seller()
    variant = pop.world.variant(SPAM, i)
    n = rng.randint(*pop.world.knob(SPAM, "listings"))
    minutes = pop.world.knob(SPAM, "drip_minutes" if variant == "slow_drip" else "minutes")
    span = pop.window.fit(rng.randint(*minutes) * MINUTE)
    times = spread(rng, pop.window.pick_start(rng, span), span, n)
    run_rng = pop.rng("abuse-run", SPAM, i)
    template: list[Listing] = []

    def spam(m: Market, k: int) -> None:
        if not template:
            template.append(m.ordinary_listing(seller, run_rng))
        m.publish(seller, _spam_copy(m, seller, template[0], run_rng, k, variant))

    return Plan(labels=[Label(seller.ref, SPAM, times[4])], scripts=[(times[0], every(times, spam))])


# ---- price gouging -----------------------------------------------------------------------------------


def _steep_raise(m: Market, seller: Seller, listing: Listing, factor: float) -> None:
    """An in-stock listing's price multiplied by `factor` in one step."""
    listing.stock = listing.stock or 20
    listing.price = m.tag(listing.price * factor)
    m.republish(seller, listing)


def _overpriced_listing(m: Market, seller: Seller, rng: random.Random) -> Listing:
    """A new ordinary-brand listing at several times its product type's going rate."""
    world = m.world
    category = world.category[rng.choice(seller.categories)]
    cheap_brands = [b for c, b, level in seller.brands if c == category.name and level <= category.going_rate]
    brand = rng.choice(cheap_brands) if cheap_brands else None
    product_type = category.pick_type(rng)
    title = listing_title(rng, world, category, brand, product_type)
    rate = category.going_rate * category.factor(product_type)
    return Listing(m.new_listing_id(seller), title, category.name, brand,
                   m.tag(rate * rng.uniform(*world.knob(GOUGING, "overprice_factor"))), image_hash(rng),
                   rng.randint(3, 40), reserved=True, product_type=product_type.name)


def _gouge_once(variant: str, seller: Seller, rng: random.Random) -> Callable[[Market, int], None]:
    """steep_raise / overpriced_new_listing: one offending listing event per time."""

    def gouge(m: Market, k: int) -> None:
        listing = take_over_listing(seller, rng) if variant == "steep_raise" else None
        if listing is not None:
            listing.stock = listing.stock or rng.randint(5, 30)
            listing.original_price = None
            listing.price = m.tag(listing.price * rng.uniform(*m.world.knob(GOUGING, "raise_factor")))
            m.republish(seller, listing)
            return
        m.publish(seller, _overpriced_listing(m, seller, rng))

    return gouge


def _raise_in_demand_spike(pop: Population, seller: Seller, i: int) -> tuple[int, int, Callable[[Market], Script]]:
    """Real buyers rush one listing; partway through the rush the seller multiplies its price (evidence)."""
    rng = pop.rng("abuse", GOUGING, "spike", i)
    world = pop.world
    span = pop.window.fit(rng.randint(*world.knob(GOUGING, "spike_minutes")) * MINUTE)
    start = pop.window.pick_start(rng, span)
    orders = sorted(start + rng.randint(0, span) for _ in range(rng.randint(*world.knob(GOUGING, "spike_orders"))))
    raise_at = start + int(span * rng.uniform(0.35, 0.6))
    factor = rng.uniform(*world.knob(GOUGING, "spike_raise"))
    run_rng = pop.rng("abuse-run", GOUGING, "spike", i)

    def rush(m: Market) -> Script:
        listing = everyday_listing(m, seller, run_rng)
        m.tl.spawn(order_burst(m, seller, listing, orders, run_rng), at=start)
        yield raise_at
        _steep_raise(m, seller, listing, factor)

    return start, raise_at, rush


def _stepwise_raise(pop: Population, seller: Seller, i: int) -> tuple[int, int, Callable[[Market], Script]]:
    """Two or three raises minutes apart, the earlier ones small, together >= 3.3x (evidence: the last)."""
    rng = pop.rng("abuse", GOUGING, "steps", i)
    world = pop.world
    steps = [rng.uniform(*world.knob(GOUGING, "step_factor")) for _ in range(rng.randint(1, 2))]
    so_far = 1.0
    for factor in steps:
        so_far *= factor
    steps.append(rng.uniform(*world.knob(GOUGING, "total_raise")) / so_far)
    times = within(paced_times(rng, pop.window.pick_start(rng, pop.window.fit(45 * MINUTE)), len(steps), (5, 15)),
                   pop.window)
    run_rng = pop.rng("abuse-run", GOUGING, "steps", i)
    taken: list[Listing] = []

    def step(m: Market, k: int) -> None:
        if not taken:
            taken.append(everyday_listing(m, seller, run_rng))
        _steep_raise(m, seller, taken[0], steps[k])

    return times[0], times[-1], every(times, step)


def price_gouging(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", GOUGING, i)
    seller = pop.add_seller(catalog=(4, 40))
    variant = pop.world.variant(GOUGING, i)
    if variant in ("raise_in_demand_spike", "stepwise_raise"):
        plan = _raise_in_demand_spike if variant == "raise_in_demand_spike" else _stepwise_raise
        start, evidence, script = plan(pop, seller, i)
        return Plan(labels=[Label(seller.ref, GOUGING, evidence)], scripts=[(start, script)])
    count = rng.randint(2, 3) if is_blatant(rng) else 1
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(60 * MINUTE)), count, (5, 30))
    gouge = _gouge_once(variant, seller, pop.rng("abuse-run", GOUGING, i))
    return Plan(labels=[Label(seller.ref, GOUGING, times[0])], scripts=[(times[0], every(times, gouge))])


# ---- fake discounts ----------------------------------------------------------------------------------


def _inflated_was(m: Market, seller: Seller, rng: random.Random, variant: str) -> None:
    """inflated_was_existing / was_slightly_above_max: a "was" above anything the listing ever charged."""
    listing = take_over_listing(seller, rng)
    if listing is None:
        _invented_was_new(m, seller, rng)
        return
    slightly = variant == "was_slightly_above_max"
    if rng.random() < 0.5 or slightly:
        listing.price = m.tag(listing.price * rng.uniform(0.85, 0.98))
    knob = "slightly_above" if slightly else "was_over_highest"
    was = m.tag(listing.highest_price * rng.uniform(*m.world.knob(FAKE_DISCOUNT, knob)))
    listing.original_price = was if was > listing.highest_price else m.tag(listing.highest_price * 1.25)
    m.republish(seller, listing)


def _invented_was_new(m: Market, seller: Seller, rng: random.Random) -> None:
    """A brand-new listing whose "was" is several times comparable items' going rate."""
    listing = m.ordinary_listing(seller, rng)
    category = m.world.category[listing.category]
    level = next((lvl for c, b, lvl in seller.brands if c == listing.category and b == listing.brand),
                 category.going_rate)
    factor = category.factor(category.type_named(listing.product_type))
    listing.original_price = m.tag(max(level, category.going_rate) * factor
                                   * rng.uniform(*m.world.knob(FAKE_DISCOUNT, "new_was_factor")))
    listing.reserved = True
    m.publish(seller, listing)


def _raise_then_discount(pop: Population, seller: Seller, i: int,
                         times: list[int]) -> tuple[list[int], int, Callable[[Market, int], None]]:
    """Raise a listing's price, hold it briefly, then "discount" back to about the old price with the
    raised price as the "was" (evidence: the first such discount). Returns the raise times too."""
    rng = pop.rng("abuse", FAKE_DISCOUNT, "raise", i)
    world = pop.world
    holds = [rng.randint(*world.knob(FAKE_DISCOUNT, "raised_minutes")) * MINUTE for _ in times]
    factors = [rng.uniform(*world.knob(FAKE_DISCOUNT, "raise_factor")) for _ in times]
    squeezed = within(times + [t + hold for t, hold in zip(times, holds, strict=True)], pop.window)
    raises, discounts = squeezed[:len(times)], squeezed[len(times):]
    run_rng = pop.rng("abuse-run", FAKE_DISCOUNT, "raise", i)

    def raise_then_discount(m: Market, k: int) -> None:
        listing = everyday_listing(m, seller, run_rng)
        regular = listing.price
        listing.price = m.tag(regular * factors[k])
        m.republish(seller, listing)
        m.tl.spawn(_discount_back(m, seller, listing, regular, run_rng), at=discounts[k])

    return raises, min(discounts), raise_then_discount


def _discount_back(m: Market, seller: Seller, listing: Listing, regular: float, rng: random.Random) -> Script:
    listing.original_price = listing.price
    listing.price = m.tag(regular * rng.uniform(0.97, 1.0))
    m.republish(seller, listing)
    yield from ()


def fake_discount(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", FAKE_DISCOUNT, i)
    seller = pop.add_seller(catalog=(4, 40))
    variant = pop.world.variant(FAKE_DISCOUNT, i)
    count = rng.randint(2, 4) if is_blatant(rng) else 1
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(60 * MINUTE)), count, (3, 25))
    run_rng = pop.rng("abuse-run", FAKE_DISCOUNT, i)
    evidence = times[0]
    if variant == "raise_then_discount":
        times, evidence, act = _raise_then_discount(pop, seller, i, times)
    elif variant == "invented_was_new":
        def act(m: Market, k: int) -> None:
            _invented_was_new(m, seller, run_rng)
    else:
        def act(m: Market, k: int) -> None:
            _inflated_was(m, seller, run_rng, variant)
    return Plan(labels=[Label(seller.ref, FAKE_DISCOUNT, evidence)], scripts=[(times[0], every(times, act))])
