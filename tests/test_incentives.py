"""Credits and incentive programs (issue 19): earned by clean, active periods, forfeited by enforced
violations, given back by overturned appeals, regained as the record ages; the same on any worker count.

Unit tests drive the real ledger shard (`tests.test_ledger.shard`) with orders (`Activity`) and fixed
violations; the end-to-end test replays a small marketplace through the real flow on 1, 2 and 4 workers.
"""

from __future__ import annotations

import json
import pickle

import pytest

from pipeline.contract.records import Incentive, Standing
from pipeline.enforce.incentives import HOUR_MS, SETTLE_MS, Activity, counted_at, look_at_or_after
from pipeline.enforce.policy import PolicyError, load_policy
from tests.conftest import replay
from tests.test_ledger import (
    DAY_MS, HOUR, POLICY, T0, decided, marketplace, of, shard, violation, write_events, write_policy,
)

PERIOD = POLICY.incentives.credits.period_days * DAY_MS


def orders(days: int, actor: str = "seller:S1", start: int = T0, per_day: int = 1) -> list[Activity]:
    """`per_day` orders a day (at noon and after) for `days` days."""
    return [Activity(event_id=f"o-{actor}-{d}-{n}", ts=start + d * DAY_MS + 12 * HOUR + n * 60_000, actor=actor,
                     kind="order") for d in range(days) for n in range(per_day)]


def apply(items, policy=POLICY):
    """Replay-style: everything through one ledger shard in event-time order; (records, metrics)."""
    s = shard(policy)
    for item in items:
        s.add(item, 0.0)
    return s.release(None), s.metrics


def changes(records, program=None) -> list[tuple[str, str, int]]:
    return [(r.program, r.change, r.ts) for r in of(records, Incentive) if program in (None, r.program)]


def standing(records, actor="seller:S1") -> Standing:
    return [s for s in of(records, Standing) if s.actor == actor][-1]


