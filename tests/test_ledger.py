"""The enforcement ledger: points, expiry, the ladder, appeals, lessons, health, shadow mode.

Unit tests drive `ActorLedger` / `pipeline.engine.ordered.LedgerShard` with fixed violations and
governance events; end-to-end tests replay small NDJSON files through the real
flow (bursts of near-duplicate listings trigger `listing_spam`).
"""

from __future__ import annotations

import json
import pickle
import random
import re
from pathlib import Path

import pytest

from pipeline.config import DEFAULT_POLICY
from pipeline.contract.events import AppealDecided, AppealFiled, EducationCompleted
from pipeline.contract.records import AppealOutcome
from pipeline.engine.ordered import LedgerShard
from pipeline.enforce.ledger import DAY_MS, ActorLedger, Ledger, example_violation
from pipeline.enforce.policy import load_policy
from pipeline.contract.records import Action, DeadLetter, Standing
from sinks.metrics import Metrics
from tests.conftest import replay

T0 = 1_793_491_200_000
HOUR = 3_600_000
POLICY = load_policy()


# ---- helpers ------------------------------------------------------------------------------------


def write_policy(path: Path, **edits: str) -> Path:
    """The default policy file with some keys changed: `write_policy(p, **{"types.listing_spam.points": "12"})`.

    A key is `section.key` (the first `key = ...` line after the `[section]` header)
    or a top-level key; values are TOML text.
    """
    text = DEFAULT_POLICY.read_text()
    for dotted, value in edits.items():
        section, _, key = dotted.rpartition(".")
        start = text.index(f"[{section}]\n") if section else 0
        line = re.compile(rf"^{re.escape(key)} = .*$", re.M).search(text, start)
        assert line, dotted
        text = text[:line.start()] + f"{key} = {value}" + text[line.end():]
    path.write_text(text)
    return path


def violation(actor="seller:S1", vtype="order_brushing", ts=T0, n=0, policy=POLICY, **evidence):
    return example_violation(actor, vtype, policy, ts=ts, n=n, evidence=evidence)


def filed(v, ts, appeal="A1", actor=None, event_id=None):
    return AppealFiled(event_id=event_id or f"f-{appeal}-{ts}", ts=ts, appeal_id=appeal,
                       violation_id=v if isinstance(v, str) else v.violation_id,
                       actor=actor or (v.actor if not isinstance(v, str) else "seller:S1"), reason="not me")


def decided(v, ts, decision, appeal="A1", actor=None, event_id=None):
    return AppealDecided(event_id=event_id or f"d-{appeal}-{ts}", ts=ts, appeal_id=appeal,
                         violation_id=v if isinstance(v, str) else v.violation_id,
                         actor=actor or (v.actor if not isinstance(v, str) else "seller:S1"), decision=decision,
                         reviewer_id="R1")


def lesson(ts, module="edu-order-integrity", actor="seller:S1"):
    return EducationCompleted(event_id=f"l-{actor}-{module}-{ts}", ts=ts, actor=actor, module_id=module)


class shard:
    """One shard of the `ledger` step as the dataflow runs it: items added with their (wall-clock)
    arrival, applied in event-time order by `release`."""

    def __init__(self, policy=POLICY, resume=None, emit_appeal_outcomes=False, **kw):
        self.metrics = Metrics()
        ledger = Ledger(policy, self.metrics, emit_appeal_outcomes=emit_appeal_outcomes)
        self.shard = LedgerShard(ledger, self.metrics, hold_seconds=None, dedupe_horizon_ms=DAY_MS, resume=resume,
                                 **kw)
        self.state = self.shard.state

    def add(self, item, arrived):
        assert self.shard.receive([item], arrived) == []

    def release(self, arrived_before):
        return self.shard.release(arrived_before)

    def next_release(self):
        return self.shard.order.oldest()


