"""Marketplace profiles ("worlds") as data: `simulator/worlds/<name>.toml`, validated when loaded.

A world is everything that makes one marketplace unlike another: its
currency and how prices are tagged and spoken, its categories and product
types with their going rates, its ordinary and protected brands, how many
sellers, creators and buyers it has and how active they are, the words its
people use, and which variants of each abuse tactic its abusers use
(`simulator/tactics.py`). The code in `simulator/` is the same for every
world; only this data differs.

`home` is the world the detectors are tuned on (the simulator's historical
marketplace, kept as it was); the others are held out: no threshold may be
tuned on them (`held_out = true` in their file).

A bad file fails at load time with one line naming the file and the key
(`tests/test_simulator_worlds.py` keeps the expected texts).

>>> WORLDS, load_world("home").currency.code
(('atelier', 'harbour', 'home', 'pampa', 'sakura'), 'USD')
>>> load_world("home").currency.tag(14.2), load_world("sakura").currency.tag(1432.0)
(13.99, 1380.0)
>>> load_world("atelier").currency.spoken(15.5), load_world("sakura").currency.spoken(1480.0)
('15,50', '1,480')
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from pipeline.errors import ConfigError, join_key, validation_message
from simulator.tactics import KNOBS, VARIANTS, VIOLATION_TYPES

WORLDS_DIR = Path(__file__).resolve().parent / "worlds"
WORLDS = tuple(sorted(p.stem for p in WORLDS_DIR.glob("*.toml")))
DEFAULT_WORLD = "home"


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


def _check(ok: bool, key: str, message: str) -> None:
    """Raise the error of one key (msgspec adds the path of the table it is in)."""
    if not ok:
        raise ValueError(f"key `{key}`: {message}")


def _check_range(value: tuple[float, float], key: str, low: float = 0.0) -> None:
    _check(low <= value[0] <= value[1], key, f"expected [low, high] with {low} <= low <= high, got {list(value)}")


# ---- money ---------------------------------------------------------------------------------------


class PriceTier(_Spec):
    """Prices below `below` (the last tier: all others) are tagged at a multiple of `step`, less `minus`."""

    step: float
    below: float | None = None
    minus: float = 0.0


class LowestTag(_Spec):
    below: float
    price: float


class SpokenFormat(_Spec):
    """How an amount is written or said, e.g. text = "{amount} €" with decimal = ","."""

    text: str
    thousands: str | None = None  # default: the currency's
    decimal: str | None = None

    def __post_init__(self) -> None:
        _check("{amount}" in self.text, "text", f"must contain {{amount}}, got {self.text!r}")


class AbroadCurrency(_Spec):
    """A currency some viewers think in; hosts convert honestly (and round up)."""

    code: str
    per_unit: float  # units of this currency per unit of the world's currency
    say: list[SpokenFormat]


class Currency(_Spec):
    code: str
    per_usd: float  # units per US dollar: scales the few amounts the code states in dollars
    decimals: int
    lowest: LowestTag
    tiers: list[PriceTier]
    thousands: str
    decimal: str
    say: list[SpokenFormat]  # how hosts say a price
    local: list[SpokenFormat]  # other honest ways of writing a price in this world
    abroad: AbroadCurrency

    def __post_init__(self) -> None:
        _check(len(self.code) == 3 and self.code.isupper(), "code", f"expected an ISO 4217 code, got {self.code!r}")
        _check(self.decimals in (0, 2), "decimals", f"expected 0 or 2, got {self.decimals}")
        _check(bool(self.tiers) and self.tiers[-1].below is None, "tiers", "the last tier must have no `below`")
        _check(bool(self.say) and bool(self.local), "say", "`say` and `local` need at least one format each")

    def tag(self, x: float) -> float:
        """Round a raw price to what a shop puts on the tag (e.g. x.99 below $100)."""
        if x < self.lowest.below:
            return self.lowest.price
        for tier in self.tiers:
            if tier.below is None or x < tier.below:
                return float(round(round(x / tier.step) * tier.step - tier.minus, self.decimals))
        raise AssertionError("unreachable: the last tier has no bound")

    def spoken(self, amount: float, fmt: SpokenFormat | None = None, *, cents: bool | None = None) -> str:
        """`amount` written as people of this world write it; whole amounts lose their cents unless `cents`."""
        thousands = self.thousands if fmt is None or fmt.thousands is None else fmt.thousands
        decimal = self.decimal if fmt is None or fmt.decimal is None else fmt.decimal
        whole = abs(amount - round(amount)) < 0.005
        decimals = 0 if self.decimals == 0 or (whole and not cents) else 2
        text = f"{amount:,.{decimals}f}".replace(",", "\0").replace(".", decimal).replace("\0", thousands)
        return text

    def say_price(self, amount: float, fmt: SpokenFormat, *, cents: bool | None = None) -> str:
        return fmt.text.replace("{amount}", self.spoken(amount, fmt, cents=cents))


# ---- what is sold ------------------------------------------------------------------------------------


class ProductType(_Spec):
    name: str
    going_rate: float | None = None  # default: the category's going rate
    sigma: float | None = None  # spread of its prices (log scale); default from the category
    share: float = 1.0  # how often ordinary sellers list it (0: specialist sellers only)

    def __post_init__(self) -> None:
        _check(self.going_rate is None or self.going_rate > 0, "going_rate", "must be > 0")
        _check(self.share >= 0, "share", "must be >= 0")


class Category(_Spec, dict=True):
    name: str
    going_rate: float  # what an ordinary listing of the category costs (the level brands are priced from)
    price_sigma: float
    adjectives: list[str]
    product_types: list[str | ProductType]

    def __post_init__(self) -> None:
        _check(self.going_rate > 0 and self.price_sigma > 0, "going_rate", "going_rate and price_sigma must be > 0")
        _check(bool(self.adjectives), "adjectives", "must not be empty")
        _check(any(t.share > 0 for t in self.types), "product_types", "needs a product type with share > 0")

    @functools.cached_property
    def types(self) -> tuple[ProductType, ...]:
        return tuple(ProductType(name=t) if isinstance(t, str) else t for t in self.product_types)

    @functools.cached_property
    def common_types(self) -> tuple[ProductType, ...]:
        return tuple(t for t in self.types if t.share > 0)

    @functools.cached_property
    def specialist_types(self) -> tuple[ProductType, ...]:
        """Product types well above the category's going rate (>= 4x): the standing desk among home goods."""
        return tuple(t for t in self.types if self.factor(t) >= 4.0)

    def factor(self, product_type: ProductType) -> float:
        """The product type's going rate relative to the category's."""
        return 1.0 if product_type.going_rate is None else product_type.going_rate / self.going_rate

    def sigma(self, product_type: ProductType, default: float) -> float:
        return default if product_type.sigma is None else product_type.sigma

    @functools.cached_property
    def _cum_shares(self) -> list[float] | None:
        """Cumulative shares of the common types; None when all are equal."""
        shares = [t.share for t in self.common_types]
        return None if len(set(shares)) == 1 else list(itertools.accumulate(shares))

    def pick_type(self, rng: random.Random) -> ProductType:
        """An ordinary seller's product type (equal shares draw with `choice`, as `home` always did)."""
        cum = self._cum_shares
        if cum is None:
            return rng.choice(self.common_types)
        return rng.choices(self.common_types, cum_weights=cum)[0]

    def type_named(self, name: str) -> ProductType:
        return next(t for t in self.types if t.name == name)


