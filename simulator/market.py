"""The running marketplace and the everyday behaviour of honest actors.

`Market` is what scripts act through: it owns the timeline and the population
and has the few shared actions (publish a listing, change it, place an order,
sign in). The honest scripts below are the background every detector has to
see through:

- a seller publishes its catalog during the warm-up, then keeps it up: small
  price changes, sales whose "was" price is the real previous price, restocks,
  new listings and removals;
- a seller gets orders as a Poisson process from the buyer pool (about 5%
  refunded later);
- a seller or creator signs in from their own devices at home, now and then
  from a new phone, and rarely changes their payout long after signing in;
- a creator goes LIVE one to two times per six hours (see `live.py`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from functools import partial

from simulator import wire
from simulator.catalog import image_hash, listing_title
from simulator.live import LiveSpec, live_id_for, live_script
from simulator.population import Account, Buyers, Creator, Listing, Population, Seller, token
from simulator.price_talk import rounded_down
from simulator.timeline import DAY, HOUR, MINUTE, Timeline, once
from simulator.world import World


class Market:
    """The timeline, the population, and the shared actions every script uses."""

    def __init__(self, population: Population, timeline: Timeline) -> None:
        self.population = population
        self.world: World = population.world
        self.tl = timeline
        self.buyers: Buyers = population.buyers
        self.currency = population.world.currency.code
        self.tag = population.world.currency.tag  # a raw price -> what a shop puts on the tag
        self._spec = population.world.market  # read per listing and order: looked up once
        self._refund_reasons = population.world.wording.refund_reasons
        self._orders_placed = self._extra_orders = 0

    def rng(self, *name: object) -> random.Random:
        return self.population.rng(*name)

    # ---- listings -----------------------------------------------------------------

    def new_listing_id(self, seller: Seller) -> str:
        seller.listings_made += 1
        return f"L{seller.seller_id[1:]}-{seller.listings_made}"

    def ordinary_listing(self, seller: Seller, rng: random.Random) -> Listing:
        """A listing of what this seller normally sells: its brand's level x its product type's going rate."""
        category_name, brand, level = rng.choice(seller.brands)
        category = self.world.category[category_name]
        market = self._spec
        sigma = market.premium_price_sigma if seller.premium else market.ordinary_sigma_factor * category.price_sigma
        spread = max(-2.0, min(2.0, rng.gauss(0.0, 1.0)))  # shops do not price wildly off their range
        stock = rng.randint(1, 6) if seller.premium else 1 + int(rng.lognormvariate(3.0, 0.8))
        product_type = category.pick_type(rng)
        title = listing_title(rng, self.world, category, brand, product_type)
        sigma = category.sigma(product_type, sigma)
        price = self.tag(level * category.factor(product_type) * math.exp(sigma * spread))
        return Listing(self.new_listing_id(seller), title, category_name, brand, price, image_hash(rng), stock,
                       highest_price=price, product_type=product_type.name)

    def publish(self, seller: Seller, listing: Listing) -> Listing:
        """`listing.created` now."""
        listing.highest_price = max(listing.highest_price, listing.price)
        seller.listings.append(listing)
        self.tl.emit(wire.listing_upsert("listing.created", self.tl.now, seller.seller_id, listing, self.currency),
                     seller.extra)
        return listing

    def republish(self, seller: Seller, listing: Listing) -> None:
        """`listing.updated` now, with the listing's current state."""
        listing.highest_price = max(listing.highest_price, listing.price)
        self.tl.emit(wire.listing_upsert("listing.updated", self.tl.now, seller.seller_id, listing, self.currency),
                     seller.extra)

    def unpublish(self, seller: Seller, listing: Listing) -> None:
        listing.active = False
        seller.listings.remove(listing)
        self.tl.emit(wire.listing_removed(self.tl.now, seller.seller_id, listing.listing_id), seller.extra)

    # ---- orders -------------------------------------------------------------------

    def next_order_id(self, seller: Seller) -> str:
        """`O<n>`; an extra seller's orders are counted apart (`Ox<n>`), so the others keep their ids."""
        if seller.extra:
            self._extra_orders += 1
            return f"Ox{self._extra_orders}"
        self._orders_placed += 1
        return f"O{self._orders_placed}"

    def place_order(self, ts: int, seller: Seller, listing: Listing, buyer: int, rng: random.Random,
                    creator_id: str | None = None, live_id: str | None = None) -> None:
        """An order by pool buyer number `buyer` (one to three items); about 5% are refunded later."""
        b = self.buyers
        quantity = 1 if rng.random() < 0.86 else rng.choice((2, 2, 3))
        age = b.ages[buyer] + (ts - self.population.window.start) // DAY
        order_id = self.place_order_as(ts, seller, listing, quantity, b.ids[buyer], age, b.devices[buyer],
                                       b.addresses[buyer], b.payments[buyer], creator_id, live_id)
        if rng.random() < self._spec.refund_share:
            later = ts + 10 * MINUTE + int(rng.lognormvariate(11.3, 0.9))  # median ~1.4 h after the order
            self.refund(later, order_id, seller, b.ids[buyer], round(listing.price * quantity, 2),
                        rng.choice(self._refund_reasons) or None)

    def place_order_as(self, ts: int, seller: Seller, listing: Listing, quantity: int, buyer_id: str,
                       account_age_days: int, device: str, address: str, payment: str,
                       creator_id: str | None = None, live_id: str | None = None) -> str:
        """`order.placed` at `ts` (>= now) by any buyer; returns the order id."""
        listing.stock = max(0, listing.stock - quantity)
        order_id = self.next_order_id(seller)
        self.tl.emit(wire.order_placed(
            ts, order_id, seller.seller_id, buyer_id, listing.listing_id, round(listing.price * quantity, 2),
            self.currency, creator_id, live_id, account_age_days, device, address, payment), seller.extra)
        return order_id

    def refund(self, ts: int, order_id: str, seller: Seller, buyer_id: str, amount: float,
               reason: str | None) -> None:
        self.tl.emit(wire.order_refunded(ts, order_id, seller.seller_id, buyer_id, amount, reason), seller.extra)

    # ---- accounts ----------------------------------------------------------------------

    def sign_in(self, account: Account, device: str, ip: str, country: str) -> None:
        self.tl.emit(wire.login(self.tl.now, account.ref, device, ip, country), account.extra)

    def change_payout(self, account: Account, payout_hash: str) -> None:
        account.payout_hash = payout_hash
        self.tl.emit(wire.payout_changed(self.tl.now, account.ref, payout_hash), account.extra)


