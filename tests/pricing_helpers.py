"""Builders shared by the pricing and price-claim tests: listing events, a category market, an NDJSON file."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Iterable

import msgspec

from detectors.base import Signal
from pipeline.contract.events import BrandRegistered, ListingCreated, ListingUpdated
from tests.detector_helpers import shipped

T0 = 1_793_491_200_000
MIN = 60_000
HOUR = 60  # in minutes, the unit `upsert` takes
DAY = 24 * HOUR

ADJECTIVES = ("Handmade", "Minimalist", "Cozy", "Rustic", "Modern", "Soft")
COLORS = ("Black", "White", "Navy", "Beige", "Olive", "Sage")
# What a "home" category sells: cheap goods, one legitimately expensive product type.
HOME_GOODS = {"Scented Candle": 15.0, "Ceramic Mug": 12.0, "Ceramic Vase": 25.0, "Throw Blanket": 35.0}
STANDING_DESK = {"Standing Desk": 450.0}


def upsert(listing: str, price: float, *, minute: float, seller: str = "S1", was: float | None = None,
           stock: int | None = 10, title: str = "Cozy Scented Candle - Sage", brand: str | None = None,
           created: bool = False, category: str = "home", currency: str = "USD"):
    """`listing.created` (created=True) or `listing.updated` for `listing`, `minute` minutes after T0."""
    kind = ListingCreated if created else ListingUpdated
    return kind(event_id=f"{listing}@{minute}:{price}:{was}:{stock}", ts=T0 + int(minute * MIN), seller_id=seller,
                listing_id=listing, title=title, category=category, price=price, currency=currency, brand=brand,
                original_price=was, image_hash=None, stock=stock)


def brand_registered(brand: str, *aliases: str, minute: float = 0):
    return BrandRegistered(event_id=f"brand:{brand}", ts=T0 + int(minute * MIN), brand=brand, aliases=list(aliases))


def market(goods: dict[str, float], n: int, *, brand: str | None = None, category: str = "home",
           minutes: float = 40.0, seed: int = 1, prefix: str = "W") -> list:
    """`n` honest listings created over `minutes`, by 40 sellers, round-robin over `goods` (title -> going
    rate), each priced within a realistic spread of its going rate, titled with an adjective and a colour."""
    rng = random.Random(seed)
    kinds = list(goods.items())
    events = []
    for i in range(n):
        noun, level = kinds[i % len(kinds)]
        price = round(level * math.exp(0.25 * max(-2.0, min(2.0, rng.gauss(0, 1)))), 2)
        title = f"{rng.choice(ADJECTIVES)} {noun} - {rng.choice(COLORS)}"
        events.append(upsert(f"{prefix}{i}", price, minute=minutes * i / n, seller=f"H{i % 40}",
                             title=f"{brand} {title}" if brand else title, brand=brand, created=True,
                             category=category))
    return events


class Marketplace:
    """The `pricing` detector as a detect shard drives it: a market per category, the brand registry shared."""

    def __init__(self, **overrides: Any) -> None:
        self.detector = shipped("pricing", **overrides)
        self.states: dict[str, Any] = {}
        self.registry: Any = None

    def feed(self, events: Iterable[Any]) -> list[Signal]:
        found: list[Signal] = []
        for event in events:
            if type(event) is BrandRegistered:
                self.registry = self.detector.on_shared(self.registry, event)
                continue
            key = self.detector.entity(event)
            self.states[key], signals = self.detector.on_event(self.states.get(key), event, shared=self.registry)
            found.extend(signals)
        return found


def judged(events: Iterable[Any], **overrides: Any) -> list[Signal]:
    """The signals a fresh marketplace (shipped config plus `overrides`) issues for `events`."""
    return Marketplace(**overrides).feed(events)


def write_ndjson(path: Path, events: Iterable[Any]) -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in events))
    return path