class ProtectedBrand(_Spec):
    name: str
    aliases: list[str] = []
    registered: Literal["start", "late"] = "start"  # late: a registration after the stream starts


class Brands(_Spec):
    ordinary: list[str]
    per_category: tuple[int, int]
    level_sigma: float
    level_bounds: tuple[float, float]

    def __post_init__(self) -> None:
        _check_range(self.per_category, "per_category", 1)
        _check(len(self.ordinary) >= self.per_category[1], "ordinary", "fewer brands than `per_category` asks")
        _check_range(self.level_bounds, "level_bounds")


class TitleShape(_Spec):
    upto: float  # used when the shape draw is below this (the last one must reach 1.0)
    text: str


class Titles(_Spec):
    colors: list[str]
    branded: list[TitleShape]
    unbranded: list[TitleShape]

    def __post_init__(self) -> None:
        for key, shapes in (("branded", self.branded), ("unbranded", self.unbranded)):
            _check(bool(shapes) and shapes[-1].upto >= 1.0, key, "the last shape needs upto = 1.0")


# ---- who is there ---------------------------------------------------------------------------------------


class PopulationSpec(_Spec):
    sellers: int  # honest sellers at scale 1
    premium_share: float
    creators: int
    buyers: int
    catalog_size: tuple[int, int]
    seller_categories: list[int]  # how many categories an ordinary seller has (drawn with choice)
    seller_brands: tuple[int, int]  # ordinary brands per category of a seller
    orders_per_hour: float  # median of an ordinary seller
    premium_orders_per_hour: float
    orders_sigma: float
    upkeep_per_hour: float
    new_buyer_share: float
    buyer_age_days: float  # median account age of the others
    household_share: float
    logs_in_early: float  # share of accounts that sign in during the first hour
    abusers_factor: float = 1.0  # abusers per type = SimConfig.abusers_per_type x scale x this
    negatives_factor: float = 1.0  # actors per hard-negative scenario, likewise (base 2)

    def __post_init__(self) -> None:
        _check(self.sellers >= 20 and self.creators >= 8 and self.buyers >= 300, "sellers",
               "need >= 20 sellers, >= 8 creators and >= 300 buyers at scale 1")
        _check_range(self.catalog_size, "catalog_size", 1)
        _check_range(self.seller_brands, "seller_brands", 1)
        for key in ("premium_share", "new_buyer_share", "household_share", "logs_in_early"):
            _check(0 <= getattr(self, key) < 1, key, "expected a share in 0..1")


