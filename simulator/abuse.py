"""Injected abusers: one plan per abusive actor, with its ground-truth labels.

A plan is drawn when the cast is built, before anything runs: it fixes the
abuser's profile, intensity and every timestamp that matters, so
`labels()` knows each `evidence_ts` without generating the stream, and the
plan's scripts then play exactly that on the timeline. Each abuser also lives
an ordinary life (catalog, orders, sign-ins, honest LIVEs) from the same
draws as everyone else, and turns abusive at a random time after the first
hour (`Window.abuse_start`), so per-actor baselines exist. Intensities vary
per abuser: some are blatant, many are moderate.

When the evidence becomes sufficient (`evidence_ts`), per violation type:

- engagement_inflation: the first `live.stats` event at the bought level.
  Viewers: the stats event at which the jump is complete (viewers 5-30x the
  previous interval's within one or two intervals, likes/comments/shares and
  distinct commenters still at the pre-jump level). Followers:
  the first stats event with `new_followers` 20-100x the creator's normal rate
  (no change in comments or viewers). Likes: the first stats event with likes
  10-50x the normal rate (no change in viewers or comments).
- order_brushing: the 10th order of the burst (15-60 orders within 10-40
  minutes from accounts 0-3 days old sharing 1-4 devices, 1-3 payment hashes
  and 1-3 addresses, on 1-2 cheap listings; 30-90% refunded later).
- price_gouging: the first gouging event: a `listing.updated` raising an
  in-stock listing 3-10x in one step, or a `listing.created` priced 4-15x its
  category's going rate (the category median) with an ordinary brand or none.
- fake_discount: the first listing event whose `original_price` is 2-6x the
  highest price that listing ever had in the stream, or, for a new listing,
  3-8x its brand's (or category's) price level.
- counterfeit_listing: the first counterfeit `listing.created`: a protected
  luxury brand at 5-20% of its price level, and/or replica wording in the title
  (then at 10-45% of the level).
- prohibited_listing: the first `listing.created` for a banned item (weapons,
  drugs, wildlife products, fake documents or money), keyword plain or
  disguised.
- listing_spam: the 5th near-duplicate `listing.created` (same image hash,
  title equal up to numbers, emoji and word order; 6-30 of them in under an hour).
- off_platform_solicitation: the first host transcript line or host comment
  (`by_host` true) steering buyers off the platform, or the first listing whose
  title does.
- misleading_claims: the first host transcript line, host comment or listing
  title with a medical, weight-loss, earnings or false-certification claim.
- account_takeover: the `account.payout_changed` that follows, 5-60 minutes
  later, a sign-in from a device and a country never seen for that actor.
- linked_accounts: the first event of the new account B that ties it to the
  suspended account A: a sign-in from A's device, or a payout change to A's
  payout hash. It comes 20-60 minutes after A's last severe listing (A posts 4-7
  prohibited and counterfeit listings 8-25 minutes apart, labelled for A as
  well), i.e. after A's suspension would have been reached. B does not exist
  before A's spree is over. (Streams shorter than about five hours squeeze this
  timeline proportionally.)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

from simulator.catalog import (
    CATEGORY_BY_NAME,
    LUXURY_BRANDS,
    LUXURY_CATEGORIES,
    image_hash,
    listing_title,
    retail_price,
)
from simulator.live import BoughtEngagement, Scripted, live_script, stats_ticks
from simulator.market import Market
from simulator.phrases import (
    MISLEADING_HOST_LINES,
    MISLEADING_TITLES,
    OBFUSCATION_STYLES,
    PROHIBITED_ITEMS,
    REPLICA_WORDS,
    SOLICITATION_HOST_COMMENTS,
    SOLICITATION_HOST_LINES,
    SOLICITATION_TITLE_SUFFIXES,
    disguise_contact,
    handle,
    obfuscate,
)
from simulator.population import ATTACKER_COUNTRIES, Listing, Population, Seller, ip_in, token
from simulator.scenario import (
    Label,
    Plan,
    every,
    is_blatant,
    paced_times,
    planned_live,
    spread,
    take_over_listing,
    times_in_live,
)
from simulator.timeline import DAY, MINUTE, Script

VIOLATION_TYPES = (
    "engagement_inflation", "order_brushing", "price_gouging", "fake_discount", "counterfeit_listing",
    "prohibited_listing", "listing_spam", "off_platform_solicitation", "misleading_claims", "account_takeover",
    "linked_accounts",
)


# ---- creators: LIVE abuse ---------------------------------------------------------------


def engagement_inflation(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", "engagement_inflation", i)
    creator = pop.add_creator()
    spec = planned_live(pop, creator, rng, (30, 90))
    ticks = stats_ticks(pop.seed, spec.live_id, spec.start, spec.end)
    n = len(ticks)
    first = rng.randint(min(18, n // 3), max(min(18, n // 3), min(int(0.55 * n), n - 3)))
    metric = ("viewers", "followers", "viewers", "likes")[i % 4]
    if metric == "viewers":
        ramp = rng.choice((1, 2))
        factor = 5.0 + 25.0 * rng.random() ** 1.5  # most buy a moderate boost, a few a huge one
        spec.bought = BoughtEngagement("viewers", first, n - 1, factor, ramp)
        evidence = ticks[first + ramp - 1]
    elif metric == "followers":
        spec.bought = BoughtEngagement("followers", first, min(n - 1, first + rng.randint(3, 19)),
                                       rng.uniform(20.0, 100.0))
        evidence = ticks[first]
    else:
        spec.bought = BoughtEngagement("likes", first, min(n - 1, first + rng.randint(5, 29)),
                                       rng.uniform(10.0, 50.0))
        evidence = ticks[first]
    return Plan(labels=[Label(creator.ref, "engagement_inflation", evidence)],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def _creator_says(pop: Population, i: int, violation: str, lines: list[str], comments: list[str]) -> Plan:
    """A creator who says it on a LIVE: in host transcript lines, sometimes typed as a host comment."""
    rng = pop.rng("abuse", violation, i)
    creator = pop.add_creator()
    spec = planned_live(pop, creator, rng, (30, 80))
    n = rng.randint(3, 6) if is_blatant(rng) else rng.randint(1, 2)
    spec.scripted = tuple(
        Scripted(t, "transcript", rng.choice(lines)) if rng.random() < 0.65
        else Scripted(t, "host_comment", rng.choice(comments))
        for t in times_in_live(pop, spec, rng, n))
    return Plan(labels=[Label(creator.ref, violation, spec.scripted[0].ts)],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def _seller_titles(pop: Population, i: int, violation: str,
                   make: Callable[[Market, Seller, random.Random, int], Listing]) -> Plan:
    """A seller who puts 1-3 offending listings up, minutes to an hour apart."""
    rng = pop.rng("abuse", violation, i)
    seller = pop.add_seller()
    count = rng.randint(2, 3) if is_blatant(rng) else 1
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(60 * MINUTE)), count, (2, 30))
    run_rng = pop.rng("abuse-run", violation, i)
    return Plan(labels=[Label(seller.ref, violation, times[0])],
                scripts=[(times[0], every(times, lambda m, k: m.publish(seller, make(m, seller, run_rng, k))))])


def off_platform_solicitation(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", "off_platform_solicitation-style", i)
    style = rng.choice(("plain", "plain") + OBFUSCATION_STYLES[1:])
    contact = handle(rng)
    if i % 2 == 0:
        lines = [disguise_contact(text.format(handle=contact), style) for text in SOLICITATION_HOST_LINES]
        comments = [disguise_contact(text.format(handle=contact), style) for text in SOLICITATION_HOST_COMMENTS]
        return _creator_says(pop, i, "off_platform_solicitation", lines, comments)

    def solicitation_listing(m: Market, seller: Seller, run_rng: random.Random, k: int) -> Listing:
        listing = m.ordinary_listing(seller, run_rng)
        suffix = run_rng.choice(SOLICITATION_TITLE_SUFFIXES).format(handle=contact)
        listing.title = f"{listing.title} - {disguise_contact(suffix, style)}"
        listing.reserved = True
        return listing

    return _seller_titles(pop, i, "off_platform_solicitation", solicitation_listing)


def misleading_claims(pop: Population, i: int) -> Plan:
    if i % 2 == 0:
        return _creator_says(pop, i, "misleading_claims", list(MISLEADING_HOST_LINES),
                             [line.capitalize() + "!!" for line in MISLEADING_HOST_LINES[:4]])

    def claim_listing(m: Market, seller: Seller, run_rng: random.Random, k: int) -> Listing:
        title, category = run_rng.choice(MISLEADING_TITLES)
        price = retail_price(run_rng.lognormvariate(3.4, 0.4))
        return Listing(m.new_listing_id(seller), title, category, None, price, image_hash(run_rng),
                       run_rng.randint(20, 300), reserved=True)

    return _seller_titles(pop, i, "misleading_claims", claim_listing)


# ---- sellers: listings ----------------------------------------------------------------------


def counterfeit_listing_for(m: Market, seller: Seller, rng: random.Random, mode: str,
                            replica_word: str) -> Listing:
    """A protected luxury brand sold as a replica (`mode` "words"), cheaply ("price"), or both."""
    category_name = rng.choice(LUXURY_CATEGORIES)
    brand, level = rng.choice(LUXURY_BRANDS[category_name])
    category = CATEGORY_BY_NAME[category_name]
    share = rng.uniform(0.10, 0.45) if mode == "words" else rng.uniform(0.05, 0.20)
    if mode == "price":
        title = listing_title(rng, category, brand)
    else:
        noun = rng.choice(category.nouns)
        title = rng.choice((f"{brand} {noun} {replica_word}", f"{replica_word} {brand} {noun}",
                            f"{brand} {replica_word} {noun} - top grade", f"{noun} {brand} style, {replica_word}"))
    return Listing(m.new_listing_id(seller), title, category_name, brand, retail_price(level * share),
                   image_hash(rng), rng.randint(20, 200), reserved=True)


def prohibited_listing_for(m: Market, seller: Seller, rng: random.Random, item: tuple, style: str) -> Listing:
    """A banned item with its keyword disguised in `style`."""
    _, keyword, template, category, (low, high) = item
    joiner = "  " if style == "spaced" else " "  # keep the words apart when the letters are spaced
    disguised = joiner.join(obfuscate(word, style) for word in keyword.split())
    title = template.format(kw=disguised)
    return Listing(m.new_listing_id(seller), title[0].upper() + title[1:], category, None,
                   retail_price(rng.uniform(low, high)), image_hash(rng), rng.randint(1, 20), reserved=True)


def counterfeit_listing(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", "counterfeit_listing", i)
    seller = pop.add_seller()
    mode = ("price", "words", "both")[i % 3]
    word = rng.choice(REPLICA_WORDS)
    count = rng.randint(3, 6) if is_blatant(rng) else rng.randint(1, 2)
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(90 * MINUTE)), count, (3, 30))
    run_rng = pop.rng("abuse-run", "counterfeit_listing", i)

    def post(m: Market, k: int) -> None:
        m.publish(seller, counterfeit_listing_for(m, seller, run_rng, mode, word))

    return Plan(labels=[Label(seller.ref, "counterfeit_listing", times[0])], scripts=[(times[0], every(times, post))])


def prohibited_listing(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", "prohibited_listing", i)
    seller = pop.add_seller(catalog=(2, 15))
    style = rng.choice(OBFUSCATION_STYLES)
    banned_class = ("weapons", "drugs", "wildlife", "documents")[i % 4]
    items = [rng.choice([item for item in PROHIBITED_ITEMS if item[0] == banned_class])]
    items += rng.sample(PROHIBITED_ITEMS, rng.randint(0, 3))
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(90 * MINUTE)), len(items), (4, 30))
    run_rng = pop.rng("abuse-run", "prohibited_listing", i)

    def post(m: Market, k: int) -> None:
        m.publish(seller, prohibited_listing_for(m, seller, run_rng, items[k], style))

    return Plan(labels=[Label(seller.ref, "prohibited_listing", times[0])], scripts=[(times[0], every(times, post))])


_SPAM_EMOJI = ("🔥", "✨", "💯", "⭐", "🎁", "✅", "💥")


def near_duplicate_title(rng: random.Random, title: str, k: int) -> str:
    """The same title, changed only by a number, an emoji or the order of its words."""
    roll = rng.random()
    if roll < 0.35:
        return f"{title} {rng.choice(('#', 'No.', 'Lot ', 'x'))}{k + rng.randint(1, 9)}"
    if roll < 0.65:
        emoji = rng.choice(_SPAM_EMOJI)
        return f"{emoji} {title} {emoji}" if rng.random() < 0.5 else f"{title} {emoji}{emoji}"
    head, _, tail = title.partition(" - ")
    words = head.split()
    rng.shuffle(words)
    return " ".join(words) + (f" - {tail}" if tail else "")


def listing_spam(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", "listing_spam", i)
    seller = pop.add_seller()
    n = rng.randint(6, 30)
    span = pop.window.fit(rng.randint(12, 55) * MINUTE)
    times = spread(rng, pop.window.pick_start(rng, span), span, n)
    run_rng = pop.rng("abuse-run", "listing_spam", i)
    template: list[Listing] = []

    def spam(m: Market, k: int) -> None:
        if not template:
            template.append(m.ordinary_listing(seller, run_rng))
        base = template[0]
        copy = Listing(m.new_listing_id(seller), near_duplicate_title(run_rng, base.title, k), base.category,
                       base.brand, retail_price(base.price * run_rng.uniform(0.95, 1.05)), base.image_hash,
                       run_rng.randint(5, 100), reserved=True)
        m.publish(seller, copy)

    return Plan(labels=[Label(seller.ref, "listing_spam", times[4])],
                scripts=[(times[0], every(times, spam))])


def price_gouging(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", "price_gouging", i)
    seller = pop.add_seller(catalog=(4, 40))
    raise_existing = i % 2 == 0
    count = rng.randint(2, 3) if is_blatant(rng) else 1
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(60 * MINUTE)), count, (5, 30))
    run_rng = pop.rng("abuse-run", "price_gouging", i)

    def gouge(m: Market, k: int) -> None:
        listing = take_over_listing(seller, run_rng) if raise_existing else None
        if listing is not None:  # a sudden steep raise of an in-stock listing
            listing.stock = listing.stock or run_rng.randint(5, 30)
            listing.original_price = None
            listing.price = retail_price(listing.price * run_rng.uniform(3.0, 10.0))
            m.republish(seller, listing)
            return
        category = CATEGORY_BY_NAME[run_rng.choice(seller.categories)]
        cheap_brands = [b for c, b, level in seller.brands if c == category.name and level <= category.median_price]
        brand = run_rng.choice(cheap_brands) if cheap_brands else None
        listing = Listing(m.new_listing_id(seller), listing_title(run_rng, category, brand), category.name, brand,
                          retail_price(category.median_price * run_rng.uniform(4.0, 15.0)), image_hash(run_rng),
                          run_rng.randint(3, 40), reserved=True)
        m.publish(seller, listing)

    return Plan(labels=[Label(seller.ref, "price_gouging", times[0])],
                scripts=[(times[0], every(times, gouge))])


def fake_discount(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", "fake_discount", i)
    seller = pop.add_seller(catalog=(4, 40))
    invent_on_existing = i % 2 == 0
    count = rng.randint(2, 4) if is_blatant(rng) else 1
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(60 * MINUTE)), count, (3, 25))
    run_rng = pop.rng("abuse-run", "fake_discount", i)

    def invent_was_price(m: Market, k: int) -> None:
        listing = take_over_listing(seller, run_rng) if invent_on_existing else None
        if listing is not None:  # "was" 2-6x the highest price it ever had
            if run_rng.random() < 0.5:
                listing.price = retail_price(listing.price * run_rng.uniform(0.85, 0.98))
            listing.original_price = retail_price(listing.highest_price * run_rng.uniform(2.0, 6.0))
            m.republish(seller, listing)
            return
        listing = m.ordinary_listing(seller, run_rng)
        category_name, brand = listing.category, listing.brand
        level = next((lvl for c, b, lvl in seller.brands if c == category_name and b == brand),
                     CATEGORY_BY_NAME[category_name].median_price)
        listing.original_price = retail_price(max(level, CATEGORY_BY_NAME[category_name].median_price)
                                              * run_rng.uniform(3.0, 8.0))
        listing.reserved = True
        m.publish(seller, listing)

    return Plan(labels=[Label(seller.ref, "fake_discount", times[0])],
                scripts=[(times[0], every(times, invent_was_price))])


# ---- orders -----------------------------------------------------------------------------------

_BRUSHING_TITLES = ("Mystery Gift Sample", "Lucky Bag Mini", "Free Gift - Do Not Buy", "Phone Charm Keychain",
                    "Sticker Pack", "Sample Item")


def order_brushing(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", "order_brushing", i)
    seller = pop.add_seller()
    n_orders = rng.randint(15, 60)
    span = rng.randint(10, 40) * MINUTE
    own_cheap_listing = rng.random() < 0.5
    lead = rng.randint(10, 60) * MINUTE if own_cheap_listing else 0  # the cheap listing goes up first
    squeeze = pop.window.fit(lead + span) / (lead + span)  # short streams only
    span, lead = int(span * squeeze), int(lead * squeeze)
    first = pop.window.pick_start(rng, lead + span) + lead
    times = spread(rng, first, span, n_orders)
    # A small ring of fresh accounts on a few devices, cards and addresses.
    devices = [token(rng, "d") for _ in range(rng.randint(1, 4))]
    payments = [token(rng, "pm") for _ in range(rng.randint(1, 3))]
    addresses = [token(rng, "sa") for _ in range(rng.randint(1, 3))]
    accounts = [(pop.buyer_ids.take("B"), rng.randint(0, 3), rng.choice(devices), rng.choice(addresses),
                 rng.choice(payments)) for _ in range(max(5, int(n_orders * rng.uniform(0.4, 1.0))))]
    refund_share = rng.uniform(0.3, 0.9)
    run_rng = pop.rng("abuse-run", "order_brushing", i)

    def brush(m: Market) -> Script:
        if own_cheap_listing:
            category = run_rng.choice(seller.categories)
            targets = [m.publish(seller, Listing(
                m.new_listing_id(seller), run_rng.choice(_BRUSHING_TITLES), category, None,
                retail_price(run_rng.uniform(1.0, 7.0)), image_hash(run_rng), 500, reserved=True))]
        else:
            yield first
            cheapest = sorted((lst for lst in seller.listings if not lst.reserved), key=lambda lst: lst.price)
            targets = cheapest[:run_rng.choice((1, 2))] or [m.publish(seller, m.ordinary_listing(seller, run_rng))]
            for listing in targets:
                listing.reserved = True
                listing.stock = max(listing.stock, 200)
        for k, t in enumerate(times):
            yield t
            listing = run_rng.choice(targets)
            buyer_id, age_at_first_order, device, address, payment = accounts[k % len(accounts)]
            order_id = m.place_order_as(t, seller, listing, 1, buyer_id, age_at_first_order + (t - first) // DAY,
                                        device, address, payment)
            if run_rng.random() < refund_share:
                m.refund(t + run_rng.randint(20 * MINUTE, 4 * 60 * MINUTE), order_id, seller, buyer_id,
                         listing.price, run_rng.choice((None, "buyer cancelled", "changed mind", "order not needed")))

    return Plan(labels=[Label(seller.ref, "order_brushing", times[9])], scripts=[(first - lead, brush)])


# ---- account security ---------------------------------------------------------------------------


def account_takeover(pop: Population, i: int) -> Plan:
    rng = pop.rng("abuse", "account_takeover", i)
    victim = pop.add_seller() if i % 2 == 0 else pop.add_creator()
    account = victim.account
    account.logs_in_early, account.may_change_payout = True, False
    delay = pop.window.fit(rng.randint(5 * MINUTE, 60 * MINUTE))
    sign_in_at = pop.window.pick_start(rng, delay)
    payout_at = sign_in_at + delay
    country = rng.choice([c for c in ATTACKER_COUNTRIES if c != account.country])
    device, ip = token(rng, "d"), ip_in(rng, country)
    second_sign_in = sign_in_at + rng.randint(1 * MINUTE, 4 * MINUTE) if rng.random() < 0.4 else None
    stolen_hash = token(rng, "po")

    def take_over(m: Market) -> Script:
        m.sign_in(account, device, ip, country)
        if second_sign_in is not None and second_sign_in < payout_at:
            yield second_sign_in
            m.sign_in(account, device, ip, country)
        yield payout_at
        m.change_payout(account, stolen_hash)

    return Plan(labels=[Label(victim.ref, "account_takeover", payout_at)], scripts=[(sign_in_at, take_over)])


def linked_accounts(pop: Population, i: int) -> Plan:
    """Seller A gets itself suspended with severe listings; then new account B ties itself to A."""
    rng = pop.rng("abuse", "linked_accounts", i)
    window = pop.window
    a = pop.add_seller()
    a.account.logs_in_early, a.account.may_change_payout = True, False
    b = pop.add_b_side("seller" if i % 2 == 0 else "creator", a.account)
    tie_by = ("device", "payout", "both")[i % 3]

    # Offsets from the scenario's origin; squeezed if the stream is short.
    a_sign_in = rng.randint(1, 10) * MINUTE
    a_payout = a_sign_in + rng.randint(70, 100) * MINUTE
    spree_start = max(window.abuse_start - window.start, a_payout + 10 * MINUTE) + rng.randint(0, 20) * MINUTE
    kinds = ["prohibited", "counterfeit", "prohibited", "counterfeit"] + rng.choices(
        ["prohibited", "counterfeit"], k=rng.randint(0, 3))
    rng.shuffle(kinds)
    spree = paced_times(rng, spree_start, len(kinds), (8, 25))
    tie = spree[-1] + rng.randint(20, 60) * MINUTE
    room = (window.abuse_end - window.start) * rng.uniform(0.8, 1.0)
    squeeze = min(1.0, room / tie)  # a short stream: everything closer together
    origin = window.start + rng.randint(0, int(max(0.0, room - tie)))  # a long stream: any time

    def at(offset: int) -> int:
        return origin + int(offset * squeeze)

    spree_at = [at(t) for t in spree]
    tie_at = at(tie)
    # B exists only after A's spree: with a payout tie it signs in on its own device first.
    b_own_sign_in = at(max(spree[-1] + 2 * MINUTE, tie - rng.randint(10, 40) * MINUTE))
    b_second_tie = at(tie + rng.randint(5, 30) * MINUTE)  # both: the payout follows the device sign-in
    a_hash = token(rng, "po")
    item_style = rng.choice(("plain", "plain", "leet", "spaced"))
    run_rng = pop.rng("abuse-run", "linked_accounts", i)

    def a_goes_rogue(m: Market) -> Script:
        m.sign_in(a.account, a.account.devices[0], a.account.ips[0], a.account.country)
        yield at(a_payout)
        m.change_payout(a.account, a_hash)
        for kind, t in zip(kinds, spree_at, strict=True):
            yield t
            if kind == "prohibited":
                listing = prohibited_listing_for(m, a, run_rng, run_rng.choice(PROHIBITED_ITEMS), item_style)
            else:
                listing = counterfeit_listing_for(m, a, run_rng, run_rng.choice(("price", "both")),
                                                  run_rng.choice(REPLICA_WORDS))
            m.publish(a, listing)

    def b_shows_up(m: Market) -> Script:
        account = b.account
        if tie_by == "payout":
            m.sign_in(account, account.devices[0], account.ips[0], account.country)
            yield tie_at
            m.change_payout(account, a_hash)
        else:
            m.sign_in(account, a.account.devices[0], ip_in(run_rng, a.account.country), a.account.country)
            if tie_by == "both":
                yield b_second_tie
                m.change_payout(account, a_hash)
        if isinstance(b, Seller):  # and B starts selling again
            for _ in range(run_rng.randint(2, 5)):
                yield m.tl.now + run_rng.randint(5, 30) * MINUTE
                m.publish(b, m.ordinary_listing(b, run_rng))

    labels = [Label(a.ref, "prohibited_listing", spree_at[kinds.index("prohibited")]),
              Label(a.ref, "counterfeit_listing", spree_at[kinds.index("counterfeit")]),
              Label(b.ref, "linked_accounts", tie_at)]
    b_starts = b_own_sign_in if tie_by == "payout" else tie_at
    return Plan(labels=labels, scripts=[(at(a_sign_in), a_goes_rogue), (b_starts, b_shows_up)])


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
}


def plan_abuse(pop: Population, per_type: int) -> list[Plan]:
    """`per_type` abusers of every catalog type, in catalog order (deterministic)."""
    return [PLANNERS[violation](pop, i) for violation in VIOLATION_TYPES for i in range(per_type)]
