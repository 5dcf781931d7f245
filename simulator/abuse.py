"""Injected abusers: one plan per abusive actor, with its ground-truth labels.

A plan is drawn when the cast is built, before anything runs: it fixes the
abuser's profile, variant, intensity and every timestamp that matters, so
`labels()` knows each `evidence_ts` without generating the stream, and the
plan's scripts then play exactly that on the timeline. Each abuser also lives
an ordinary life (catalog, orders, sign-ins, honest LIVEs) from the same draws
as everyone else, and turns abusive at a random time after the first hour
(`Window.abuse_start`), so per-actor baselines exist. Intensities vary per
abuser: some are blatant, many are moderate. Abuser number i of a type uses
the variant `variants[i % len(variants)]` of its world (`[tactics.<type>]`),
with the world's knobs (`simulator/tactics.py` has the defaults quoted below).

When the evidence becomes sufficient (`evidence_ts`), per type and variant:

- engagement_inflation (creator; viewers, likes, comments stay real):
  - bought_viewers: viewers 5-30x the previous interval's within one or two
    stats intervals, engagement and distinct commenters at the pre-jump level;
    evidence = the `live.stats` at which the jump is complete.
  - slow_viewer_ramp: the same bought level reached over 3-6 intervals;
    evidence = the `live.stats` at which the ramp is complete.
  - bought_followers: `new_followers` 20-100x the creator's normal rate for
    4-20 intervals; evidence = the first such `live.stats`.
  - bought_likes: likes 10-50x the normal rate for 6-30 intervals (viewers,
    comments flat); evidence = the first such `live.stats`.
  - short_follow_burst / like_and_follow_burst: follows (and likes) at 20-60x
    the LIVE's own rate for 6-12 intervals (one to two minutes), viewers and
    chat flat; evidence = the first such `live.stats`.
- order_brushing (seller): evidence = the 10th order of the ring.
  - fresh_account_ring: 15-60 orders within 10-40 minutes from accounts 0-3
    days old sharing 1-4 devices, 1-3 payment hashes and 1-3 addresses, on 1-2
    cheap listings (its own new one or its cheapest); 30-90% refunded later.
  - aged_account_ring: the same with bought accounts 30-700 days old on 1-3
    devices and 1-2 cards; 10-40% refunded.
  - shared_address_ring ("empty boxes"): accounts 0-25 days old, one device
    each, every parcel to 1-2 addresses paid by 1-2 cards, on everyday
    listings; almost never refunded.
- price_gouging (seller):
  - steep_raise: a `listing.updated` raising an in-stock listing 3-10x in one
    step; evidence = that update.
  - overpriced_new_listing: a `listing.created` at 4-15x its product type's
    going rate, ordinary brand or none; evidence = that listing.
  - raise_in_demand_spike: 25-70 orders from distinct, long-standing buyers in
    10-25 minutes on one listing; 35-60% into the rush its price is raised
    2.5-5x; evidence = the raise.
  - stepwise_raise: two or three raises 5-15 minutes apart, the earlier ones
    1.3-1.55x each, all together 3.3-5x the price before the first; evidence =
    the last raise (the first at which the listing stands >= 3.3x its own
    recent price).
- fake_discount (seller): evidence = the first listing event showing the
  invented "was" price.
  - inflated_was_existing: `original_price` 2-6x the highest price the
    listing ever had in the stream.
  - was_slightly_above_max: `original_price` 1.15-1.4x that highest price
    (price cut 2-15% so it looks like a sale).
  - invented_was_new: a new listing whose `original_price` is 3-8x its brand's
    (at least its category's) going rate for its product type.
  - raise_then_discount: the price is raised 1.4-2.3x (no "was"), held 10-60
    minutes, then "discounted" back to 97-100% of the old price with the
    raised price as `original_price`; evidence = that discount.
- counterfeit_listing (seller): evidence = the first counterfeit
  `listing.created`; the brand is one of the world's protected brands, the
  price a share of its going rate for the product type.
  - cheap_protected: 5-20%, an ordinary title; few_percent_no_words: 2-8%,
    an ordinary title (the seller never says "replica").
  - replica_words: replica wording next to the brand (the world's phrasings),
    10-45%; replica_words_cheap: replica wording at 5-20%.
  - brand_in_title_only: replica wording, the brand (or one of its registered
    aliases) only in the title, `brand` null, 10-45%.
- prohibited_listing (seller): evidence = the first `listing.created` of a
  banned item (the world's weapons, drugs, wildlife products, documents...).
  - disguised_keyword: keyword plain or disguised (leet, spacing, dots,
    homoglyphs, zero-width spaces...); plain_keyword: never disguised;
    buried_in_ordinary_title: an ordinary title, then " | " and the item.
- listing_spam (seller): evidence = the 5th copy's `listing.created`.
  - near_duplicate_burst: 6-30 copies in 12-55 minutes, same image hash,
    titles equal up to numbers, emoji and word order.
  - colour_cycle_spam: the same photo, titles cycling colours and sizes.
  - perceptual_near_duplicate: re-shot photos (image hashes 1-4 bits apart),
    near-duplicate titles.
  - slow_drip: 6-30 copies spread over 90-180 minutes.
- off_platform_solicitation (creator or seller): evidence = the first host
  line, host comment (`by_host` true) or listing title steering buyers off
  the platform (the world's apps and payment methods, maybe disguised).
  - host_speech: transcript lines, a third typed as host comments;
    host_comment_only: typed only; answers_viewer_ask: viewers ask for a
    contact and the host answers with one in a host comment (evidence = the
    first answer); listing_title: a seller's titles.
- misleading_claims (creator or seller): evidence = the first host line, host
  comment or listing title with a medical, weight-loss, earnings or
  false-certification claim (host_speech, host_comment_only, listing_title).
- account_takeover (seller or creator): evidence = the
  `account.payout_changed` that follows a sign-in from a device never seen
  for that actor: foreign_new_device: from a country never seen, 5-60
  minutes earlier; home_country_proxy: from the actor's own country (a proxy),
  5-60 minutes earlier; quick_payout: abroad, 1-4 minutes earlier.
- linked_accounts: the first event of the new account B that ties it to the
  suspended account A: a sign-in from A's device (shared_device,
  device_then_payout), or a payout change to A's payout hash (shared_payout).
  It comes 20-60 minutes after A's last severe listing (A posts 4-7
  prohibited and counterfeit listings 8-25 minutes apart, labelled for A as
  well), i.e. after A's suspension would have been reached. B does not exist
  before A's spree is over. (Streams shorter than about five hours squeeze
  this timeline proportionally.)
- misleading_price_claim (creator): a host line (`live.transcript`, or
  `live.comment` with `by_host` true) on a LIVE whose `live.started`
  `seller_id` is the shop names one of the shop's listings with words of its
  title that no other listing of the shop has, and states (see
  `simulator/price_talk.py`): rounded_down: the round amount just below its
  price (9.99 -> "$9" or "8.50"); lower_price: 50-80% of its price;
  invented_was_price: its real price, and a former price 1.5-3x the highest it
  ever charged. Evidence = the first such line; 1-4 lines per LIVE, later ones
  repeat the claim or state the exact price.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from simulator.abuse_accounts import account_takeover, linked_accounts, order_brushing
from simulator.abuse_listings import counterfeit_listing, fake_discount, listing_spam, price_gouging, prohibited_listing
from simulator.abuse_live import engagement_inflation, misleading_price_claim
from simulator.abuse_words import misleading_claims, off_platform_solicitation
from simulator.population import Population
from simulator.scenario import Plan
from simulator.tactics import VIOLATION_TYPES

PLANNERS: dict[str, Callable[[Population, int], Plan]] = {
    "engagement_inflation": engagement_inflation,
    "order_brushing": order_brushing,
    "price_gouging": price_gouging,
    "fake_discount": fake_discount,
    "counterfeit_listing": counterfeit_listing,
    "prohibited_listing": prohibited_listing,
    "listing_spam": listing_spam,
    "off_platform_solicitation": off_platform_solicitation,
    "misleading_claims": misleading_claims,
    "account_takeover": account_takeover,
    "linked_accounts": linked_accounts,
    "misleading_price_claim": misleading_price_claim,
}
assert tuple(PLANNERS) == VIOLATION_TYPES


def plan_abuse(pop: Population, per_type: int) -> list[Plan]:
    """`per_type` abusers of every catalog type, in catalog order (deterministic), labels naming their variant."""
    plans = []
    for violation in VIOLATION_TYPES:
        for i in range(per_type):
            plan = PLANNERS[violation](pop, i)
            variant = pop.world.variant(violation, i)
            plan.labels = [replace(label, variant=variant if label.violation_type == violation
                                   else f"{violation}/{variant}") for label in plan.labels]
            plans.append(plan)
    return plans


__all__ = ["VIOLATION_TYPES", "PLANNERS", "plan_abuse"]