def run(items, policy=POLICY, **kw) -> list:
    """Replay-style: queue everything, apply at the end of input."""
    s = shard(policy, **kw)
    for item in items:
        s.add(item, 0.0)
    return s.release(None)


def of(records, kind):
    return [r for r in records if isinstance(r, kind)]


def actions(records):
    return [(a.action, a.active_points) for a in of(records, Action)]


def last_standing(records, actor="seller:S1") -> Standing:
    return [s for s in of(records, Standing) if s.actor == actor][-1]


# ---- the ladder -----------------------------------------------------------------------------------


def test_a_full_ladder_walk_issues_each_step_once_with_the_violations_behind_it():
    # order_brushing costs 12 points: each one climbs one step of 12/24/36/48
    vs = [violation(ts=T0 + i * HOUR, n=i, listing_ids=[f"L{i}"]) for i in range(5)]
    out = run(vs)
    assert actions(out) == [
        ("warning", 12),
        ("listing_removal", 24), ("live_restriction", 24),
        ("payout_hold", 36),
        ("suspension", 48),
    ]
    levels = [(s.active_points, s.level, s.restrictions) for s in of(out, Standing)]
    assert levels == [
        (12, "warning", ["listing_limit"]),
        (24, "restricted", ["listing_limit", "live_restriction"]),
        (36, "payout_hold", ["listing_limit", "live_restriction", "payout_hold", "temporary_suspension"]),
        (48, "suspended", ["suspension"]),
        (60, "suspended", ["suspension"]),  # more points above the top step: no new action
    ]
    removal = of(out, Action)[1]
    assert removal.violation_ids == [vs[0].violation_id, vs[1].violation_id]
    assert "remove listings L0, L1" in removal.reason
    suspension = of(out, Action)[-1]
    assert suspension.ts == vs[3].detected_at and len(suspension.violation_ids) == 4
    assert "level suspended (threshold 48)" in suspension.reason


def test_crossing_several_steps_at_once_issues_each_action_kind_once():
    # ban evasion: 48 points and an immediate suspension
    out = run([violation(vtype="linked_accounts")])
    assert [a for a, _ in actions(out)] == ["suspension", "warning", "listing_removal", "live_restriction",
                                            "payout_hold"]
    assert last_standing(out).level == "suspended"


def test_a_counterfeit_listing_is_removed_at_once_naming_the_listing():
    out = run([violation(vtype="counterfeit_listing", listing_id="L77")])
    first = of(out, Action)[0]
    assert first.action == "listing_removal" and "remove listing L77" in first.reason
    assert "SG-IP-001" in first.reason
    assert last_standing(out).level == "restricted"  # 24 points


def test_the_same_violation_twice_counts_once():
    v = violation()
    out = run([v, v])
    assert actions(out) == [("warning", 12)]
    assert last_standing(out).active_points == 12


def test_account_takeover_holds_the_payout_without_points_or_health_penalty():
    v = violation(vtype="account_takeover")
    out = run([v])
    assert actions(out) == [("payout_hold", 0)]
    s = last_standing(out)
    assert (s.active_points, s.level, s.restrictions, s.health) == (0, "good", ["payout_hold"], 1000)
    # the owner confirms the change through an appeal: the hold is lifted
    out = run([v, decided(v, T0 + HOUR, "overturned")])
    assert [a for a, _ in actions(out)] == ["payout_hold", "reinstatement"]
    assert "lifted: payout_hold" in of(out, Action)[-1].reason
    assert last_standing(out).restrictions == []


# ---- expiry -----------------------------------------------------------------------------------------


