"""shopguard detectors: plain-Python objects with explicit per-entity state.

`REGISTRY` maps each `[detectors.NAME]` table of `config/shopguard.toml` to
the detector class it configures and that class's config type. The dataflow
builds one instance per registered detector; adding a detector is one line
here and one table in the config.
"""

from detectors.listings import ListingSpam, ListingSpamConfig
from detectors.live import EngagementInflation, EngagementInflationConfig

REGISTRY: dict[str, tuple[type, type]] = {
    "listing_spam": (ListingSpam, ListingSpamConfig),
    "engagement_inflation": (EngagementInflation, EngagementInflationConfig),
}