class CreatorSpec(_Spec):
    peak_viewers: float
    peak_sigma: float
    peak_bounds: tuple[float, float]
    # Per real viewer per 10 s, as (median, lognormal sigma) across creators.
    like_rate: tuple[float, float]
    comment_rate: tuple[float, float]
    share_rate: tuple[float, float]
    follow_rate: tuple[float, float]
    buy_rate: tuple[float, float]
    lives_per_6h: tuple[float, float]
    live_minutes: tuple[int, int]
    has_shop: float

    def __post_init__(self) -> None:
        _check_range(self.peak_bounds, "peak_bounds", 1)
        _check_range(self.lives_per_6h, "lives_per_6h", 0.1)
        _check_range(self.live_minutes, "live_minutes", 5)


class Countries(_Spec, dict=True):
    home: dict[str, int]  # country -> weight (expanded in file order)
    travel: list[str]
    attacker: list[str]

    @functools.cached_property
    def home_pool(self) -> tuple[str, ...]:
        return tuple(country for country, weight in self.home.items() for _ in range(weight))


class MarketSpec(_Spec):
    premium_price_sigma: float
    ordinary_sigma_factor: float  # x the category's (or product type's) sigma
    sale_depth: tuple[float, float]
    sale_hours: tuple[float, float]
    tweak: tuple[float, float]
    refund_share: float


# ---- words ---------------------------------------------------------------------------------------------


class TitledItem(_Spec):
    title: str
    category: str


class ProhibitedItem(_Spec):
    banned: str  # the class: weapons, drugs, wildlife, documents...
    keyword: str  # the word an abuser disguises (lower case, inside `template` as {kw})
    template: str
    category: str
    price: tuple[float, float]

    def __post_init__(self) -> None:
        _check("{kw}" in self.template, "template", "must contain {kw}")
        _check_range(self.price, "price", 0.01)


class PriceTalk(_Spec):
    """Host lines about a listing's price: {item} is words of its title, {price}/{was}/{limit} amounts."""

    says_price: list[str]  # exact or false, the same words: "the {item} is only {price} today"
    says_was: list[str]  # "{item}: was {was}, now {price}"
    says_under: list[str]  # "the {item} is under {limit}" (a limit above the price)
    says_abroad: list[str]  # "about {abroad} for our friends abroad" (an honest conversion)


