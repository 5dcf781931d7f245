"""What the marketplace sells: categories, price levels, brands and listing titles.

Everything here is static reference data plus small pure helpers. Price levels
are plain US-dollar medians of what an ordinary listing in a category costs;
the per-seed spread (which ordinary brands exist, how each is priced) is drawn
by the cast builder from these tables.

>>> retail_price(14.2), retail_price(149.6), retail_price(1234.0)
(13.99, 150.0, 1250.0)
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str
    median_price: float  # the going rate of an ordinary listing, USD
    price_sigma: float  # lognormal spread of ordinary listings around their brand level
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]


_COLORS = ("Black", "White", "Navy", "Beige", "Olive", "Red", "Pink", "Brown", "Grey", "Sage", "Cream", "Blue")

CATEGORIES: tuple[Category, ...] = (
    Category("bags", 55.0, 0.45,
             ("Tote Bag", "Crossbody Bag", "Backpack", "Clutch", "Shoulder Bag", "Wallet", "Duffel Bag",
              "Belt Bag", "Card Holder", "Bucket Bag"),
             ("Canvas", "Leather", "Quilted", "Mini", "Classic", "Woven", "Vegan Leather", "Everyday")),
    Category("shoes", 68.0, 0.45,
             ("Running Shoes", "Sneakers", "Ankle Boots", "Loafers", "Sandals", "Pumps", "Hiking Boots",
              "Slip-Ons", "Ballet Flats"),
             ("Lightweight", "Classic", "Suede", "Leather", "Platform", "Breathable", "Cushioned")),
    Category("electronics", 150.0, 0.55,
             ("Wireless Earbuds", "Bluetooth Speaker", "Smartwatch", "Power Bank", "Mechanical Keyboard",
              "Webcam", "Noise-Cancelling Headphones", "Action Camera", "Portable Monitor", "Gaming Mouse"),
             ("Compact", "Pro", "Fast-Charging", "Waterproof", "Slim", "4K", "Ergonomic")),
    Category("beauty", 22.0, 0.45,
             ("Lipstick", "Face Serum", "Moisturizer", "Eyeshadow Palette", "Perfume", "Setting Spray",
              "Sunscreen SPF 50", "Foundation", "Mascara", "Cleansing Balm"),
             ("Hydrating", "Matte", "Vegan", "Long-Wear", "Fragrance-Free", "Dewy", "Travel Size")),
    Category("home", 38.0, 0.5,
             ("Throw Blanket", "Ceramic Vase", "Scented Candle", "Cotton Sheet Set", "Table Lamp",
              "Cookware Set", "Storage Baskets", "Wall Clock", "Linen Tablecloth"),
             ("Handmade", "Minimalist", "Cozy", "Rustic", "Modern", "Soft", "Stoneware")),
    Category("toys", 24.0, 0.45,
             ("Building Blocks Set", "Plush Bear", "Jigsaw Puzzle", "RC Car", "Doll House", "Board Game",
              "Stacking Rings", "Craft Kit", "Marble Run"),
             ("Wooden", "Educational", "Deluxe", "Mini", "Classic", "Glow-in-the-Dark")),
    Category("apparel", 32.0, 0.45,
             ("Hoodie", "Denim Jacket", "Linen Shirt", "Yoga Leggings", "Midi Dress", "Wool Sweater",
              "T-Shirt", "Cargo Pants", "Rain Jacket"),
             ("Oversized", "Organic Cotton", "Relaxed Fit", "Cropped", "Classic", "Ribbed")),
    Category("jewelry", 70.0, 0.55,
             ("Pendant Necklace", "Hoop Earrings", "Charm Bracelet", "Signet Ring", "Stud Earrings",
              "Anklet", "Tennis Bracelet", "Chain Necklace"),
             ("Sterling Silver", "Gold-Plated", "Dainty", "Pearl", "Minimalist", "Vintage")),
    Category("sports", 45.0, 0.5,
             ("Yoga Mat", "Dumbbell Set", "Resistance Bands", "Water Bottle", "Cycling Gloves",
              "Tennis Racket", "Foam Roller", "Jump Rope", "Gym Bag"),
             ("Non-Slip", "Adjustable", "Insulated", "Lightweight", "Pro", "Heavy-Duty")),
    Category("books", 15.0, 0.4,
             ("Paperback Novel", "Cookbook", "Kids Picture Book", "Graphic Novel", "Journal Notebook",
              "Travel Guide", "Study Guide", "Poetry Collection"),
             ("Signed", "Illustrated", "Hardcover", "Bestselling", "Pocket", "Collector's")),
    Category("health", 20.0, 0.45,
             ("Vitamin D3 Gummies", "Protein Powder", "Electrolyte Tablets", "Magnesium Capsules",
              "Herbal Tea", "First Aid Kit", "Digital Thermometer", "Fish Oil Softgels"),
             ("Sugar-Free", "Unflavored", "Family Size", "Vegan", "30-Day Supply", "Travel")),
    Category("collectibles", 48.0, 0.65,
             ("Trading Card Pack", "Vinyl Figure", "Enamel Pin Set", "Vintage Postcard", "Die-Cast Model Car",
              "Art Print", "Coin Album", "Snow Globe"),
             ("Limited Edition", "Vintage", "Mint Condition", "Boxed", "Rare", "Numbered")),
    Category("watches", 110.0, 0.5,
             ("Chronograph Watch", "Dive Watch", "Dress Watch", "Field Watch", "Automatic Watch",
              "Digital Watch", "Pilot Watch"),
             ("Stainless Steel", "Leather Strap", "Minimalist", "Sapphire Glass", "Solar", "Two-Tone")),
)
CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}

# Protected luxury brands with their real price level (USD, typical listing) per
# category. Honest premium sellers sell these at about this level; counterfeiters
# sell them at a small fraction of it.
LUXURY_BRANDS: dict[str, tuple[tuple[str, float], ...]] = {
    "bags": (("Louis Vuitton", 1750.0), ("Gucci", 1450.0), ("Prada", 1550.0), ("Chanel", 4600.0),
             ("Hermès", 7800.0)),
    "shoes": (("Christian Louboutin", 850.0), ("Gucci", 780.0), ("Balenciaga", 920.0), ("Jimmy Choo", 690.0)),
    "apparel": (("Gucci", 1150.0), ("Prada", 1050.0), ("Moncler", 1400.0), ("Burberry", 890.0)),
    "jewelry": (("Cartier", 4300.0), ("Tiffany & Co.", 1200.0), ("Bulgari", 3400.0), ("Van Cleef & Arpels", 3900.0)),
    "watches": (("Rolex", 10500.0), ("Omega", 5200.0), ("TAG Heuer", 2100.0), ("Cartier", 6400.0)),
    "beauty": (("La Mer", 360.0), ("Chanel", 145.0), ("Dior", 130.0), ("Tom Ford", 240.0)),
}
LUXURY_CATEGORIES = tuple(LUXURY_BRANDS)

# Made-up ordinary brands; the cast builder gives each category a handful.
ORDINARY_BRANDS = (
    "Harbor", "Northway", "Kestrel", "Lumo", "Brightline", "Oakmere", "Juniper Lane", "Pinecrest", "Solace",
    "Everpeak", "Marlow", "Tidewater", "Fernhill", "Copperleaf", "Bramble & Co", "Alder", "Nimbus", "Wrenfield",
    "Quarry", "Saltmarsh", "Bluebird", "Holloway", "Ivywood", "Redstone", "Cobalt Co", "Westbrook", "Linden",
    "Hearth & Pine", "Meridian", "Starling", "Greyfriars", "Driftwood", "Moss & Stone", "Aurora Goods", "Kinfolk",
    "Beacon", "Foxglove", "Riverside", "Palisade", "Orchard Row",
)


def retail_price(x: float) -> float:
    """Round a raw price to what a shop would put on the tag (x.99 below $100)."""
    if x < 1.5:
        return 0.99
    if x < 100:
        return round(round(x) - 0.01, 2)
    if x < 1000:
        return float(round(x / 5) * 5)
    return float(round(x / 50) * 50)


def image_hash(rng: random.Random) -> str:
    """A fresh 64-bit perceptual image hash, 16 hex chars."""
    return f"{rng.getrandbits(64):016x}"


def listing_title(rng: random.Random, category: Category, brand: str | None) -> str:
    """An ordinary listing title, e.g. "Harbor Canvas Tote Bag - Navy"."""
    noun = rng.choice(category.nouns)
    adjective = rng.choice(category.adjectives)
    color = rng.choice(_COLORS)
    shape = rng.random()
    if brand is None:
        return f"{adjective} {noun} - {color}" if shape < 0.6 else f"{adjective} {noun} ({color})"
    if shape < 0.55:
        return f"{brand} {adjective} {noun} - {color}"
    if shape < 0.8:
        return f"{brand} {noun}, {adjective}, {color}"
    return f"{adjective} {noun} by {brand} - {color}"
