"""Detection quality on marketplaces no threshold was set on (issue #14's gate), and determinism.

`home` is the tuning world: every detector threshold in config/shopguard.toml
was set on it. The gate simulates each held-out world (`harbour`, `sakura`,
`atelier`, `pampa`: other currencies, brands, product types, wording and
variants of each abuse tactic) with seed 11, replays it through the real job and scores it
with `analysis.evaluate`, the code behind `shopguard evaluate` and the
README's tables.

The bar (#14): for every catalog type precision >= 0.97, recall >= 0.95 and a
median time to detect <= 60 s; no honest actor with an enforced violation.
Where a world does not meet it yet, `SHORTFALLS` records what was measured
(at the commit that last changed detection) and why; the gate then holds that
level, and fails both when a score falls below it and when it rises to the bar
(so the record is removed the day it is fixed, like a strict xfail).
"""

from __future__ import annotations

import pytest

from analysis.evaluate import TUNING_WORLD, WorldScore, evaluate
from simulator import SimConfig, write
from simulator.world import WORLDS
from tests.conftest import replay

pytestmark = pytest.mark.slow

GATE_SEED = 11
HELD_OUT = sorted(w for w in WORLDS if w != TUNING_WORLD)
MIN_PRECISION, MIN_RECALL, MAX_MEDIAN_TTD_S = 0.97, 0.95, 60.0

WORDING = "replica wording of this world the lexicon (policy data) does not have"
SPANISH = "Spanish wording the Spanish lexicon (policy data, written without seeing this world) does not have"
PREMIUM = ("an honest '[Kaede] Figure / Sumi Black / Chibi' at a figure's price compared with 'Chibi Plush "
           "(Sumi Black)' and 'Chibi Keychain (Sumi Black)': a one-word product name is outweighed by the rest")
# world -> type -> (precision, recall, median time to detect s) measured, for what falls short; "honest_enforced":
# honest actors with an enforced violation. Each with why.
SHORTFALLS: dict[str, dict[str, tuple[tuple[float, float, float | None], str]]] = {
    "harbour": {
        "counterfeit_listing": ((1.0, 0.92, None), "a protected brand at a price its few listings do not yet show "
                                                   "to be impossible"),
        "fake_discount": ((0.86, 1.0, None), "a 'was' price shown for minutes that overstates the discount by "
                                             "6 points (17.9% claimed, 11.5% real) is flagged; the world calls it "
                                             "honest"),
    },
    "sakura": {
        "counterfeit_listing": ((1.0, 0.75, None), WORDING + " ('kopi', a bare 'mirror') and copies priced "
                                                   "within the brand's range"),
        "price_gouging": ((0.86, 1.0, None), PREMIUM),
    },
    "atelier": {
        "counterfeit_listing": ((1.0, 0.8, None), WORDING + " ('inspired by' after the product) and a copy priced "
                                                  "within the brand's range"),
        "engagement_inflation": ((1.0, 0.8, None), "a short burst of bought likes the LIVE's own rate hides"),
        "misleading_price_claim": ((1.0, 0.8, None), "a spoken price not tied to its listing (decimal comma)"),
        "off_platform_solicitation": ((1.0, 0.8, None), "a payment app the lexicon does not have, named with a "
                                                        "saving but no contact ('bizum only, save 10%')"),
    },
    # Written blind (by a session that never read the detectors, their configuration or outputs); its people
    # write in Spanish, and the Spanish lexicons were then written blind too (by a session that never read
    # this world).
    "pampa": {
        "counterfeit_listing": ((1.0, 0.93, None), "a copy priced within the brand's range, with no copy wording "
                                                   "the lexicon has"),
        "fake_discount": ((0.88, 1.0, None), "a 'was' price never charged in the stream, 15% over the lowest "
                                             "recent price (the world calls it honest; the EU rule does not)"),
        "misleading_claims": ((1.0, 0.86, None), SPANISH),
        "misleading_price_claim": ((1.0, 0.71, None), SPANISH + " (price cues)"),
        "off_platform_solicitation": ((1.0, 0.86, None), SPANISH),
        "price_gouging": ((0.88, 1.0, None), "a fake-discount seller's raise before the 'sale' also reads as "
                                             "gouging (not an honest seller)"),
        "prohibited_listing": ((1.0, 0.86, None), SPANISH + " (names of banned goods)"),
    },
}
HONEST_ENFORCED: dict[str, tuple[int, str]] = {
    "harbour": (1, "the fake_discount case above"),
    "sakura": (1, PREMIUM),
    "pampa": (1, "the fake_discount case above"),
}
# The review queue (#14: surfaces >= 50% of the abusers no rule flagged, >= 60% of its actors abusers):
# world -> (share of its actors that are abusers, share of unflagged abusers surfaced), as measured.
MIN_QUEUE_PRECISION, MIN_QUEUE_SURFACED = 0.6, 0.5
QUEUE_RECORDED = {"harbour": (0.65, 0.0), "sakura": (0.76, 0.0), "atelier": (0.71, 0.0), "pampa": (0.63, 0.0)}