class Wording(_Spec):
    host_lines: list[str]
    host_comments: list[str]
    viewer_comments: list[str]
    live_titles: list[str]
    like_goal_lines: list[str]
    follow_push_lines: list[str]
    shoutout_lines: list[str]
    raid_comments: list[str]
    viewer_contact_asks: list[str]
    host_declines_comments: list[str]
    host_declines_lines: list[str]
    honest_health_lines: list[str]
    honest_health_titles: list[TitledItem]
    solicitation_host_lines: list[str]
    solicitation_host_comments: list[str]
    solicitation_title_suffixes: list[str]
    solicitation_keywords: list[str]
    solicitation_replies: list[str]
    handle_words: tuple[list[str], list[str]]
    misleading_host_lines: list[str]
    misleading_titles: list[TitledItem]
    replica_words: list[str]
    replica_titles: list[str]  # {brand} {noun} {word}
    prohibited_items: list[ProhibitedItem]
    lookalike_titles: list[TitledItem]  # honest titles with a banned-sounding word
    brushing_titles: list[str]
    brushing_refund_reasons: list[str]  # "" = no reason given
    refund_reasons: list[str]
    spam_emoji: list[str]
    spam_number_marks: list[str]
    spam_variants: list[str]  # what changes between a spammer's copies: colours, sizes
    restock_suffixes: list[str]
    price_talk: PriceTalk

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            _check(not isinstance(value, list) or bool(value), name, "must not be empty")
        lowered = " ".join(self.solicitation_host_lines + self.solicitation_title_suffixes).lower()
        for keyword in self.solicitation_keywords:
            _check(keyword == keyword.lower(), "solicitation_keywords", f"{keyword!r} must be lower case")
        _check(any(k in lowered for k in self.solicitation_keywords), "solicitation_keywords",
               "none appears in the solicitation lines")


# ---- the world ------------------------------------------------------------------------------------------


class WorldSpec(_Spec):
    name: str
    description: str
    held_out: bool
    currency: Currency
    population: PopulationSpec
    creators: CreatorSpec
    countries: Countries
    brands: Brands
    protected_brands: list[ProtectedBrand]
    premium_rates: dict[str, dict[str, float]]  # category -> protected brand -> going rate
    categories: list[Category]
    titles: Titles
    market: MarketSpec
    wording: Wording
    tactics: dict[str, dict[str, object]]  # type -> {variants = [...] (abuser i uses variants[i % len]), knobs}


@dataclass(frozen=True)
class World:
    """A loaded, validated world: its file's tables read through to `spec` (`world.currency`,
    `world.wording`, ...), plus lookups built from them."""

    spec: WorldSpec
    path: Path

    def __getattr__(self, name: str):
        return getattr(self.spec, name)

    @property
    def categories(self) -> tuple[Category, ...]:
        return tuple(self.spec.categories)

    @functools.cached_property
    def category(self) -> dict[str, Category]:
        return {c.name: c for c in self.spec.categories}

    @functools.cached_property
    def premium(self) -> dict[str, tuple[tuple[str, float], ...]]:
        """Per premium category: its protected brands and their going rates (file order)."""
        return {c: tuple(rates.items()) for c, rates in self.spec.premium_rates.items()}

    @property
    def premium_categories(self) -> tuple[str, ...]:
        return tuple(self.premium)

    @functools.cached_property
    def protected(self) -> dict[str, ProtectedBrand]:
        return {b.name: b for b in self.spec.protected_brands}

    def premium_rate(self, category: str, brand: str) -> float:
        return self.spec.premium_rates[category][brand]

    def variant(self, violation_type: str, i: int) -> str:
        """The variant abuser number `i` of a type uses."""
        variants = self.spec.tactics[violation_type]["variants"]
        return variants[i % len(variants)]  # type: ignore[index]

    def knob(self, violation_type: str, name: str):
        """A tactic's knob: the world's value, else the default of `simulator/tactics.py`."""
        value = self.spec.tactics[violation_type].get(name, KNOBS[violation_type][name])
        return tuple(value) if isinstance(value, list) else value


# ---- loading and validation --------------------------------------------------------------------------------