def test_points_expire_90_days_after_issue_in_event_time():
    v = violation()
    just_before = run([v, violation(ts=T0 + 90 * DAY_MS - 1, n=1, vtype="listing_spam")])
    assert last_standing(just_before).active_points == 12 + 2
    at_expiry = run([v, violation(ts=T0 + 90 * DAY_MS, n=1, vtype="listing_spam")])
    reinstated = of(at_expiry, Action)[-1]
    assert (reinstated.action, reinstated.ts, reinstated.violation_ids) == (
        "reinstatement", T0 + 90 * DAY_MS, [v.violation_id])
    assert "expired after 90 days" in reinstated.reason and "level warning -> good" in reinstated.reason
    assert last_standing(at_expiry).active_points == 2


def test_expiry_reinstates_a_quiet_actor_when_the_shard_clock_passes_it():
    # a suspended seller sends nothing more; another actor of the shard moves event time on
    vs = [violation(ts=T0 + i, n=i) for i in range(4)]
    other = violation(actor="seller:S2", ts=T0 + 91 * DAY_MS)
    out = run(vs + [other])
    mine = [a for a in of(out, Action) if a.actor == "seller:S1"]
    assert mine[-1].action == "reinstatement" and mine[-1].ts == T0 + 90 * DAY_MS + 3
    final = last_standing(out)
    assert (final.active_points, final.level, final.restrictions, final.health) == (0, "good", [], 1000)


def test_expired_actors_are_forgotten_so_state_stays_bounded():
    s = shard()
    for i in range(500):
        s.add(violation(actor=f"seller:S{i}", ts=T0 + i * 1000), 0.0)
    s.add(violation(actor="seller:late", ts=T0 + 100 * DAY_MS), 0.0)
    s.release(None)
    assert set(s.state.ledger.actors) == {"seller:late"}
    assert len(s.state.ledger.due) == 1


# ---- appeals -----------------------------------------------------------------------------------------


def test_an_appeal_shows_in_standing_until_it_is_decided():
    v = violation()
    out = run([v, filed(v, T0 + HOUR)])
    assert last_standing(out).under_appeal == [v.violation_id]
    out = run([v, filed(v, T0 + HOUR), decided(v, T0 + 2 * HOUR, "upheld")])
    assert last_standing(out).under_appeal == []


def test_an_overturned_appeal_removes_the_points_and_reinstates():
    a, b = violation(n=0), violation(n=1, ts=T0 + 1)
    out = run([a, b, filed(b, T0 + HOUR), decided(b, T0 + 2 * HOUR, "overturned")])
    reinstated = of(out, Action)[-1]
    assert (reinstated.action, reinstated.violation_ids, reinstated.active_points) == (
        "reinstatement", [b.violation_id], 12)
    assert "level restricted -> warning" in reinstated.reason
    final = last_standing(out)
    assert (final.active_points, final.level, final.restrictions) == (12, "warning", ["listing_limit"])


def test_an_upheld_appeal_changes_no_points_level_or_action():
    v = violation()
    before = run([v])
    after = run([v, filed(v, T0 + HOUR), decided(v, T0 + 2 * HOUR, "upheld")])
    assert actions(after) == actions(before)
    s, t = last_standing(before), last_standing(after)
    assert (t.active_points, t.level, t.restrictions) == (s.active_points, s.level, s.restrictions)


def test_decided_appeals_are_published_as_labels_for_the_models():
    v = violation(vtype="listing_spam", duplicates=7, listing_ids=["L1", "L2"])
    records = run([v, filed(v, T0 + HOUR), decided(v, T0 + 2 * HOUR, "overturned")], emit_appeal_outcomes=True)
    [label] = of(records, AppealOutcome)
    assert (label.violation_type, label.outcome, label.filed_at, label.decided_at) == (
        "listing_spam", "overturned", T0 + HOUR, T0 + 2 * HOUR)
    assert label.features == {"duplicates": 7.0, "listing_ids_count": 2.0}
    # by default the ledger's stream carries only contract records (outcomes are still counted)
    assert of(run([v, decided(v, T0 + HOUR, "upheld")]), AppealOutcome) == []