# ---- honest sellers ----------------------------------------------------------------------


def seller_catalog(m: Market, seller: Seller) -> Iterator[int]:
    """Publish the existing catalog during the warm-up, then keep it up."""
    rng = m.rng("catalog", seller.seller_id)
    window = m.population.window
    for t in sorted(rng.randint(window.start, window.catalog_ready) for _ in range(seller.catalog_size)):
        yield t
        m.publish(seller, m.ordinary_listing(seller, rng))
    rate_per_ms = seller.upkeep_per_hour / HOUR
    while True:
        yield m.tl.now + 1 + int(rng.expovariate(rate_per_ms))
        _upkeep(m, seller, rng)


def _upkeep(m: Market, seller: Seller, rng: random.Random) -> None:
    """One everyday catalog change."""
    own = [listing for listing in seller.listings if not listing.reserved]
    roll = rng.random()
    if not own or roll < 0.2:
        if len(own) > seller.catalog_size + 8:  # rotate: the oldest goes when the shop has grown
            m.unpublish(seller, own[0])
        m.publish(seller, m.ordinary_listing(seller, rng))
    elif roll < 0.55:
        _tweak_price(m, seller, rng.choice(own), rng)
    elif roll < 0.72:
        hours = m.world.market.sale_hours
        start_sale(m, seller, rng.sample(own, min(len(own), rng.randint(1, 5))), rng,
                   depth=m.world.market.sale_depth, lasts=(int(hours[0] * HOUR), int(hours[1] * HOUR)))
    elif roll < 0.9:
        listing = min(own, key=lambda item: item.stock)
        listing.stock += rng.randint(10, 60)
        m.republish(seller, listing)
    elif len(own) > 3:
        m.unpublish(seller, rng.choice(own))


def _tweak_price(m: Market, seller: Seller, listing: Listing, rng: random.Random) -> None:
    """An honest price change (5-15% up or down in `home`), outside of any sale."""
    if listing.original_price is not None:
        return
    factor = 1 + rng.choice((-1, 1)) * rng.uniform(*m.world.market.tweak)
    new_price = m.tag(listing.price * factor)
    if new_price != listing.price:
        listing.price = new_price
        m.republish(seller, listing)


