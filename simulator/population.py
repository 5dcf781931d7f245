"""Who is on the marketplace: sellers, creators, buyers, and the time windows they act in.

Profiles are drawn once per seed by `Population`; injected abusers and the
hard-negative actors get their profiles from the very same draws as everyone
else, so nothing but their behaviour sets them apart (ids are random numbers,
not a range per kind of actor).

Each `Seller` also carries its runtime state (its listings), owned by the
scripts that run on the timeline; a `Population` is therefore built afresh for
every run.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from simulator.timeline import HOUR, MINUTE
from simulator.world import World

# First octets that make an address look like it belongs to a country (not meant to be exact).
_IP_OCTETS = {
    "US": (23, 24, 45, 67, 72, 98, 104, 173), "GB": (51, 81, 86, 90), "DE": (46, 79, 84, 91), "FR": (37, 78, 90),
    "CA": (24, 70, 99, 142), "AU": (1, 49, 101, 120), "ES": (80, 83, 88), "IT": (79, 93, 151), "NL": (77, 84, 145),
    "MX": (177, 187, 189), "BR": (177, 179, 186, 200), "PH": (112, 120, 124), "JP": (106, 126, 133),
    "KR": (1, 14, 58, 121), "TW": (1, 36, 42, 114), "IE": (31, 37, 86, 89), "PT": (2, 85, 188, 193),
    "BE": (81, 91, 109, 178), "AT": (62, 77, 80, 178), "CH": (31, 46, 62, 85), "SE": (78, 90, 155, 213),
    "NG": (41, 102, 105, 197), "RU": (5, 31, 46, 95), "VN": (14, 27, 113, 171), "CN": (36, 58, 61, 111),
    "IN": (49, 59, 103, 117), "UA": (31, 46, 91, 176),
}


def ip_in(rng: random.Random, country: str) -> str:
    first = rng.choice(_IP_OCTETS.get(country, (62, 85, 185, 194)))
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def token(rng: random.Random, prefix: str) -> str:
    """An opaque hashed identifier such as a device id or a payment hash."""
    return f"{prefix}-{rng.getrandbits(40):010x}"


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


class IdPool:
    """Unique random numeric ids, so that an id says nothing about who got it."""

    def __init__(self, rng: random.Random, low: int, high: int) -> None:
        self._rng, self._low, self._high = rng, low, high
        self._used: set[int] = set()

    def take(self, prefix: str) -> str:
        while True:
            n = self._rng.randrange(self._low, self._high)
            if n not in self._used:
                self._used.add(n)
                return f"{prefix}{n}"


@dataclass(frozen=True)
class Window:
    """The stream's time span and the sub-spans in which things are scheduled."""

    start: int
    end: int

    @property
    def duration(self) -> int:
        return self.end - self.start

    @property
    def catalog_ready(self) -> int:
        """Existing catalogs are published before this (the warm-up)."""
        return self.start + min(45 * MINUTE, int(0.15 * self.duration))

    @property
    def abuse_start(self) -> int:
        """Nothing abusive or suspicious happens before this: baselines exist first."""
        return self.start + min(HOUR, int(0.2 * self.duration))

    @property
    def abuse_end(self) -> int:
        return self.end - min(30 * MINUTE, int(0.1 * self.duration))

    def fit(self, span: float, share: float = 0.5) -> int:
        """`span`, shortened to `share` of the abuse window if longer (short streams only).

        Keeping spans well below the window leaves room to start anywhere in it.
        """
        return int(min(span, share * (self.abuse_end - self.abuse_start)))

    def pick_start(self, rng: random.Random, span: float) -> int:
        """A random start such that [start, start + span] lies in the abuse window (`fit` the span first)."""
        latest = self.abuse_end - int(span)
        return rng.randint(self.abuse_start, max(self.abuse_start, latest))


@dataclass
class Account:
    """How a seller or creator signs in, and where their money goes."""

    ref: str  # actor reference, e.g. "seller:S1042"
    country: str
    devices: list[str]
    ips: list[str]
    payout_hash: str
    logs_in_early: bool  # signs in during the first hour (gives a baseline)
    may_change_payout: bool = True  # an honest, late payout change may happen
    extra: bool = False  # cast by a scenario added in #14: its events are numbered and delivered apart