def test_appeal_outcomes_are_counted_by_outcome_and_type():
    v = violation()
    s = shard()
    for item in [v, filed(v, T0 + 1), decided(v, T0 + 2, "upheld")]:
        s.add(item, 0.0)
    s.release(None)
    counts = {(smp.labels["outcome"], smp.labels["violation_type"]): smp.value
              for m in s.metrics.appeals.collect() for smp in m.samples if smp.name.endswith("_total")}
    assert counts == {("filed", "order_brushing"): 1.0, ("upheld", "order_brushing"): 1.0}


@pytest.mark.parametrize("items, reason, words", [
    (lambda v: [filed("v-nope", T0)], "unknown_violation", "no violation v-nope was issued to seller:S1"),
    (lambda v: [v, filed(v, T0 + 1, actor="seller:S9")], "wrong_actor", "was issued to seller:S1, not seller:S9"),
    (lambda v: [v, filed(v, T0 + 1), filed(v, T0 + 2, appeal="A2")], "repeated_appeal", "already has an appeal"),
    (lambda v: [v, decided(v, T0 + 1, "upheld"), decided(v, T0 + 2, "overturned", appeal="A2")],
     "repeated_appeal", "already decided (upheld)"),
    (lambda v: [v, decided(v, T0 + 1, "upheld"), filed(v, T0 + 2, appeal="A2")], "repeated_appeal",
     "already has an appeal (upheld)"),
    (lambda v: [lesson(T0, module="edu-nonexistent")], "unknown_module", "'edu-nonexistent' is not a lesson"),
])
def test_governance_events_the_ledger_cannot_use_become_dead_letters(items, reason, words):
    v = violation()
    out = run(items(v))
    [letter] = of(out, DeadLetter)
    assert letter.reason == reason and words in letter.error
    assert json.loads(letter.raw)["type"] in {"appeal.filed", "appeal.decided", "education.completed"}
    assert letter.source.startswith("governance-events/")


def test_in_run_an_appeal_waits_for_a_violation_still_on_its_way():
    v = violation()
    s = shard(unknown_appeal_wait_seconds=30)
    s.add(filed(v, T0 + HOUR), arrived=100.0)  # the appeal reaches the ledger first
    assert s.release(arrived_before=103.0) == []
    assert s.next_release() == 105.0  # retried in 5 s, not dead-lettered
    s.add(v, arrived=104.0)
    out = s.release(arrived_before=110.0)
    assert of(out, DeadLetter) == []
    assert last_standing(out).under_appeal == [v.violation_id]


def test_in_run_an_appeal_for_a_violation_that_never_comes_is_dead_lettered_after_the_wait():
    s = shard(unknown_appeal_wait_seconds=30)
    s.add(filed("v-nope", T0), arrived=0.0)
    out, now = [], 0.0
    while not out and now < 100:
        now += 1
        out = s.release(arrived_before=now)
    assert [d.reason for d in of(out, DeadLetter)] == ["unknown_violation"]
    assert 30 <= now <= 40
    assert s.state.order.pending == []


# ---- lessons -----------------------------------------------------------------------------------------


def test_a_lesson_removes_one_point_once_per_type_per_30_days():
    v = violation()  # 12 points: warning
    items = [v, lesson(T0 + DAY_MS), lesson(T0 + 10 * DAY_MS), lesson(T0 + 31 * DAY_MS)]
    out = run(items)
    points = [s.active_points for s in of(out, Standing)]
    assert points == [12, 11, 10]  # the lesson on day 10 is within 30 days of the first: no credit
    # dropping below 12 ends the warning
    assert [(a.action, a.violation_ids) for a in of(out, Action)] == [
        ("warning", [v.violation_id]), ("reinstatement", [v.violation_id])]


def test_a_lesson_raises_health():
    v = violation()
    out = run([v, lesson(T0 + DAY_MS)])
    before, after = of(out, Standing)
    assert before.health == 1000 - 160  # high severity
    assert after.health == round(1000 - 160 * 89 / 90 + 25)  # a day of fading, plus the lesson's credit


