"""Honest sign-ins that look like takeovers or ban evasion: travellers and households."""

from __future__ import annotations

from simulator.market import Market
from simulator.population import Population, ip_in, token
from simulator.scenario import HardNegative, HonestVolunteers, Plan, every, paced_times
from simulator.timeline import HOUR, MINUTE, Script


def traveller_login(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """A sign-in from abroad on a new device with no payout change, or with a payout change hours
    later, after signing in at home again."""
    rng = pop.rng("negative", "traveller_login", i)
    actor = who.seller() if i % 2 == 0 else who.creator()
    account = actor.account
    account.logs_in_early, account.may_change_payout = True, False
    pays_later = (i // 2 + i) % 2 == 1  # sellers and creators, each both ways
    span = pop.window.fit(3.5 * HOUR if pays_later else 2 * HOUR, share=0.9)
    abroad_at = pop.window.pick_start(rng, span)
    country = rng.choice([c for c in pop.world.countries.travel if c != account.country])
    home_again = abroad_at + int(span * rng.uniform(0.6, 0.8))
    new_hash_at = home_again + int(span * rng.uniform(0.05, 0.15))
    again_abroad = abroad_at + rng.randint(20, 100) * MINUTE
    run_rng = pop.rng("negative-run", "traveller_login", i)

    def travel(m: Market) -> Script:
        device, ip = token(run_rng, "d"), ip_in(run_rng, country)  # a hotel, a new phone
        m.sign_in(account, device, ip, country)
        if not pays_later:
            yield again_abroad
            m.sign_in(account, device, ip, country)
            return
        yield home_again
        m.sign_in(account, account.devices[0], account.ips[0], account.country)
        yield new_hash_at
        m.change_payout(account, f"po-{run_rng.getrandbits(40):010x}")

    return Plan(hard_negatives=[HardNegative(account.ref, "traveller_login")], scripts=[(abroad_at, travel)])


def shared_device_household(pop: Population, who: HonestVolunteers, i: int) -> Plan:
    """Two honest sellers of one household: one signs in 2-4 times on the other's laptop. Neither is ever
    suspended, so nothing is evaded."""
    rng = pop.rng("negative", "shared_device_household", i)
    owner, partner = pop.add_seller(extra=True), pop.add_seller(extra=True)
    partner.account.country = owner.account.country
    times = paced_times(rng, pop.window.pick_start(rng, pop.window.fit(2 * HOUR)), rng.randint(2, 4), (15, 40))
    ip = owner.account.ips[0]  # the same home connection

    def sign_in(m: Market, k: int) -> None:
        m.sign_in(partner.account, owner.account.devices[0], ip, owner.account.country)

    entries = [HardNegative(partner.account.ref, "shared_device_household"),
               HardNegative(owner.account.ref, "shared_device_household")]
    return Plan(hard_negatives=entries, scripts=[(times[0], every(times, sign_in))])
