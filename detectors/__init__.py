"""shopguard detectors: plain-Python objects with explicit per-entity state.

`REGISTRY` maps each `[detectors.NAME]` table of `config/shopguard.toml` to
the detector class it configures and that class's config type. The dataflow
builds one instance per registered detector; adding a detector is one line
here and one table in the config.
"""

from detectors.listings import ListingSpam, ListingSpamConfig
from detectors.listings import CounterfeitListing, CounterfeitListingConfig
from detectors.listings import FakeDiscount, FakeDiscountConfig
from detectors.listings import PriceGouging, PriceGougingConfig
from detectors.live import EngagementInflation, EngagementInflationConfig
from detectors.orders import OrderBrushing, OrderBrushingConfig
from detectors.security import AccountTakeover, AccountTakeoverConfig
from detectors.security import LinkedAccounts, LinkedAccountsConfig
from detectors.text import MisleadingClaims, MisleadingClaimsConfig
from detectors.text import OffPlatformSolicitation, OffPlatformSolicitationConfig
from detectors.text import ProhibitedListing, ProhibitedListingConfig

REGISTRY: dict[str, tuple[type, type]] = {
    "listing_spam": (ListingSpam, ListingSpamConfig),
    "price_gouging": (PriceGouging, PriceGougingConfig),
    "fake_discount": (FakeDiscount, FakeDiscountConfig),
    "counterfeit_listing": (CounterfeitListing, CounterfeitListingConfig),
    "engagement_inflation": (EngagementInflation, EngagementInflationConfig),
    "order_brushing": (OrderBrushing, OrderBrushingConfig),
    "account_takeover": (AccountTakeover, AccountTakeoverConfig),
    # Reads no contract event (no detect step builds it): the link_accounts step feeds it IdentifierNotes.
    "linked_accounts": (LinkedAccounts, LinkedAccountsConfig),
    "prohibited_listing": (ProhibitedListing, ProhibitedListingConfig),
    "off_platform_solicitation": (OffPlatformSolicitation, OffPlatformSolicitationConfig),
    "misleading_claims": (MisleadingClaims, MisleadingClaimsConfig),
}