def _check_world(spec: WorldSpec) -> None:
    """What one table cannot check alone: names that refer to each other, tactics and their knobs."""
    categories = {c.name for c in spec.categories}
    protected = {b.name for b in spec.protected_brands}
    for category, rates in spec.premium_rates.items():
        _check(category in categories, f"premium_rates.{category}", "not a category of this world")
        for brand, rate in rates.items():
            _check(brand in protected, f"premium_rates.{category}.{brand}", "not in protected_brands")
            _check(rate > 0, f"premium_rates.{category}.{brand}", "must be > 0")
    _check(spec.population.seller_brands[1] <= spec.brands.per_category[0], "population.seller_brands",
           "a seller may not take more brands of a category than the fewest a category has (brands.per_category)")
    rated = {brand for rates in spec.premium_rates.values() for brand in rates}
    for i, brand in enumerate(spec.protected_brands):
        _check(brand.name in rated, f"protected_brands[{i}].name", f"{brand.name!r} has no premium_rates entry")
    for key, items in (("wording.honest_health_titles", spec.wording.honest_health_titles),
                       ("wording.misleading_titles", spec.wording.misleading_titles),
                       ("wording.prohibited_items", spec.wording.prohibited_items),
                       ("wording.lookalike_titles", spec.wording.lookalike_titles)):
        for i, item in enumerate(items):
            _check(item.category in categories, f"{key}[{i}].category", f"{item.category!r} is not a category")
    _check(set(spec.tactics) == set(VIOLATION_TYPES), "tactics",
           f"expected a table for each of {', '.join(VIOLATION_TYPES)}; "
           f"missing {sorted(set(VIOLATION_TYPES) - set(spec.tactics))}, unknown {sorted(set(spec.tactics) - set(VIOLATION_TYPES))}")
    for vtype, table in spec.tactics.items():
        _check_tactic(vtype, table)


def _check_tactic(vtype: str, table: dict[str, object]) -> None:
    variants = table.get("variants")
    _check(isinstance(variants, list) and bool(variants) and set(variants) <= set(VARIANTS[vtype]),
           f"tactics.{vtype}.variants", f"expected a list of {', '.join(VARIANTS[vtype])}, got {variants!r}")
    for name, value in table.items():
        if name == "variants":
            continue
        key = f"tactics.{vtype}.{name}"
        _check(name in KNOBS[vtype], key, f"unknown knob; expected one of {', '.join(KNOBS[vtype])}")
        default = KNOBS[vtype][name]
        if isinstance(default, tuple):
            kind = int if all(isinstance(v, int) for v in default) else (int, float)  # counts and minutes: ints
            ok = (isinstance(value, list) and len(value) == 2 and all(isinstance(v, kind) for v in value)
                  and 0 <= value[0] <= value[1])
            what = "whole numbers " if kind is int else ""
            _check(ok, key, f"expected [low, high], {what}with 0 <= low <= high, got {value!r}")
        else:
            _check(isinstance(value, (int, float)) and value >= 0, key, f"expected a number >= 0, got {value!r}")


def world_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml":
        return path
    if str(name_or_path) not in WORLDS:
        raise ConfigError(f"world {str(name_or_path)!r} is unknown; expected one of {', '.join(WORLDS)} "
                          f"or a path to a .toml file")
    return WORLDS_DIR / f"{name_or_path}.toml"


@functools.lru_cache(maxsize=16)
def load_world(name_or_path: str | Path = DEFAULT_WORLD) -> World:
    """The world named `name_or_path` (a file in `simulator/worlds/`), or the TOML file at that path."""
    from pipeline.config import read_toml

    path = world_path(name_or_path)
    data = read_toml(path)
    try:
        spec = msgspec.convert(data, WorldSpec)
        _check_world(spec)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{path}: {_say(err, data)}") from None
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from None
    return World(spec, path)


def _say(err: msgspec.ValidationError, data: dict) -> str:
    """A check's own "key `x`: ..." joined to the path msgspec found it at; msgspec's errors as the config's."""
    message, _, where = str(err).partition(" - at `$")
    if message.startswith("key `"):
        inner, _, rest = message[5:].partition("`")
        return f"key `{join_key(where.rstrip('`').lstrip('.'), inner)}`{rest}"
    return validation_message(err, data)