@dataclass(slots=True)
class Listing:
    listing_id: str
    title: str
    category: str
    brand: str | None
    price: float
    image_hash: str | None
    stock: int
    original_price: float | None = None
    highest_price: float = 0.0  # the highest price it has ever had (for honest "was" prices)
    reserved: bool = False  # taken over by a scenario script: upkeep leaves it alone
    active: bool = True
    product_type: str | None = None  # the world's product type it is (None: not an ordinary product)


@dataclass
class Seller:
    seller_id: str
    account: Account
    premium: bool
    categories: tuple[str, ...]
    brands: tuple[tuple[str, str | None, float], ...]  # (category, brand or None, price level)
    catalog_size: int
    orders_per_hour: float
    upkeep_per_hour: float
    listings: list[Listing] = field(default_factory=list)  # runtime: active listings
    listings_made: int = 0  # runtime: counter behind listing ids

    @property
    def ref(self) -> str:
        return f"seller:{self.seller_id}"

    @property
    def extra(self) -> bool:
        return self.account.extra


@dataclass
class Creator:
    creator_id: str
    account: Account
    shop: Seller | None  # whose products this creator sells
    peak_viewers: float
    like_rate: float  # per real viewer per 10 s
    comment_rate: float
    share_rate: float
    follow_rate: float
    buy_rate: float
    lives_per_6h: float
    planned: list[tuple[int, int]] = field(default_factory=list)  # scenario lives (start, end)

    @property
    def ref(self) -> str:
        return f"creator:{self.creator_id}"

    @property
    def extra(self) -> bool:
        return self.account.extra


@dataclass
class Buyers:
    """The buyer pool, column-wise (small and fast to index)."""

    ids: list[str]
    ages: list[int]  # account age in days at the stream start
    devices: list[str]
    addresses: list[str]
    payments: list[str]
    independent: list[int]  # indices of old accounts that share nothing with anyone

    def __len__(self) -> int:
        return len(self.ids)


