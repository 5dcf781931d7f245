"""Abuse in words: off-platform solicitation and misleading claims, said on a LIVE or written in titles."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

from simulator.catalog import image_hash
from simulator.live import Scripted, live_script
from simulator.market import Market
from simulator.phrases import OBFUSCATION_STYLES, disguise_contact, handle
from simulator.population import Listing, Population, Seller
from simulator.scenario import Label, Plan, every, is_blatant, paced_times, planned_live, times_in_live
from simulator.timeline import MINUTE

SOLICITATION = "off_platform_solicitation"
CLAIMS = "misleading_claims"

# Share of a speaking abuser's lines said aloud (the rest typed as host comments).
SPOKEN_SHARE = {"host_speech": 0.65, "host_comment_only": 0.0}


def creator_says(pop: Population, i: int, violation: str, lines: list[str], comments: list[str],
                 spoken_share: float = 0.65) -> Plan:
    """A creator who says it on a LIVE: in host transcript lines, or typed as host comments."""
    rng = pop.rng("abuse", violation, i)
    creator = pop.add_creator()
    spec = planned_live(pop, creator, rng, pop.world.knob(violation, "live_minutes"))
    n = rng.randint(3, 6) if is_blatant(rng) else rng.randint(1, 2)
    spec.scripted = tuple(
        Scripted(t, "transcript", rng.choice(lines)) if rng.random() < spoken_share
        else Scripted(t, "host_comment", rng.choice(comments))
        for t in times_in_live(pop, spec, rng, n))
    return Plan(labels=[Label(creator.ref, violation, spec.scripted[0].ts)],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def creator_answers(pop: Population, i: int, violation: str, asks: list[str], replies: list[str]) -> Plan:
    """Viewers ask for a contact and the host answers with one in a host comment (the evidence)."""
    rng = pop.rng("abuse", violation, i)
    creator = pop.add_creator()
    spec = planned_live(pop, creator, rng, pop.world.knob(violation, "live_minutes"))
    lines = []
    for t in times_in_live(pop, spec, rng, rng.randint(1, 3)):  # the answer before its stats tick
        lines.append(Scripted(t - rng.randint(3_000, 8_000), "viewer_comment", rng.choice(asks)))
        lines.append(Scripted(t, "host_comment", rng.choice(replies)))
    spec.scripted = tuple(sorted(lines, key=lambda line: line.ts))
    first_reply = min(line.ts for line in lines if line.channel == "host_comment")
    return Plan(labels=[Label(creator.ref, violation, first_reply)],
                scripts=[(spec.start, partial(live_script, spec=spec))])


def seller_titles(pop: Population, i: int, violation: str,
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
    words = pop.world.wording
    rng = pop.rng("abuse", "off_platform_solicitation-style", i)
    style = rng.choice(("plain", "plain") + OBFUSCATION_STYLES[1:])
    contact = handle(rng, words.handle_words)

    def disguised(texts: list[str]) -> list[str]:
        return [disguise_contact(text.replace("{handle}", contact), style, words.solicitation_keywords)
                for text in texts]

    variant = pop.world.variant(SOLICITATION, i)
    if variant in SPOKEN_SHARE:
        return creator_says(pop, i, SOLICITATION, disguised(words.solicitation_host_lines),
                            disguised(words.solicitation_host_comments), SPOKEN_SHARE[variant])
    if variant == "answers_viewer_ask":
        return creator_answers(pop, i, SOLICITATION, words.viewer_contact_asks, disguised(words.solicitation_replies))

    def solicitation_listing(m: Market, seller: Seller, run_rng: random.Random, k: int) -> Listing:
        listing = m.ordinary_listing(seller, run_rng)
        suffix = run_rng.choice(words.solicitation_title_suffixes).replace("{handle}", contact)
        listing.title = f"{listing.title} - {disguise_contact(suffix, style, words.solicitation_keywords)}"
        listing.reserved = True
        return listing

    return seller_titles(pop, i, SOLICITATION, solicitation_listing)


def misleading_claims(pop: Population, i: int) -> Plan:
    world = pop.world
    lines = world.wording.misleading_host_lines
    variant = world.variant(CLAIMS, i)
    if variant in SPOKEN_SHARE:
        return creator_says(pop, i, CLAIMS, list(lines), [line.capitalize() + "!!" for line in lines[:4]],
                            SPOKEN_SHARE[variant])

    def claim_listing(m: Market, seller: Seller, run_rng: random.Random, k: int) -> Listing:
        item = run_rng.choice(world.wording.misleading_titles)
        price = m.tag(world.currency.per_usd * run_rng.lognormvariate(3.4, 0.4))
        return Listing(m.new_listing_id(seller), item.title, item.category, None, price, image_hash(run_rng),
                       run_rng.randint(20, 300), reserved=True)

    return seller_titles(pop, i, CLAIMS, claim_listing)
