"""The catalog of abuse tactics and hard-negative scenarios a world can use, with their knobs.

A world file (`simulator/worlds/*.toml`) picks, per violation type, the
variants its abusers use and may retune their knobs (`[tactics.<type>]`);
the defaults below are the values the `home` world has always used. The
abuse and hard-negative modules read the knobs through `World.knob`, so a
world that leaves a knob out gets the default, and a world file that names
an unknown variant or knob fails when it is loaded.

>>> VARIANTS["fake_discount"][:2]
('inflated_was_existing', 'invented_was_new')
>>> KNOBS["counterfeit_listing"]["price_share"]
(0.05, 0.2)
"""

from __future__ import annotations

# Every catalog type, in the order abusers are planned (the order fixes the random draws:
# `misleading_price_claim` is last so the older types' draws are what they always were).
VIOLATION_TYPES = (
    "engagement_inflation", "order_brushing", "price_gouging", "fake_discount", "counterfeit_listing",
    "prohibited_listing", "listing_spam", "off_platform_solicitation", "misleading_claims", "account_takeover",
    "linked_accounts", "misleading_price_claim",
)

# The variants of each tactic (see `simulator/abuse.py` for what each one does and its evidence_ts).
VARIANTS: dict[str, tuple[str, ...]] = {
    "engagement_inflation": ("bought_viewers", "bought_followers", "bought_likes", "like_and_follow_burst",
                             "short_follow_burst", "slow_viewer_ramp"),
    "order_brushing": ("fresh_account_ring", "aged_account_ring", "shared_address_ring"),
    "price_gouging": ("steep_raise", "overpriced_new_listing", "raise_in_demand_spike", "stepwise_raise"),
    "fake_discount": ("inflated_was_existing", "invented_was_new", "raise_then_discount", "was_slightly_above_max"),
    "counterfeit_listing": ("cheap_protected", "replica_words", "replica_words_cheap", "few_percent_no_words",
                            "brand_in_title_only"),
    "prohibited_listing": ("disguised_keyword", "plain_keyword", "buried_in_ordinary_title"),
    "listing_spam": ("near_duplicate_burst", "colour_cycle_spam", "perceptual_near_duplicate", "slow_drip"),
    "off_platform_solicitation": ("host_speech", "listing_title", "host_comment_only", "answers_viewer_ask"),
    "misleading_claims": ("host_speech", "listing_title", "host_comment_only"),
    "account_takeover": ("foreign_new_device", "home_country_proxy", "quick_payout"),
    "linked_accounts": ("shared_device", "shared_payout", "device_then_payout"),
    "misleading_price_claim": ("rounded_down", "lower_price", "invented_was_price"),
}

# Knobs per type: name -> default (a (low, high) range, or one number). Ranges are inclusive.
KNOBS: dict[str, dict[str, tuple[float, float] | float]] = {
    "engagement_inflation": {
        "live_minutes": (30, 90), "viewer_factor": (5.0, 30.0), "follower_factor": (20.0, 100.0),
        "follower_extra_ticks": (3, 19), "like_factor": (10.0, 50.0), "like_extra_ticks": (5, 29),
        "burst_ticks": (6, 12), "burst_factor": (20.0, 60.0), "ramp_ticks": (3, 6)},
    "order_brushing": {"orders": (15, 60), "minutes": (10, 40), "aged_days": (30, 700)},
    "price_gouging": {"raise_factor": (3.0, 10.0), "overprice_factor": (4.0, 15.0), "spike_raise": (2.5, 5.0),
                      "spike_orders": (25, 70), "spike_minutes": (10, 25), "step_factor": (1.3, 1.55),
                      "total_raise": (3.3, 5.0)},
    "fake_discount": {"was_over_highest": (2.0, 6.0), "new_was_factor": (3.0, 8.0), "raise_factor": (1.4, 2.3),
                      "raised_minutes": (10, 60), "slightly_above": (1.15, 1.4)},
    "counterfeit_listing": {"price_share": (0.05, 0.20), "words_share": (0.10, 0.45),
                            "few_percent_share": (0.02, 0.08)},
    "prohibited_listing": {"extra_items": (0, 3)},
    "listing_spam": {"listings": (6, 30), "minutes": (12, 55), "drip_minutes": (90, 180)},
    "off_platform_solicitation": {"live_minutes": (30, 80)},
    "misleading_claims": {"live_minutes": (30, 80)},
    "account_takeover": {"delay_minutes": (5, 60), "quick_minutes": (1, 4)},
    "linked_accounts": {"tie_minutes": (20, 60)},
    "misleading_price_claim": {"live_minutes": (30, 80), "lower_share": (0.5, 0.8), "was_factor": (1.5, 3.0),
                               "utterances": (1, 4)},
}

# Hard-negative scenarios (see `simulator/negatives.py`), in planning order (older ones first).
SCENARIOS = (
    "organic_viral_live", "genuine_flash_sale", "premium_brand_seller", "legitimate_clearance", "traveller_login",
    "restock_relist", "viewer_asks_whatsapp", "honest_health_talk",
    "expensive_product_type", "genuine_sale_after_history", "authorized_reseller", "brand_outlet_clearance",
    "shoutout_follower_spike", "first_order_promo", "modest_raise_in_demand", "colour_variants_listing",
    "innocent_lookalike_words", "shared_device_household", "exact_price_talk", "rounded_up_price_talk",
    "real_former_price_talk", "local_format_price_talk",
)

# Which abuse each hard negative resembles (documentation, and a test that every type has one).
LOOKS_LIKE: dict[str, str] = {
    "organic_viral_live": "engagement_inflation", "shoutout_follower_spike": "engagement_inflation",
    "genuine_flash_sale": "order_brushing", "first_order_promo": "order_brushing",
    "expensive_product_type": "price_gouging", "modest_raise_in_demand": "price_gouging",
    "legitimate_clearance": "fake_discount", "genuine_sale_after_history": "fake_discount",
    "premium_brand_seller": "counterfeit_listing", "authorized_reseller": "counterfeit_listing",
    "brand_outlet_clearance": "counterfeit_listing", "innocent_lookalike_words": "prohibited_listing",
    "restock_relist": "listing_spam", "colour_variants_listing": "listing_spam",
    "viewer_asks_whatsapp": "off_platform_solicitation", "honest_health_talk": "misleading_claims",
    "traveller_login": "account_takeover", "shared_device_household": "linked_accounts",
    "exact_price_talk": "misleading_price_claim", "rounded_up_price_talk": "misleading_price_claim",
    "real_former_price_talk": "misleading_price_claim", "local_format_price_talk": "misleading_price_claim",
}