def start_sale(m: Market, seller: Seller, listings: list[Listing], rng: random.Random,
                depth: tuple[float, float], lasts: tuple[int, int] | None) -> list[Listing]:
    """Discount listings; the "was" price is the real price they had until now."""
    on_sale = []
    for listing in listings:
        if listing.original_price is not None or listing.reserved:
            continue
        sale_price = m.tag(listing.price * (1 - rng.uniform(*depth)))
        if not 0 < sale_price < listing.price:
            continue
        listing.original_price, listing.price = listing.price, sale_price
        m.republish(seller, listing)
        on_sale.append(listing)
    if on_sale and lasts is not None:
        m.tl.spawn(once(lambda: end_sale(m, seller, on_sale)), at=m.tl.now + rng.randint(*lasts))
    return on_sale


def lower_price(m: Market, price: float, factor: float) -> float:
    """`price` x `factor` as a tag, strictly below `price` (a cut never rounds back up to the old price)."""
    cut = m.tag(price * factor)
    return cut if cut < price else rounded_down(price)


def end_sale(m: Market, seller: Seller, listings: list[Listing]) -> None:
    """Back to the regular price, "was" price gone."""
    for listing in listings:
        if listing.active and listing.original_price is not None:
            listing.price, listing.original_price = listing.original_price, None
            m.republish(seller, listing)


def seller_orders(m: Market, seller: Seller) -> Iterator[int]:
    """Orders from the buyer pool as a Poisson process; popular listings sell more."""
    rng = m.rng("orders", seller.seller_id)
    rate_per_ms = seller.orders_per_hour / HOUR
    n_buyers = len(m.buyers)
    t = m.tl.now
    while True:
        t += 1 + int(rng.expovariate(rate_per_ms))
        yield t
        listings = seller.listings
        if not listings:
            continue
        listing = listings[int(len(listings) * rng.random() ** 2)]  # earlier listings are the popular ones
        if listing.stock > 0:
            m.place_order(t, seller, listing, rng.randrange(n_buyers), rng)


# ---- sign-ins --------------------------------------------------------------------------


def account_sessions(m: Market, account: Account) -> Iterator[int]:
    """Sign-ins from the actor's own devices at home; rarely a new phone or a late payout change."""
    rng = m.rng("sessions", account.ref)
    window = m.population.window
    early = window.abuse_start  # the first hour, when baselines form
    t = rng.randint(window.start, early) if account.logs_in_early else rng.randint(early, window.end)
    while True:
        yield t
        if rng.random() < 0.02:  # a new phone, at home
            account.devices.append(token(rng, "d"))
            device = account.devices[-1]
        else:
            device = account.devices[0] if rng.random() < 0.75 else rng.choice(account.devices)
        m.sign_in(account, device, rng.choice(account.ips), account.country)
        if account.may_change_payout and rng.random() < 0.015:
            m.tl.spawn(once(partial(m.change_payout, account, token(rng, "po"))),
                       at=m.tl.now + rng.randint(75 * MINUTE, 200 * MINUTE))
        t = m.tl.now + 5 * MINUTE + int(rng.expovariate(1 / (2.5 * HOUR)))


# ---- honest creators --------------------------------------------------------------------------


def creator_schedule(m: Market, creator: Creator) -> Iterator[int]:
    """Go LIVE now and then, around any scenario lives planned for this creator."""
    rng = m.rng("schedule", creator.creator_id)
    window = m.population.window
    mean_gap = 6 * HOUR / creator.lives_per_6h
    t = window.start + int(rng.uniform(0.0, min(1.0, 0.6 * mean_gap / window.duration)) * window.duration)
    while True:
        yield t
        duration = rng.randint(20 * MINUTE, 90 * MINUTE)
        clash = next(((s, e) for s, e in creator.planned if t < e + 10 * MINUTE and s < t + duration + 10 * MINUTE),
                     None)
        if clash is not None:
            t = clash[1] + rng.randint(20 * MINUTE, 2 * HOUR)
            continue
        spec = LiveSpec(live_id=live_id_for(m.population.seed, creator.creator_id, t), creator=creator,
                        start=t, end=t + duration, peak=creator.peak_viewers * rng.lognormvariate(0.0, 0.35))
        m.tl.spawn(live_script(m, spec), at=t)
        t += duration + 10 * MINUTE + int(rng.expovariate(1 / mean_gap))


def start_everyday_life(m: Market) -> None:
    """Spawn the background scripts of every actor with a baseline."""
    start = m.population.window.start
    for seller in m.population.sellers:
        m.tl.spawn(seller_catalog(m, seller), at=start)
        m.tl.spawn(seller_orders(m, seller), at=start)
        m.tl.spawn(account_sessions(m, seller.account), at=start)
    for creator in m.population.creators:
        m.tl.spawn(creator_schedule(m, creator), at=start)
        m.tl.spawn(account_sessions(m, creator.account), at=start)
