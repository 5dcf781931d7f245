"""Listing titles and photos: small pure helpers over a world's data (`simulator/world.py`).

What a marketplace sells (categories, product types, going rates, brands,
colours and title shapes) is the world's data; these helpers turn one draw of
it into what a listing shows.

>>> from simulator.world import load_world
>>> world = load_world("home")
>>> bags = world.category["bags"]
>>> rng = random.Random(1)
>>> listing_title(rng, world, bags, "Harbor", bags.pick_type(rng))
'Harbor Leather Backpack - Olive'
>>> len(image_hash(rng))
16
"""

from __future__ import annotations

import random

from simulator.world import Category, ProductType, TitleShape, World


def image_hash(rng: random.Random) -> str:
    """A fresh 64-bit perceptual image hash, 16 hex chars."""
    return f"{rng.getrandbits(64):016x}"


def similar_image_hash(rng: random.Random, of: str, bits: tuple[int, int] = (1, 4)) -> str:
    """The perceptual hash of a re-shot photo of the same item: a few bits differ.

    >>> a = image_hash(random.Random(2))
    >>> 1 <= bin(int(a, 16) ^ int(similar_image_hash(random.Random(3), a), 16)).count("1") <= 4
    True
    """
    value = int(of, 16)
    for bit in random.Random(rng.getrandbits(32)).sample(range(64), rng.randint(*bits)):
        value ^= 1 << bit
    return f"{value:016x}"


def _shape(shapes: list[TitleShape], draw: float) -> str:
    return next(shape.text for shape in shapes if draw < shape.upto or shape is shapes[-1])


def listing_title(rng: random.Random, world: World, category: Category, brand: str | None,
                  product_type: ProductType) -> str:
    """An ordinary listing title in the world's shapes, e.g. "Harbor Canvas Tote Bag - Navy"."""
    adjective = rng.choice(category.adjectives)
    color = rng.choice(world.titles.colors)
    shapes = world.titles.unbranded if brand is None else world.titles.branded
    text = _shape(shapes, rng.random())
    return (text.replace("{brand}", brand or "").replace("{adjective}", adjective)
            .replace("{noun}", product_type.name).replace("{color}", color))
