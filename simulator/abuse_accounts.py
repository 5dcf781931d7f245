"""Abuse in orders and accounts: brushing rings, account takeovers and ban evasion (linked accounts)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulator.abuse_listings import counterfeit_listing_for, prohibited_listing_for
from simulator.catalog import image_hash
from simulator.market import Market
from simulator.population import Listing, Population, Seller, ip_in, token
from simulator.scenario import Label, Plan, paced_times, spread
from simulator.timeline import DAY, MINUTE, Script

BRUSHING, TAKEOVER, LINKED = "order_brushing", "account_takeover", "linked_accounts"

# ---- order brushing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ring:
    """The fake buyers of one brushing variant: how old their accounts are and what they share."""

    ages: tuple[int, int]  # account age in days at the first order
    devices: tuple[int, int]  # devices the ring uses (0: one per account)
    payments: tuple[int, int]
    addresses: tuple[int, int]
    refunds: tuple[float, float]  # share of orders refunded later
    cheap_targets: bool  # brushing cheap listings (its own or its cheapest) rather than everyday ones


RINGS = {
    # Fresh accounts on a few devices, cards and addresses, brushing a cheap listing.
    "fresh_account_ring": Ring((0, 3), (1, 4), (1, 3), (1, 3), (0.3, 0.9), True),
    # Bought aged accounts (months to years old), still sharing a handful of devices and cards.
    "aged_account_ring": Ring((30, 700), (1, 3), (1, 2), (2, 5), (0.1, 0.4), True),
    # "Empty boxes": one device per account, but every parcel goes to one or two addresses, paid by one card.
    "shared_address_ring": Ring((0, 25), (0, 0), (1, 2), (1, 2), (0.0, 0.1), False),
}


def _brushing_targets(m: Market, seller: Seller, rng: random.Random, own_cheap_listing: bool,
                      ring: Ring) -> list[Listing]:
    if own_cheap_listing:
        category = rng.choice(seller.categories)
        return [m.publish(seller, Listing(
            m.new_listing_id(seller), rng.choice(m.world.wording.brushing_titles), category, None,
            m.tag(m.world.currency.per_usd * rng.uniform(1.0, 7.0)), image_hash(rng), 500, reserved=True))]
    own = sorted((lst for lst in seller.listings if not lst.reserved), key=lambda lst: lst.price)
    if not ring.cheap_targets:
        own = rng.sample(own, min(len(own), 3))
    targets = own[:rng.choice((1, 2))] or [m.publish(seller, m.ordinary_listing(seller, rng))]
    for listing in targets:
        listing.reserved = True
        listing.stock = max(listing.stock, 200)
    return targets


def order_brushing(pop: Population, i: int) -> Plan:
    world = pop.world
    ring = RINGS[world.variant(BRUSHING, i)]
    rng = pop.rng("abuse", BRUSHING, i)
    seller = pop.add_seller()
    n_orders = rng.randint(*world.knob(BRUSHING, "orders"))
    span = rng.randint(*world.knob(BRUSHING, "minutes")) * MINUTE
    own_cheap_listing = ring.cheap_targets and rng.random() < 0.5
    lead = rng.randint(10, 60) * MINUTE if own_cheap_listing else 0  # the cheap listing goes up first
    squeeze = pop.window.fit(lead + span) / (lead + span)  # short streams only
    span, lead = int(span * squeeze), int(lead * squeeze)
    first = pop.window.pick_start(rng, lead + span) + lead
    times = spread(rng, first, span, n_orders)
    devices = [token(rng, "d") for _ in range(rng.randint(*ring.devices))]
    payments = [token(rng, "pm") for _ in range(rng.randint(*ring.payments))]
    addresses = [token(rng, "sa") for _ in range(rng.randint(*ring.addresses))]
    n_accounts = max(5, int(n_orders * rng.uniform(0.4, 1.0)))
    accounts = [(pop.buyer_ids.take("B"), rng.randint(*ring.ages),
                 rng.choice(devices) if devices else token(rng, "d"), rng.choice(addresses), rng.choice(payments))
                for _ in range(n_accounts)]
    refund_share = rng.uniform(*ring.refunds)
    run_rng = pop.rng("abuse-run", BRUSHING, i)
    reasons = world.wording.brushing_refund_reasons

    def brush(m: Market) -> Script:
        if not own_cheap_listing:
            yield first
        targets = _brushing_targets(m, seller, run_rng, own_cheap_listing, ring)
        for k, t in enumerate(times):
            yield t
            listing = run_rng.choice(targets)
            buyer_id, age_at_first_order, device, address, payment = accounts[k % len(accounts)]
            order_id = m.place_order_as(t, seller, listing, 1, buyer_id, age_at_first_order + (t - first) // DAY,
                                        device, address, payment)
            if run_rng.random() < refund_share:
                m.refund(t + run_rng.randint(20 * MINUTE, 4 * 60 * MINUTE), order_id, seller, buyer_id,
                         listing.price, run_rng.choice(reasons) or None)

    return Plan(labels=[Label(seller.ref, BRUSHING, times[9])], scripts=[(first - lead, brush)])


# ---- account takeover --------------------------------------------------------------------------


def account_takeover(pop: Population, i: int) -> Plan:
    """A stolen sign-in (new device), then a payout change to the attacker's account (evidence)."""
    world = pop.world
    variant = world.variant(TAKEOVER, i)
    rng = pop.rng("abuse", TAKEOVER, i)
    victim = pop.add_seller() if i % 2 == 0 else pop.add_creator()
    account = victim.account
    account.logs_in_early, account.may_change_payout = True, False
    minutes = world.knob(TAKEOVER, "quick_minutes" if variant == "quick_payout" else "delay_minutes")
    delay = pop.window.fit(rng.randint(minutes[0] * MINUTE, minutes[1] * MINUTE))
    sign_in_at = pop.window.pick_start(rng, delay)
    payout_at = sign_in_at + delay
    if variant == "home_country_proxy":  # a proxy in the victim's own country
        country = account.country
    else:
        country = rng.choice([c for c in world.countries.attacker if c != account.country])
    device, ip = token(rng, "d"), ip_in(rng, country)
    second_sign_in = sign_in_at + rng.randint(1 * MINUTE, 4 * MINUTE) if rng.random() < 0.4 else None
    stolen_hash = token(rng, "po")

    def take_over(m: Market) -> Script:
        m.sign_in(account, device, ip, country)
        if second_sign_in is not None and second_sign_in < payout_at:
            yield second_sign_in
            m.sign_in(account, device, ip, country)
        yield payout_at
        m.change_payout(account, stolen_hash)

    return Plan(labels=[Label(victim.ref, TAKEOVER, payout_at)], scripts=[(sign_in_at, take_over)])