def clean_periods_before(ts_list: list[int], now: int) -> int:
    """Credit periods with activity that ended by `now`."""
    return len({ts // PERIOD for ts in ts_list if ts // PERIOD < now // PERIOD})


# ---- earning -------------------------------------------------------------------------------------------


def test_an_active_clean_seller_earns_credits_per_period_and_the_badge_after_three_orders():
    items = orders(22)
    records, metrics = apply(items)
    granted = changes(records, "trusted_seller")
    assert granted[0][:2] == ("trusted_seller", "granted")
    # the third order completes "3 orders in the last 7 days" once its hour is settled, at the next hourly look
    assert granted[0][2] == counted_at(items[2].ts)
    first = of(records, Incentive)[0]
    assert first.reason.startswith("every rule met: health 800 or more") and not first.shadow
    final = standing(records)
    assert final.credits == 10 * clean_periods_before([i.ts for i in items], items[-1].ts) > 0
    assert final.programs == ["trusted_seller", "search_boost"]
    assert metrics.eligible_child("trusted_seller")._value.get() == 1
    assert metrics.incentive_child("trusted_seller", "granted")._value.get() == 1


def test_credits_stop_at_the_cap_and_a_creator_earns_them_with_lives():
    weekly_lives = [Activity(event_id=f"l{w}", ts=T0 + w * PERIOD, actor="creator:C1", kind="live")
                    for w in range(14)]
    records, _ = apply(weekly_lives)
    assert standing(records, "creator:C1").credits == POLICY.incentives.credits.cap  # 13 clean weeks, capped at 100
    assert ("live_campaigns", "granted") in [(p, c) for p, c, _ in changes(records)]


def test_a_period_with_a_violation_earns_nothing():
    items = orders(15) + [violation(ts=T0 + 2 * DAY_MS, vtype="listing_spam")]
    records, _ = apply(items)
    clean = clean_periods_before([i.ts for i in items[:15]], items[14].ts)
    spoiled = 1  # the period of the violation
    assert standing(records).credits == 10 * (clean - spoiled)


# ---- forfeiting ----------------------------------------------------------------------------------------


def test_an_enforced_violation_forfeits_credits_by_severity_and_revokes_the_badge():
    items = orders(30)
    before, _ = apply(items)
    earned = standing(before).credits
    v = violation(ts=T0 + 29 * DAY_MS, vtype="order_brushing")  # high: forfeits 25, health 840
    records, metrics = apply(items + [v])
    revoked = [r for r in of(records, Incentive) if r.change == "revoked"]
    assert {r.program for r in revoked} == {"trusted_seller", "search_boost"}
    badge = next(r for r in revoked if r.program == "trusted_seller")
    assert badge.violation_id == v.violation_id and badge.ts == v.detected_at
    assert "order_brushing violation on" in badge.reason and "14 clean days" in badge.reason
    after = next(s for s in of(records, Standing) if s.ts == v.detected_at)
    assert after.credits == earned - 25 and after.programs == []
    assert metrics.credits_forfeited_child("order_brushing")._value.get() == 25
    gap = {g.program: g for g in after.program_gaps}["trusted_seller"]
    # health 840 is enough: only the clean days are missing, until the first hourly look after them
    assert gap.regain_at == look_at_or_after(v.detected_at + 14 * DAY_MS)


def test_a_shadow_violation_forfeits_nothing_and_revokes_nothing(tmp_path):
    shadow = load_policy(write_policy(tmp_path / "p.toml", **{"types.order_brushing.enforced": "false"}))
    items = orders(30)
    base, _ = apply(items, shadow)
    records, metrics = apply(items + [violation(ts=T0 + 29 * DAY_MS, vtype="order_brushing", policy=shadow)],
                             shadow)
    assert changes(records) == changes(base)
    assert standing(records).credits == standing(base).credits > 0
    assert metrics.credits_forfeited_child("order_brushing")._value.get() == 0


def test_a_shadow_program_is_computed_and_counted_but_never_shown_as_held():
    lives = [Activity(event_id=f"l{d}-{n}", ts=T0 + d * DAY_MS + n * HOUR, actor="creator:C1", kind="live")
             for d in range(40) for n in range(1)] + [
        Activity(event_id=f"x{n}", ts=T0 + 39 * DAY_MS + (n + 2) * HOUR, actor="creator:C1", kind="live")
        for n in range(3)]
    records, metrics = apply(lives)
    bonus = [r for r in of(records, Incentive) if r.program == "commission_bonus"]
    assert bonus and all(r.shadow for r in bonus) and bonus[0].change == "granted"
    assert "commission_bonus" not in standing(records, "creator:C1").programs
    assert metrics.incentive_child("commission_bonus", "granted")._value.get() == 1


# ---- restoring -----------------------------------------------------------------------------------------


def test_an_overturned_appeal_restores_the_badge_and_the_credits():
    items = orders(30)
    v = violation(ts=T0 + 29 * DAY_MS, vtype="order_brushing")
    earned = standing(apply(items)[0]).credits
    records, metrics = apply(items + [v, decided(v, v.detected_at + HOUR, "overturned", appeal="A7")])
    restored = [r for r in of(records, Incentive) if r.change == "restored"]
    assert {r.program for r in restored} == {"trusted_seller", "search_boost"}
    assert all(r.appeal_id == "A7" and r.violation_id == v.violation_id for r in restored)
    after = next(s for s in of(records, Standing) if s.ts == v.detected_at + HOUR)
    assert after.credits == earned and after.programs == ["trusted_seller", "search_boost"]
    assert metrics.incentive_child("trusted_seller", "restored")._value.get() == 1
    assert metrics.eligible_child("trusted_seller")._value.get() == 1


def test_an_upheld_appeal_restores_nothing():
    items = orders(30)
    v = violation(ts=T0 + 29 * DAY_MS, vtype="order_brushing")
    records, _ = apply(items + [v, decided(v, v.detected_at + HOUR, "upheld")])
    assert not [r for r in of(records, Incentive) if r.change == "restored"]


# ---- regaining as the record ages ----------------------------------------------------------------------


def test_the_badge_comes_back_when_the_promised_day_comes():
    """A counterfeit listing (health 680): the standing says when health is back above 800, and it is."""
    items = orders(80)
    v = violation(ts=T0 + 10 * DAY_MS, vtype="counterfeit_listing")
    records, _ = apply(items + [v])
    at_violation = next(s for s in of(records, Standing) if s.ts == v.detected_at)
    gap = {g.program: g for g in at_violation.program_gaps}["trusted_seller"]
    assert any(m.startswith("health 680, below 800") for m in gap.missing)
    regained = [ts for p, c, ts in changes(records, "trusted_seller") if c == "granted" and ts > v.detected_at]
    assert regained == [gap.regain_at]
    assert regained[0] % HOUR_MS == SETTLE_MS and regained[0] - v.detected_at > 30 * DAY_MS  # a look, a month on


def test_the_violation_expiring_brings_back_a_program_that_needs_full_health(tmp_path):
    strict = load_policy(write_policy(tmp_path / "p.toml", **{"min_health": "1000"}))  # trusted_seller's key
    items = orders(100)
    v = violation(ts=T0 + 5 * DAY_MS, vtype="listing_spam", policy=strict)
    records, _ = apply(items + [v], strict)
    regained = [ts for p, c, ts in changes(records, "trusted_seller") if c == "granted" and ts > v.detected_at]
    span = int(strict.expiry_days * DAY_MS)
    expiry = v.detected_at + span
    # health rounds to 1000 once the low penalty (40) has faded to 0.5: 1/80 of the span before the expiry
    assert regained == [look_at_or_after(expiry - span // 80)]


def test_a_seller_that_stops_selling_loses_the_badge_a_week_later():
    items = orders(5) + orders(1, actor="seller:S2", start=T0 + 20 * DAY_MS)  # the shard's event time moves on
    records, _ = apply(items)
    revoked = [r for r in of(records, Incentive) if r.program == "trusted_seller" and r.change == "revoked"]
    assert len(revoked) == 1 and "orders in the last 7 days, 3 needed" in revoked[0].reason
    assert revoked[0].violation_id == "" and revoked[0].ts % HOUR_MS == SETTLE_MS  # at an hourly look


# ---- policy --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, message", [
    ("clean_days", "120", "p.toml: key `incentives.programs.trusted_seller.clean_days`: 120 is longer than "
                          "`expiry_days` (90), the time the ledger keeps a violation; use at most 90"),
    ("role", '"buyer"', "p.toml: key `incentives.programs.trusted_seller.role`: expected one of seller, creator, "
                        "got 'buyer'"),
    ("min_health", "1200", "p.toml: key `incentives.programs.trusted_seller.min_health`: expected `int` <= 1000"),
    ("period_days", "0", "p.toml: key `incentives.credits.period_days`: expected `int` >= 1, got 0"),
])
def test_a_bad_incentive_rule_names_the_file_and_the_key(tmp_path, key, value, message):
    path = write_policy(tmp_path / "p.toml", **{key: value})
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(err.value).replace(str(tmp_path) + "/", "").startswith(message)


def test_an_unknown_violation_type_in_clean_of_is_named(tmp_path):
    path = write_policy(tmp_path / "p.toml", **{"clean_of": '["listing_spamm"]'})
    with pytest.raises(PolicyError, match=r"`incentives.programs.search_boost.clean_of`: 'listing_spamm' is not a "
                                          r"violation type; the catalog is"):
        load_policy(path)


def test_a_policy_without_incentives_still_loads_and_grants_nothing(tmp_path):
    text = (tmp_path / "x").parent.joinpath("p.toml")
    from pipeline.config import DEFAULT_POLICY
    text.write_text(DEFAULT_POLICY.read_text().split("# ---- incentives")[0])
    policy = load_policy(text)
    assert policy.incentives is None
    records, _ = apply(orders(20), policy)
    assert of(records, Incentive) == [] and of(records, Standing) == []


# ---- end to end: the same incentives on 1, 2 and 4 workers ----------------------------------------------


def order_events(seller: str, n: int, start: int) -> list[dict]:
    return [{"event_id": f"{seller}-o{i}", "type": "order.placed", "ts": start + i * HOUR, "order_id": f"{seller}-O{i}",
             "seller_id": seller, "buyer_id": f"B{seller}{i}", "listing_id": f"{seller}-H0", "amount": 30.0,
             "currency": "USD", "creator_id": None, "live_id": None, "buyer_account_age_days": 400 + i,
             "device_id": f"d{seller}{i}", "shipping_address_hash": f"a{seller}{i}", "payment_hash": f"p{seller}{i}"}
            for i in range(n)]


def test_a_replay_gives_the_same_incentives_on_1_2_and_4_workers(tmp_path):
    events = marketplace()
    for seller in ("S1", "S2", "S3", "S4", "HS1", "HS2"):
        # the badge is theirs by T0 - 5 h; one more order, much later, moves their ledger shard's clock on
        events += order_events(seller, 6, T0 - 8 * HOUR) + [
            {**e, "event_id": e["event_id"] + "-late", "order_id": e["order_id"] + "-late"}
            for e in order_events(seller, 1, T0 + 9 * HOUR)]
    path = write_events(tmp_path / "e.jsonl", events)
    results = [replay(path, tmp_path / f"w{n}", workers=n) for n in (1, 2, 4)]
    runs = [out for _, out in results]
    views = [sorted(json.dumps(r, sort_keys=True) for r in out["incentives.jsonl"]) for out in runs]
    assert views[0] == views[1] == views[2]
    got = {(r["actor"], r["program"], r["change"]) for r in runs[0]["incentives.jsonl"]}
    assert ("seller:HS1", "trusted_seller", "granted") in got and ("seller:S4", "trusted_seller", "granted") in got
    assert ("seller:S1", "trusted_seller", "revoked") in got  # its listing spam
    assert ("seller:S4", "trusted_seller", "revoked") not in got  # no violation
    spam = {v["violation_id"] for v in runs[0]["violations.jsonl"] if v["actor"] == "seller:S1"}
    revoked = [r for r in runs[0]["incentives.jsonl"] if r["actor"] == "seller:S1" and r["change"] == "revoked"]
    assert revoked and all(r["violation_id"] in spam for r in revoked)
    final = {s["actor"]: s for s in sorted(runs[0]["standing.jsonl"], key=lambda s: s["ts"])}
    assert final["seller:HS1"]["programs"] == ["trusted_seller", "search_boost"]

    # every program's series exist from the start (at 0), so rates and the alert see them
    from prometheus_client import generate_latest
    exported = generate_latest(results[0][0].registry).decode()
    assert 'shopguard_incentive_changes_total{change="restored",program="live_campaigns"} 0.0' in exported
    assert 'shopguard_incentive_eligible_actors{program="commission_bonus"} 0.0' in exported
    assert 'shopguard_credits_forfeited_total{violation_type="order_brushing"} 0.0' in exported
    assert 'shopguard_incentive_changes_total{change="revoked",program="trusted_seller"} 3.0' in exported


def test_a_recovery_snapshot_from_before_incentives_resumes_with_no_rewards():
    """A ledger pickled before `rewards` and `forfeited` existed (their state is shorter) loads with defaults."""
    from pipeline.enforce.ledger import ActorLedger, Entry

    v = violation(ts=T0)
    entry, ledger = Entry(v, points=12, expires_at=T0 + DAY_MS), ActorLedger("seller:S1")
    old_entry = (None, {k: v for k, v in entry.__getstate__()[1].items() if k != "forfeited"})
    old_ledger = (None, {k: v for k, v in ledger.__getstate__()[1].items() if k != "rewards"})
    entry2, ledger2 = object.__new__(Entry), object.__new__(ActorLedger)
    entry2.__setstate__(old_entry)
    ledger2.__setstate__(old_ledger)
    assert entry2.forfeited == 0 and entry2.points == 12
    assert ledger2.rewards.credits == 0 and ledger2.rewards.held == {}
    ledger2.entries[v.violation_id] = entry2
    assert ledger2.standing(T0, POLICY).credits == 0
    assert pickle.loads(pickle.dumps(ledger2)).rewards.credits == 0  # and it pickles as usual again


def test_the_same_orders_in_any_arrival_order_give_the_same_incentives():
    """Orders arrive minutes out of order; they count once their hour is settled, so the order does not matter."""
    items = orders(10, per_day=3) + [violation(ts=T0 + 8 * DAY_MS + 12 * HOUR + 90_000, vtype="listing_spam")]
    a, _ = apply(items)
    def arrival(item):  # each hour's items arrive newest first: minutes out of order
        ts = item.ts if isinstance(item, Activity) else item.detected_at
        return ts // HOUR_MS, -ts

    late = sorted(items, key=arrival)
    s, b = shard(), []
    for item in late:  # and each is applied as it comes, nothing held back
        s.add(item, 0.0)
        b += s.release(1.0)
    assert late != items and changes(a) and changes(a) == changes(b)


def test_a_redelivered_order_counts_once_and_is_counted_as_a_duplicate_once(tmp_path):
    once = order_events("S1", 3, T0)
    path = write_events(tmp_path / "e.jsonl", once + once[:1])  # the first order delivered twice
    metrics, out = replay(path, tmp_path / "out")
    assert metrics.total(metrics.duplicates) == 1
    # 2 orders, the first redelivered, then one a week later (it moves S1's ledger shard on): never 3 orders
    later = [{**e, "event_id": "S1-later", "order_id": "S1-later"} for e in order_events("S1", 1, T0 + 8 * DAY_MS)]
    twice = order_events("S1", 2, T0) + order_events("S1", 1, T0) + later
    _, out2 = replay(write_events(tmp_path / "e2.jsonl", twice), tmp_path / "out2")
    assert out2["incentives.jsonl"] == []
    [credited] = out2["standing.jsonl"]  # a clean, active week earned credits; the badge wants a third order
    assert credited["credits"] == 10 and credited["programs"] == []
    assert credited["program_gaps"][0]["missing"] == ["2 orders in the last 7 days, 3 needed"]