def test_a_lesson_without_a_matching_violation_changes_nothing():
    v = violation()  # order brushing
    assert run([v, lesson(T0 + DAY_MS, module="edu-honest-pricing")]) == run([v])
    assert run([lesson(T0)]) == []


def test_lessons_never_take_points_below_zero_and_credit_each_type_separately():
    spam = [violation(vtype="listing_spam", ts=T0 + i, n=i) for i in range(2)]  # 2 points each
    fake = violation(vtype="fake_discount", ts=T0 + 5)  # 4 points
    items = spam + [fake] + [lesson(T0 + d * 31 * DAY_MS, "edu-listing-quality") for d in range(1, 3)]
    items.append(lesson(T0 + 10, "edu-honest-pricing"))
    out = run(items)
    assert last_standing(out).active_points == 4 + 4 - 1 - 2


# ---- health ------------------------------------------------------------------------------------------


def test_health_falls_by_severity_and_recovers_as_the_record_ages():
    ledger = ActorLedger("seller:S1")
    ledger.add_violation(violation(vtype="fake_discount"), POLICY)  # medium: 80
    assert ledger.health(T0, POLICY) == 920
    assert ledger.health(T0 + 45 * DAY_MS, POLICY) == 960
    assert ledger.health(T0 + 90 * DAY_MS, POLICY) == 1000


def test_health_never_leaves_0_to_1000():
    ledger = ActorLedger("seller:S1")
    for i in range(10):
        ledger.add_violation(violation(vtype="prohibited_listing", n=i), POLICY)
    assert ledger.health(T0, POLICY) == 0
    for i in range(20):
        ledger.lessons.append(T0)
    assert 0 <= ledger.health(T0 + 89 * DAY_MS, POLICY) <= 1000


# ---- shadow mode ------------------------------------------------------------------------------------


def test_shadow_mode_records_violations_without_points_actions_or_health(tmp_path):
    policy = load_policy(write_policy(tmp_path / "p.toml", **{"types.order_brushing.enforced": "false"}))
    v = violation(policy=policy)
    assert (v.enforced, v.points) == (False, 0)
    assert run([v], policy) == []
    # still appealable, so reviewers can judge the shadow detector
    out = run([v, filed(v, T0 + 1), decided(v, T0 + 2, "overturned")], policy, emit_appeal_outcomes=True)
    assert of(out, DeadLetter) == [] and of(out, Action) == []
    assert of(out, AppealOutcome)[0].enforced is False


# ---- order, determinism, state --------------------------------------------------------------------


def test_arrival_order_does_not_change_what_the_ledger_decides():
    vs = [violation(actor=f"seller:S{i % 3}", ts=T0 + i * HOUR, n=i) for i in range(12)]
    items = vs + [filed(vs[4], T0 + 20 * HOUR, actor="seller:S1"),
                  decided(vs[4], T0 + 21 * HOUR, "overturned", actor="seller:S1"),
                  lesson(T0 + 22 * HOUR, actor="seller:S2")]
    expected = run(items)
    for seed in range(5):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        assert run(shuffled) == expected


def test_governance_redeliveries_are_counted_once():
    v = violation()
    s = shard()
    for item in [v, filed(v, T0 + 1), filed(v, T0 + 1)]:
        s.add(item, 0.0)
    out = s.release(None)
    assert of(out, DeadLetter) == []
    assert s.metrics.total(s.metrics.duplicates) == 1


def test_shard_state_survives_pickling_mid_stream():
    v = violation()
    s = shard()
    s.add(v, 0.0)
    s.add(filed(v, T0 + 1), 1.0)
    first = s.release(arrived_before=0.5)
    resumed = shard(resume=pickle.loads(pickle.dumps(s.state)))
    rest = resumed.release(None)
    assert actions(first) == [("warning", 12)]
    assert last_standing(rest).under_appeal == [v.violation_id]


