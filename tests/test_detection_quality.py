"""End to end on the simulator: every catalog type found, honest sellers spared.

Two seeds and two scales, so the numbers are not tuned to one file. Per type,
precision and recall over distinct (actor, type) pairs must be >= 0.95, and no
hard-negative actor (an organic viral LIVE, a genuine flash sale, a premium
brand at premium prices, a traveller...) may receive any violation.
"""

from __future__ import annotations

import pytest

from detectors.registry import registry
from analysis.scoring import format_scores, score
from simulator import SimConfig, write
from tests.conftest import read_jsonl, replay

pytestmark = pytest.mark.slow

RUNS = {"seed7_scale1": SimConfig(seed=7, hours=6, scale=1.0), "seed11_scale0.5": SimConfig(seed=11, hours=6, scale=0.5),
        "seed23_scale1.5": SimConfig(seed=23, hours=6, scale=1.5)}


@pytest.fixture(scope="module", params=list(RUNS))
def run(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(request.param)
    write(RUNS[request.param], work / "sim")
    _, out = replay(work / "sim" / "events.jsonl", work / "out")
    return {
        "name": request.param,
        "work": work,
        "violations": out["violations.jsonl"],
        # Types the policy's catalog does not have yet have no detector to score (misleading_price_claim
        # until #14's detector lands); every other label is scored.
        "labels": [x for x in read_jsonl(work / "sim" / "labels.jsonl") if x["violation_type"] in CATALOG],
        "negatives": read_jsonl(work / "sim" / "hard_negatives.jsonl"),
    }


def test_every_catalog_type_meets_precision_and_recall(run):
    scores = score(run["violations"], run["labels"])
    table = format_scores(scores)
    assert set(registry().catalog) <= set(scores), f"types never labelled or found:\n{table}"
    weak = {t: (round(s.precision, 2), round(s.recall, 2), s.false_positive_actors[:5], s.missed_actors[:5])
            for t, s in scores.items() if s.precision < 0.95 or s.recall < 0.95}
    assert not weak, f"{run['name']}:\n{table}\n{weak}"


def test_no_hard_negative_gets_a_violation(run):
    flagged = {v["actor"] for v in run["violations"]}
    hit = [n for n in run["negatives"] if n["actor"] in flagged]
    assert hit == [], hit


def test_violations_are_issued_once_per_finding(run):
    ids = [v["violation_id"] for v in run["violations"]]
    assert len(ids) == len(set(ids))


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
