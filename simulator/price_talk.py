"""What hosts say about a listing's price on a LIVE: true or false, in the world's words and formats.

A host names the item with words of its listing's title (as real hosts do:
"this navy tote bag is only $9 today"), enough of them that no other listing
of the shop matches, and says an amount in one of the world's formats. The
amounts:

- `rounded_down`: the nearest round amount below the price (9.99 -> 9,
  150 -> 140, 1,480 -> 1,400); half the time for small prices .50 less
  (9.99 -> 8.50). Always strictly below the price.
- `rounded_up`: the nearest round amount above (9.99 -> 10), said as
  "under"/"less than" that amount: true.

>>> rounded_down(9.99), rounded_down(150.0), rounded_down(1480.0), rounded_up(9.99), rounded_up(150.0)
(9.0, 140.0, 1400.0, 10.0, 160.0)
>>> item_words("Harbor Canvas Tote Bag - Navy", "Tote Bag", ["Harbor Canvas Tote Bag - Navy"])
'tote bag'
>>> item_words("Harbor Canvas Tote Bag - Navy", "Tote Bag", ["Harbor Canvas Tote Bag - Navy", "Kestrel Tote Bag - Red"])
'harbor tote bag'
"""

from __future__ import annotations

import math
import random
import re

from simulator.population import Listing
from simulator.world import Currency, World

_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")


def _step(price: float) -> float:
    """The round step people use at this magnitude: 1 below 100, 10 below 1,000, then 100, ..."""
    return 10.0 ** max(0, math.floor(math.log10(max(price, 1.0))) - 1)


def rounded_down(price: float) -> float:
    step = _step(price)
    below = math.floor(price / step) * step
    return float(below if below < price else below - step)


def rounded_up(price: float) -> float:
    step = _step(price)
    above = math.ceil(price / step) * step
    return float(above if above > price else above + step)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def item_words(title: str, product_type: str | None, shop_titles: list[str]) -> str:
    """The fewest words of `title` (its product type first) that no other title of the shop contains."""
    words = _words(title)
    core = _words(product_type) if product_type else words[-2:]
    others = [set(_words(t)) for t in shop_titles if t != title]
    extras = [w for w in words if w not in core]
    for extra in [[]] + [[w] for w in extras] + [extras[i:i + 2] for i in range(len(extras) - 1)]:
        candidate = extra + core
        if not any(set(candidate) <= other for other in others):
            return " ".join(candidate)
    return " ".join(words)


def is_nameable(listing: Listing, shop_listings: list[Listing]) -> bool:
    """No other active listing of the shop has every word of this one's title."""
    words = set(_words(listing.title))
    return not any(words <= set(_words(other.title)) for other in shop_listings if other is not listing and other.active)


def say_amount(currency: Currency, amount: float, rng: random.Random, *, local: bool = False) -> str:
    """An amount in one of the world's spoken formats (`local`: one of its other honest formats)."""
    fmt = rng.choice(currency.local if local else currency.say)
    return currency.say_price(amount, fmt)


def say_abroad(currency: Currency, amount: float, rng: random.Random) -> str:
    """`amount` converted into the world's other currency, rounded up (an honest "about ...")."""
    abroad = currency.abroad
    converted = math.ceil(amount * abroad.per_unit)
    fmt = rng.choice(abroad.say)
    return fmt.text.replace("{amount}", f"{converted:,}".replace(",", fmt.thousands or currency.thousands))


def fill(template: str, **amounts: str) -> str:
    """A talk template with its {item}, {price}, {was}, {limit} or {abroad} filled in."""
    for key, value in amounts.items():
        template = template.replace("{" + key + "}", value)
    return template


# What a host says, by kind: False ones state a price below the listing's or a "was" it never charged.
FALSE_KINDS = ("rounded_down", "lower_price", "invented_was_price")
TRUE_KINDS = ("exact", "under", "real_was", "local", "abroad")


def line_about(world: World, kind: str, listing: Listing, shop_listings: list[Listing], rng: random.Random, *,
               was: float | None = None, share: float = 0.65) -> str:
    """One host line of `kind` about `listing` (its current price), naming it with words of its title.

    `was` is the former price for "real_was" (one the listing really charged); `share` the fraction
    of the price a "lower_price" line claims. "invented_was_price" claims a former price 1.5-3x
    anything the listing charged (`was` when given).
    """
    talk, currency = world.wording.price_talk, world.currency
    item = item_words(listing.title, listing.product_type, [o.title for o in shop_listings if o.active])
    price = listing.price
    if kind == "exact":
        return fill(rng.choice(talk.says_price), item=item, price=say_amount(currency, price, rng))
    if kind == "local":
        return fill(rng.choice(talk.says_price), item=item, price=say_amount(currency, price, rng, local=True))
    if kind == "abroad":
        return fill(rng.choice(talk.says_abroad), item=item, abroad=say_abroad(currency, price, rng))
    if kind == "under":
        return fill(rng.choice(talk.says_under), item=item, limit=say_amount(currency, rounded_up(price), rng))
    if kind in ("real_was", "invented_was_price"):
        assert was is not None, kind
        return fill(rng.choice(talk.says_was), item=item, was=say_amount(currency, was, rng),
                    price=say_amount(currency, price, rng))
    if kind == "rounded_down":
        said = rounded_down(price)
        if currency.decimals and price < 100 and said >= 1 and rng.random() < 0.5:
            said -= 0.5  # "only 8.50" for 9.99
    elif kind == "lower_price":
        said = rounded_down(max(1.5, price * share))
    else:
        raise ValueError(f"unknown price talk {kind!r}; expected one of {FALSE_KINDS + TRUE_KINDS}")
    assert 0 < said < price, (kind, said, price)
    return fill(rng.choice(talk.says_price), item=item, price=say_amount(currency, said, rng))