# ---- end to end: the real flow over small files ----------------------------------------------------

WORDS = ["amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor"]
CATEGORIES = ["phones", "toys", "books", "garden", "kitchen", "sports", "beauty", "tools"]


def spam_burst(seller: str, burst: int, start: int) -> list[dict]:
    """Five near-duplicate listings in five minutes: one `listing_spam` violation.

    Each burst is in another category, so its violation comes from another detect shard
    (possibly on another worker) than the seller's other bursts.
    """
    image = f"{abs(hash((seller, burst))) % 16**15:015x}{burst % 16:x}"
    return [{
        "event_id": f"{seller}-b{burst}-{i}", "type": "listing.created", "ts": start + i * 60_000,
        "seller_id": seller, "listing_id": f"{seller}-b{burst}-L{i}", "title": f"{WORDS[burst]} phone case {i}",
        "category": CATEGORIES[burst], "price": 9.5, "currency": "USD", "brand": None, "original_price": None,
        "image_hash": image, "stock": 10,
    } for i in range(5)]


def honest_listings(seller: str, start: int) -> list[dict]:
    return [{
        "event_id": f"{seller}-h{i}", "type": "listing.created", "ts": start + i * HOUR, "seller_id": seller,
        "listing_id": f"{seller}-H{i}", "title": f"{w} leather wallet", "category": "bags", "price": 30.0,
        "currency": "USD", "brand": None, "original_price": None, "image_hash": f"{i:016x}", "stock": 3,
    } for i, w in enumerate(["brown", "black", "tan"])]


def write_events(path: Path, events: list[dict], seed: int = 0) -> Path:
    """Write events in a reproducible arrival order where sellers interleave up to two minutes out of order.

    Each seller's own events stay in order: this file tests the ledger, not the detector's lateness.
    """
    rng = random.Random(seed)
    delay: dict[str, int] = {}
    for e in events:
        key = e.get("seller_id") or e.get("actor")
        delay.setdefault(key, rng.randint(0, 120_000))
    jittered = sorted(events, key=lambda e: (e["ts"] + delay[e.get("seller_id") or e.get("actor")], e["event_id"]))
    path.write_text("".join(json.dumps(e) + "\n" for e in jittered))
    return path


def marketplace(sellers=("S1", "S2", "S3", "S4"), bursts=(4, 2, 1, 0)) -> list[dict]:
    events = []
    for s, n in zip(sellers, bursts):
        for b in range(n):
            events += spam_burst(s, b, T0 + b * 2 * HOUR)
        events += honest_listings(f"H{s}", T0)
    return events


@pytest.fixture
def strict_policy(tmp_path) -> str:
    """listing_spam at 12 points, so every burst climbs a step."""
    return str(write_policy(tmp_path / "strict.toml", **{"types.listing_spam.points": "12"}))


def contract_view(out: dict) -> dict:
    """Output records as sets of JSON lines (file order across workers is not part of the contract)."""
    return {name: sorted(json.dumps(r, sort_keys=True) for r in records) for name, records in out.items()}


def test_the_same_file_on_1_and_2_workers_gives_identical_actions_and_standings(tmp_path, strict_policy):
    events = write_events(tmp_path / "e.jsonl", marketplace())
    _, one = replay(events, tmp_path / "w1", workers=1, policy=strict_policy)
    _, two = replay(events, tmp_path / "w2", workers=2, policy=strict_policy)
    # S1 walks all four steps (5 actions), S2 two (3), S3 one (1)
    assert len(one["actions.jsonl"]) == 5 + 3 + 1
    assert contract_view(one) == contract_view(two)