# ---- linked accounts (ban evasion) -----------------------------------------------------------------


def linked_accounts(pop: Population, i: int) -> Plan:
    """Seller A gets itself suspended with severe listings; then new account B ties itself to A."""
    world = pop.world
    words = world.wording
    rng = pop.rng("abuse", LINKED, i)
    window = pop.window
    a = pop.add_seller()
    a.account.logs_in_early, a.account.may_change_payout = True, False
    b = pop.add_b_side("seller" if i % 2 == 0 else "creator", a.account)
    tie_by = world.variant(LINKED, i)

    # Offsets from the scenario's origin; squeezed if the stream is short.
    a_sign_in = rng.randint(1, 10) * MINUTE
    a_payout = a_sign_in + rng.randint(70, 100) * MINUTE
    spree_start = max(window.abuse_start - window.start, a_payout + 10 * MINUTE) + rng.randint(0, 20) * MINUTE
    kinds = ["prohibited", "counterfeit", "prohibited", "counterfeit"] + rng.choices(
        ["prohibited", "counterfeit"], k=rng.randint(0, 3))
    rng.shuffle(kinds)
    spree = paced_times(rng, spree_start, len(kinds), (8, 25))
    tie = spree[-1] + rng.randint(*world.knob(LINKED, "tie_minutes")) * MINUTE
    room = (window.abuse_end - window.start) * rng.uniform(0.8, 1.0)
    squeeze = min(1.0, room / tie)  # a short stream: everything closer together
    origin = window.start + rng.randint(0, int(max(0.0, room - tie)))  # a long stream: any time

    def at(offset: int) -> int:
        return origin + int(offset * squeeze)

    spree_at = [at(t) for t in spree]
    tie_at = at(tie)
    # B exists only after A's spree: with a payout tie it signs in on its own device first.
    b_own_sign_in = at(max(spree[-1] + 2 * MINUTE, tie - rng.randint(10, 40) * MINUTE))
    b_second_tie = at(tie + rng.randint(5, 30) * MINUTE)  # both: the payout follows the device sign-in
    a_hash = token(rng, "po")
    item_style = rng.choice(("plain", "plain", "leet", "spaced"))
    run_rng = pop.rng("abuse-run", LINKED, i)

    def a_goes_rogue(m: Market) -> Script:
        m.sign_in(a.account, a.account.devices[0], a.account.ips[0], a.account.country)
        yield at(a_payout)
        m.change_payout(a.account, a_hash)
        for kind, t in zip(kinds, spree_at, strict=True):
            yield t
            if kind == "prohibited":
                listing = prohibited_listing_for(m, a, run_rng, run_rng.choice(words.prohibited_items), item_style)
            else:
                listing = counterfeit_listing_for(m, a, run_rng, run_rng.choice(("cheap_protected", "replica_words_cheap")),
                                                  run_rng.choice(words.replica_words))
            m.publish(a, listing)

    def b_shows_up(m: Market) -> Script:
        account = b.account
        if tie_by == "shared_payout":
            m.sign_in(account, account.devices[0], account.ips[0], account.country)
            yield tie_at
            m.change_payout(account, a_hash)
        else:
            m.sign_in(account, a.account.devices[0], ip_in(run_rng, a.account.country), a.account.country)
            if tie_by == "device_then_payout":
                yield b_second_tie
                m.change_payout(account, a_hash)
        if isinstance(b, Seller):  # and B starts selling again
            for _ in range(run_rng.randint(2, 5)):
                yield m.tl.now + run_rng.randint(5, 30) * MINUTE
                m.publish(b, m.ordinary_listing(b, run_rng))

    labels = [Label(a.ref, "prohibited_listing", spree_at[kinds.index("prohibited")]),
              Label(a.ref, "counterfeit_listing", spree_at[kinds.index("counterfeit")]),
              Label(b.ref, LINKED, tie_at)]
    b_starts = b_own_sign_in if tie_by == "shared_payout" else tie_at
    return Plan(labels=labels, scripts=[(at(a_sign_in), a_goes_rogue), (b_starts, b_shows_up)])