class Population:
    """Draws every profile of one run from one seed, in one world."""

    def __init__(self, seed: int, scale: float, window: Window, world: World) -> None:
        self.seed = seed
        self.window = window
        self.world = world
        self._rng = random.Random(f"{seed}:population")
        self._seller_ids = IdPool(self._rng, 1_000, 100_000)
        self._creator_ids = IdPool(self._rng, 100, 100_000)
        self.buyer_ids = IdPool(self._rng, 100_000, 10_000_000)
        self.ordinary_brands = self._ordinary_brands()
        size = world.population
        self.buyers = self._buyers(max(300, round(size.buyers * scale)))
        honest_sellers = max(20, round(size.sellers * scale))
        premium = max(2, round(size.premium_share * honest_sellers))
        self.sellers = [self.new_seller(premium=i < premium) for i in range(honest_sellers)]
        self.honest_sellers = list(self.sellers)
        self.creators = [self.new_creator() for _ in range(max(8, round(size.creators * scale)))]
        self.honest_creators = list(self.creators)
        self.b_side: list[Seller | Creator] = []  # accounts that only appear in a scenario (ban evaders)

    def rng(self, *name: object) -> random.Random:
        """A private random stream for one purpose, derived from the seed (never `hash()`)."""
        return random.Random(":".join(map(str, (self.seed, *name))))

    # ---- profiles -----------------------------------------------------------------

    def _ordinary_brands(self) -> dict[str, tuple[tuple[str, float], ...]]:
        """Per category: a few of the world's ordinary brands, each with its own price level."""
        brands, rng = self.world.brands, self._rng
        low, high = brands.level_bounds
        out = {}
        for category in self.world.categories:
            names = rng.sample(brands.ordinary, rng.randint(*brands.per_category))
            out[category.name] = tuple(
                (name, category.going_rate * min(high, max(low, lognormal(rng, 1.0, brands.level_sigma))))
                for name in names)
        return out

    def new_account(self, role: str, actor_id: str) -> Account:
        rng = self._rng
        country = rng.choice(self.world.countries.home_pool)
        return Account(
            ref=f"{role}:{actor_id}", country=country,
            devices=[token(rng, "d") for _ in range(rng.choice((1, 1, 2)))],
            ips=[ip_in(rng, country) for _ in range(rng.choice((1, 2)))],
            payout_hash=token(rng, "po"), logs_in_early=rng.random() < self.world.population.logs_in_early)

    def new_seller(self, *, premium: bool = False, catalog: tuple[int, int] | None = None) -> Seller:
        rng, world = self._rng, self.world
        size = world.population
        seller_id = self._seller_ids.take("S")
        if premium:
            categories = tuple(rng.sample(world.premium_categories, rng.choice((1, 1, 2))))
            brands = tuple((c, name, level) for c in categories
                           for name, level in rng.sample(world.premium[c], min(2, len(world.premium[c]))))
        else:
            categories = tuple(rng.sample([c.name for c in world.categories], rng.choice(size.seller_categories)))
            brands = tuple(
                (c, name, level) for c in categories
                for name, level in rng.sample(self.ordinary_brands[c], rng.randint(*size.seller_brands)))
            # Unbranded goods, priced at the category's going rate.
            brands += tuple((c, None, world.category[c].going_rate) for c in categories)
        return Seller(
            seller_id=seller_id, account=self.new_account("seller", seller_id), premium=premium,
            categories=categories, brands=brands, catalog_size=rng.randint(*(catalog or size.catalog_size)),
            orders_per_hour=lognormal(rng, size.premium_orders_per_hour if premium else size.orders_per_hour,
                                      size.orders_sigma),
            upkeep_per_hour=lognormal(rng, size.upkeep_per_hour, 0.5))

    def new_creator(self) -> Creator:
        rng, spec = self._rng, self.world.creators
        creator_id = self._creator_ids.take("C")
        shops = [s for s in self.honest_sellers if not s.premium]
        return Creator(
            creator_id=creator_id, account=self.new_account("creator", creator_id),
            shop=rng.choice(shops) if rng.random() < spec.has_shop else None,
            peak_viewers=min(spec.peak_bounds[1], max(spec.peak_bounds[0],
                                                      lognormal(rng, spec.peak_viewers, spec.peak_sigma))),
            like_rate=lognormal(rng, *spec.like_rate), comment_rate=lognormal(rng, *spec.comment_rate),
            share_rate=lognormal(rng, *spec.share_rate), follow_rate=lognormal(rng, *spec.follow_rate),
            buy_rate=lognormal(rng, *spec.buy_rate), lives_per_6h=rng.uniform(*spec.lives_per_6h))

    def add_seller(self, *, extra: bool = False, **kwargs) -> Seller:
        """A seller that joins the marketplace for a scenario (with an ordinary baseline).

        `extra`: cast by a scenario added in #14 (see `Account.extra`); such actors share nothing
        with the others that could change what the others do.
        """
        seller = self.new_seller(**kwargs)
        seller.account.extra = extra
        self.sellers.append(seller)
        return seller

    def add_creator(self, *, extra: bool = False) -> Creator:
        """A creator that joins for a scenario; an `extra` one sells for a shop of its own."""
        creator = self.new_creator()
        if extra:
            creator.account.extra = True
            creator.shop = self.add_seller(extra=True) if creator.shop is not None else None
        self.creators.append(creator)
        return creator

    def add_b_side(self, role: str, like: Account) -> Seller | Creator:
        """A brand-new account of the person behind `like` (no baseline activity of its own)."""
        actor = self.new_seller(catalog=(0, 0)) if role == "seller" else self.new_creator()
        actor.account.country = like.country
        actor.account.logs_in_early = False
        actor.account.may_change_payout = False
        self.b_side.append(actor)
        return actor

    def _buyers(self, n: int) -> Buyers:
        rng = self._rng
        size = self.world.population
        ids, ages, devices, addresses, payments, independent = [], [], [], [], [], []
        for i in range(n):
            ids.append(self.buyer_ids.take("B"))
            new_account = rng.random() < size.new_buyer_share
            ages.append(rng.randint(0, 30) if new_account else min(4_000, int(lognormal(rng, size.buyer_age_days, 0.9))))
            shares_home = i > 0 and rng.random() < size.household_share  # a household: same address, maybe same laptop
            addresses.append(addresses[-1] if shares_home else token(rng, "sa"))
            devices.append(devices[-1] if shares_home and rng.random() < 0.5 else token(rng, "d"))
            payments.append(payments[-1] if shares_home and rng.random() < 0.2 else token(rng, "pm"))
            if not shares_home and not new_account and ages[-1] >= 60:
                independent.append(i)
        # A household's first member shares too: drop it from the independent list.
        sharing = {addresses[i] for i in range(1, n) if addresses[i] == addresses[i - 1]}
        independent = [i for i in independent if addresses[i] not in sharing]
        return Buyers(ids, ages, devices, addresses, payments, independent)