def test_a_replay_walks_the_ladder_and_honest_sellers_get_nothing(tmp_path, strict_policy):
    events = write_events(tmp_path / "e.jsonl", marketplace())
    _, out = replay(events, tmp_path / "out", policy=strict_policy)
    final = {s["actor"]: s for s in out["standing.jsonl"]}
    assert {a: (s["active_points"], s["level"]) for a, s in final.items()} == {
        "seller:S1": (48, "suspended"), "seller:S2": (24, "restricted"), "seller:S3": (12, "warning")}
    assert not any(a["actor"].startswith("seller:H") for a in out["actions.jsonl"])


def test_a_replay_with_appeals_and_lessons_gives_the_expected_standings(tmp_path, strict_policy):
    base = marketplace()
    _, first = replay(write_events(tmp_path / "e.jsonl", base), tmp_path / "first", policy=strict_policy)
    ids = {}
    for v in sorted(first["violations.jsonl"], key=lambda v: v["detected_at"]):
        ids.setdefault(v["actor"], []).append(v["violation_id"])
    late = T0 + 2 * DAY_MS
    governance = [
        # S1 (48, suspended): one violation overturned -> 36, payout_hold
        {"event_id": "g1", "type": "appeal.filed", "ts": late, "appeal_id": "A1",
         "violation_id": ids["seller:S1"][3], "actor": "seller:S1", "reason": "those were different colours"},
        {"event_id": "g2", "type": "appeal.decided", "ts": late + HOUR, "appeal_id": "A1",
         "violation_id": ids["seller:S1"][3], "actor": "seller:S1", "decision": "overturned", "reviewer_id": "R1"},
        # S2 (24, restricted): appeal upheld -> unchanged; a lesson -> 23, back to warning
        {"event_id": "g3", "type": "appeal.decided", "ts": late, "appeal_id": "A2",
         "violation_id": ids["seller:S2"][0], "actor": "seller:S2", "decision": "upheld", "reviewer_id": "R2"},
        {"event_id": "g4", "type": "education.completed", "ts": late + HOUR, "actor": "seller:S2",
         "module_id": "edu-listing-quality"},
        # S3 (12, warning): appeal filed, not decided yet
        {"event_id": "g5", "type": "appeal.filed", "ts": late, "appeal_id": "A3",
         "violation_id": ids["seller:S3"][0], "actor": "seller:S3", "reason": "a bulk upload mistake"},
        # an appeal for a violation that does not exist
        {"event_id": "g6", "type": "appeal.filed", "ts": late, "appeal_id": "A4", "violation_id": "v-made-up",
         "actor": "seller:S4", "reason": "?"},
    ]
    events = write_events(tmp_path / "e2.jsonl", base + governance)
    for workers in (1, 2):
        metrics, out = replay(events, tmp_path / f"out{workers}", workers=workers, policy=strict_policy)
        final = {s["actor"]: s for s in out["standing.jsonl"]}
        assert {a: (s["active_points"], s["level"], s["under_appeal"]) for a, s in final.items()} == {
            "seller:S1": (36, "payout_hold", []),
            "seller:S2": (23, "warning", []),
            "seller:S3": (12, "warning", [ids["seller:S3"][0]]),
        }
        assert final["seller:S2"]["health"] > 1000 - 2 * 40
        reinstated = [a for a in out["actions.jsonl"] if a["action"] == "reinstatement"]
        assert sorted(a["actor"] for a in reinstated) == ["seller:S1", "seller:S2"]
        assert [d["reason"] for d in out["dead_letter.jsonl"]] == ["unknown_violation"]
        assert metrics.by_label(metrics.appeals, "outcome") == {"filed": 2, "overturned": 1, "upheld": 1}


# ---- end to end: the simulator with appeals and lessons injected ---------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A small simulated marketplace, replayed once under the default policy."""
    from simulator import SimConfig, write

    root = tmp_path_factory.mktemp("sim")
    write(SimConfig(seed=7, hours=2.0, scale=0.25), root)
    _, out = replay(root / "events.jsonl", root / "base")
    assert len(out["violations.jsonl"]) >= 10
    return root, out


