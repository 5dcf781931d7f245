"""Small builders for the pricing examples and tests: a shipped config, a listing event."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec

from pipeline.contract.events import ListingCreated, ListingUpdated


def example_config(**comparable):
    """`[detectors.pricing]` as config/shopguard.toml ships it, with `comparable` keys changed."""
    from detectors.pricing.detector import PricingConfig

    path = Path(__file__).resolve().parents[2] / "config" / "shopguard.toml"
    with open(path, "rb") as f:
        table = tomllib.load(f)["detectors"]["pricing"]
    table = {**table, "comparable": {**table["comparable"], **comparable}}
    return msgspec.convert(table, PricingConfig)


def listing(i: int, title: str, price: float, *, was: float | None = None, minute: int | None = None,
            listing_id: str | None = None, seller: str = "S1", category: str = "home", brand: str | None = None,
            currency: str = "USD", stock: int | None = 5):
    """A listing event: `listing.created` for a new id, `listing.updated` when `listing_id` is given."""
    kind = ListingUpdated if listing_id else ListingCreated
    return kind(event_id=f"e{i}", ts=(i if minute is None else minute) * 60_000, seller_id=seller,
                listing_id=listing_id or f"L{i}", title=title, category=category, price=price, currency=currency,
                brand=brand, original_price=was, image_hash=None, stock=stock)