@pytest.fixture(scope="module", params=HELD_OUT)
def world(request, tmp_path_factory) -> WorldScore:
    return evaluate(request.param, GATE_SEED, work=tmp_path_factory.mktemp(request.param))


def test_the_tuning_world_is_never_the_one_scored():
    assert TUNING_WORLD not in HELD_OUT and len(HELD_OUT) >= 3
    assert set(SHORTFALLS) <= set(HELD_OUT) and set(HONEST_ENFORCED) <= set(HELD_OUT)


def test_every_type_meets_the_bar_or_holds_its_recorded_level(world):
    known = SHORTFALLS.get(world.world, {})
    problems = []
    for vtype, s in world.scores.items():
        got = (round(s.precision, 2), round(s.recall, 2), s.median_delay_s)
        meets = (got[0] >= MIN_PRECISION and got[1] >= MIN_RECALL
                 and (got[2] is None or got[2] <= MAX_MEDIAN_TTD_S))
        if vtype not in known:
            if not meets:
                problems.append(f"{vtype}: {got} below the bar (false positives {s.false_positive_actors[:5]}, "
                                f"missed {s.missed_actors[:5]})")
            continue
        (precision, recall, ttd), why = known[vtype]
        if meets:
            problems.append(f"{vtype} now meets the bar: remove it from SHORTFALLS[{world.world!r}]")
        elif got[0] < precision or got[1] < recall or (ttd is not None and (got[2] or 0) > 1.5 * ttd):
            problems.append(f"{vtype}: {got} fell below its recorded {(precision, recall, ttd)} ({why})")
    assert not problems, f"{world.world} seed {GATE_SEED}:\n" + "\n".join(problems)


def test_no_honest_actor_gets_an_enforced_violation(world):
    recorded, why = HONEST_ENFORCED.get(world.world, (0, ""))
    got = len(world.honest_enforced)
    assert got <= recorded, f"{world.world}: honest actors enforced: {world.honest_enforced} ({why})"
    assert got == recorded, f"{world.world}: {got} honest actors enforced, fewer than recorded: update HONEST_ENFORCED"


def test_the_review_queue_holds_its_recorded_level(world):
    """What the queue adds to the rules; the models do not meet #14's bar on held-out worlds yet."""
    q = world.queue
    precision, surfaced = QUEUE_RECORDED[world.world]
    assert q.actors and q.missed_by_rules, q
    assert (q.precision or 0) >= precision - 0.01 and (q.surfaced_share or 0) >= surfaced - 0.01, q
    meets = (q.precision or 0) >= MIN_QUEUE_PRECISION and (q.surfaced_share or 0) >= MIN_QUEUE_SURFACED
    assert not meets, f"{world.world}: the review queue meets the bar: drop QUEUE_RECORDED's entry and gate on it"


def test_every_catalog_type_is_labelled_and_scored(world):
    from detectors.registry import registry

    assert set(registry().catalog) <= set(world.scores)
    assert all(s.labelled >= 3 for s in world.scores.values()), {t: s.labelled for t, s in world.scores.items()}


def test_two_replays_give_byte_identical_violations(tmp_path):
    write(SimConfig(seed=5, hours=6, scale=0.5), tmp_path / "sim")
    replay(tmp_path / "sim" / "events.jsonl", tmp_path / "a")
    replay(tmp_path / "sim" / "events.jsonl", tmp_path / "b")
    a = (tmp_path / "a" / "violations.jsonl").read_bytes()
    assert a and a == (tmp_path / "b" / "violations.jsonl").read_bytes()


@pytest.mark.parametrize("workers", [2, 4])
def test_more_workers_give_the_same_violations_and_actions(tmp_path, workers):
    write(SimConfig(seed=5, hours=6, scale=0.5), tmp_path / "sim")
    _, one = replay(tmp_path / "sim" / "events.jsonl", tmp_path / "one")
    _, many = replay(tmp_path / "sim" / "events.jsonl", tmp_path / "many", workers=workers)
    for name, key in (("violations.jsonl", "violation_id"), ("actions.jsonl", "action_id")):
        assert one[name], name
        assert sorted(r[key] for r in one[name]) == sorted(r[key] for r in many[name])
    assert sorted(map(repr, one["standing.jsonl"])) == sorted(map(repr, many["standing.jsonl"]))


def test_every_simulated_line_is_accounted_for(tmp_path):
    write(SimConfig(seed=3, hours=6, scale=0.5), tmp_path / "sim")
    events = tmp_path / "sim" / "events.jsonl"
    metrics, _ = replay(events, tmp_path / "out")
    lines = sum(1 for _ in open(events, "rb"))
    assert metrics.total(metrics.input_records) == lines
    assert metrics.total(metrics.events) + metrics.total(metrics.dead_letters) >= lines
    assert metrics.total(metrics.duplicates) > 0  # the simulator redelivers some events
    assert metrics.total(metrics.events) == lines  # a simulated stream is all valid
