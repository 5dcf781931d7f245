"""Hard negatives: honest actors who look suspicious. None of them is ever labelled.

Each scenario is played by honest actors taken from the ordinary population
(never an injected abuser), after the first hour like the abuse. Every
catalog type has at least one look-alike (`simulator/tactics.py` LOOKS_LIKE):

- organic_viral_live: the real audience of a LIVE grows 10-20x over 5-15
  minutes, and likes, comments, distinct commenters and orders grow with it.
- shoutout_follower_spike: a shout-out or raid: viewers up 1.8-3x at once,
  newcomers greet the host, follows at 15-40x the usual rate for 1-2 minutes.
- genuine_flash_sale: a sale (real "was" price), then 40-150 orders within
  10-30 minutes from distinct, long-standing buyer accounts.
- first_order_promo: 20-50 brand-new buyer accounts order within 20-40
  minutes, each with its own device, card and address.
- premium_brand_seller: every premium seller: protected brands at their going rates.
- authorized_reseller: an everyday shop with 2-4 protected-brand items at the
  brand's going rate.
- brand_outlet_clearance: a premium seller clears 2-6 listings 40-65% off for
  good ("was" = the real price).
- legitimate_clearance: 3-8 listings marked down 40-75%, "was" = the real previous price.
- genuine_sale_after_history: a 5-12% rise held for hours, then a 20-45% sale
  whose "was" is that long-charged price.
- expensive_product_type: 2-5 listings of a product type several times its
  category's going rate (a standing desk among home goods), at its own rate.
- modest_raise_in_demand: a rush of real orders; the seller raises 10-25%.
- traveller_login: a sign-in from abroad on a new device with no payout change,
  or with a payout change hours later, after signing in at home again.
- shared_device_household: two sellers of one household share a laptop.
- restock_relist: a sold-out listing comes back 2-3 times, hours apart, with a
  similar title and a new photo each time.
- colour_variants_listing: one product in 4-7 colours, each with its own photo.
- innocent_lookalike_words: titles with banned-sounding words ("glue gun").
- viewer_asks_whatsapp: viewers ask for outside contact (`by_host` false) and
  the host declines without naming any app.
- honest_health_talk: ordinary wellness talk ("this moisturizer helps dry
  skin") on a LIVE, or in a seller's listing titles.
- exact_price_talk, rounded_up_price_talk ("under $10" for 9.99),
  real_former_price_talk ("was" a price the listing really charged),
  local_format_price_talk (the exact price in another format of the world, or
  honestly converted into another currency): a host talks about one of the
  shop's listings, naming it with words of its title, like the
  misleading_price_claim abusers do.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.negatives_accounts import shared_device_household, traveller_login
from simulator.negatives_listings import (
    authorized_reseller,
    brand_outlet_clearance,
    colour_variants_listing,
    expensive_product_type,
    first_order_promo,
    genuine_flash_sale,
    genuine_sale_after_history,
    innocent_lookalike_words,
    legitimate_clearance,
    modest_raise_in_demand,
    premium_brand_sellers,
    restock_relist,
)
from simulator.negatives_live import (
    exact_price_talk,
    honest_health_talk,
    local_format_price_talk,
    organic_viral_live,
    real_former_price_talk,
    rounded_up_price_talk,
    shoutout_follower_spike,
    viewer_asks_whatsapp,
)
from simulator.population import Population
from simulator.scenario import HonestVolunteers, Plan
from simulator.tactics import SCENARIOS

_PLANNERS: dict[str, Callable[[Population, HonestVolunteers, int], Plan]] = {
    "organic_viral_live": organic_viral_live,
    "genuine_flash_sale": genuine_flash_sale,
    "legitimate_clearance": legitimate_clearance,
    "traveller_login": traveller_login,
    "restock_relist": restock_relist,
    "viewer_asks_whatsapp": viewer_asks_whatsapp,
    "honest_health_talk": honest_health_talk,
    "expensive_product_type": expensive_product_type,
    "genuine_sale_after_history": genuine_sale_after_history,
    "authorized_reseller": authorized_reseller,
    "brand_outlet_clearance": brand_outlet_clearance,
    "shoutout_follower_spike": shoutout_follower_spike,
    "first_order_promo": first_order_promo,
    "modest_raise_in_demand": modest_raise_in_demand,
    "colour_variants_listing": colour_variants_listing,
    "innocent_lookalike_words": innocent_lookalike_words,
    "shared_device_household": shared_device_household,
    "exact_price_talk": exact_price_talk,
    "rounded_up_price_talk": rounded_up_price_talk,
    "real_former_price_talk": real_former_price_talk,
    "local_format_price_talk": local_format_price_talk,
}
assert set(_PLANNERS) | {"premium_brand_seller"} == set(SCENARIOS)


def plan_hard_negatives(pop: Population, per_scenario: int) -> list[Plan]:
    """Every premium seller, then `per_scenario` actors (or pairs) per scenario, in a fixed order."""
    who = HonestVolunteers(pop, pop.rng("negative", "volunteers"))
    plans = [premium_brand_sellers(pop)]
    for planner in _PLANNERS.values():
        plans += [planner(pop, who, i) for i in range(per_scenario)]
    return plans


__all__ = ["SCENARIOS", "plan_hard_negatives"]
