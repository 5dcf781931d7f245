"""Pricing and goods detectors: price gouging, fake discounts, counterfeit listings.

All three read listing upserts, keyed by category, and judge a listing
against what the stream has taught about its category (`levels.py`): robust
price levels per currency and brand, and the words of its usual titles.

- `gouging.py`: `PriceGouging`;
- `discount.py`: `FakeDiscount`;
- `counterfeit.py`: `CounterfeitListing`.
"""