def with_governance(root: Path, name: str, governance: list[dict]) -> Path:
    path = root / name
    path.write_bytes((root / "events.jsonl").read_bytes() + "".join(json.dumps(g) + "\n" for g in governance).encode())
    return path


def final_standings(out: dict) -> dict[str, dict]:
    return {s["actor"]: s for s in out["standing.jsonl"]}  # one actor's standings are in emission order


def test_simulation_with_every_violation_overturned_ends_with_everyone_in_good_standing(simulated, tmp_path):
    root, base = simulated
    after = max(v["detected_at"] for v in base["violations.jsonl"]) + HOUR
    governance = []
    for i, v in enumerate(base["violations.jsonl"]):
        common = {"appeal_id": f"A{i}", "violation_id": v["violation_id"], "actor": v["actor"]}
        governance += [
            {"event_id": f"gf{i}", "type": "appeal.filed", "ts": after, "reason": "please review", **common},
            {"event_id": f"gd{i}", "type": "appeal.decided", "ts": after + HOUR, "decision": "overturned",
             "reviewer_id": "R1", **common},
        ]
    path = with_governance(root, "overturned.jsonl", governance)
    outs = [replay(path, tmp_path / f"w{w}", workers=w)[1] for w in (1, 2)]
    assert contract_view(outs[0]) == contract_view(outs[1])
    out = outs[0]
    assert out["dead_letter.jsonl"] == []
    final = final_standings(out)
    # An appeal shows in the standing, even of a violation in shadow mode (no points, so no standing before).
    # (Other actors may gain a standing too: the appeals move event time on, and incentives follow it.)
    assert set(final) >= set(final_standings(base)) | {v["actor"] for v in base["violations.jsonl"]}
    assert {(s["active_points"], s["level"], s["health"], tuple(s["restrictions"]), tuple(s["under_appeal"]))
            for s in final.values()} == {(0, "good", 1000, (), ())}
    reinstated = {a["actor"] for a in out["actions.jsonl"] if a["action"] == "reinstatement"}
    restricted = {s["actor"] for s in base["standing.jsonl"] if s["restrictions"]}
    assert reinstated == restricted


def test_simulation_with_appeals_pending_and_lessons_gives_the_expected_standings(simulated, tmp_path):
    root, base = simulated
    after = max(v["detected_at"] for v in base["violations.jsonl"]) + HOUR
    first_of: dict[str, dict] = {}
    governance = []
    for i, v in enumerate(sorted(base["violations.jsonl"], key=lambda v: (v["detected_at"], v["violation_id"]))):
        first_of.setdefault(v["actor"], v)
        governance.append({"event_id": f"gf{i}", "type": "appeal.filed", "ts": after, "appeal_id": f"A{i}",
                           "violation_id": v["violation_id"], "actor": v["actor"], "reason": "please review"})
    for actor, v in first_of.items():  # each actor takes the lesson of its first violation, twice
        for n in (1, 2):
            governance.append({"event_id": f"l{n}-{actor}", "type": "education.completed", "ts": after + n * HOUR,
                               "actor": actor, "module_id": v["education"]["module_id"]})
    _, out = replay(with_governance(root, "pending.jsonl", governance), tmp_path / "out", workers=2)
    assert out["dead_letter.jsonl"] == []
    before, final = final_standings(base), final_standings(out)
    for actor, v in first_of.items():
        points = before[actor]["active_points"] if actor in before else 0
        expected = points - 1 if v["points"] > 0 else points  # one credit: the second lesson is within 30 days
        step = POLICY.step_for(expected)
        pending = sorted(x["violation_id"] for x in base["violations.jsonl"] if x["actor"] == actor)
        assert (final[actor]["active_points"], final[actor]["level"], final[actor]["under_appeal"]) == (
            expected, POLICY.ladder[step].level if step >= 0 else "good", pending), actor
