"""The job consumes the reviewers' governance extensions (docs/CONTRACT.md, "Extensions").

`violation.overturned` (a reviewer overturns a violation nobody appealed)
is applied by the ledger like an overturned appeal; `review.decided`
(dismiss/escalate a review-queue entry) is accepted by the ledger without
points and teaches the anomaly model; `appeal.decided` may carry a reason.
"""

from __future__ import annotations

import json

import msgspec

from detectors.models.anomaly import AnomalyModel
from detectors.models.config import shipped_models_config as models_config
from detectors.models.online import OnlineModels
from pipeline.contract.events import ReviewDecided, ViolationOverturned, decode
from tests.conftest import read_jsonl, replay
from tests.test_workbench_store import MIN, T0


def prohibited_listing_events() -> list[dict]:
    """A marketplace where seller S99 lists a prohibited item (a violation with points)."""
    lines = [{"event_id": f"e{n}", "type": "listing.created", "ts": T0 + n * MIN, "seller_id": f"S{n}",
              "listing_id": f"L{n}", "title": "Honest plain mug", "category": "home", "price": 12.0,
              "currency": "USD", "brand": None, "original_price": None, "image_hash": None} for n in range(6)]
    lines.append({"event_id": "bad", "type": "listing.created", "ts": T0 + 7 * MIN, "seller_id": "S99",
                  "listing_id": "L99", "title": "pangolin scales for medicine", "category": "health",
                  "price": 30.0, "currency": "USD", "brand": None, "original_price": None, "image_hash": None})
    return lines


def write_events(path, events: list[dict]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def overturn(event_id: str, violation: dict, ts: int) -> dict:
    return {"event_id": event_id, "type": "violation.overturned", "ts": ts, "violation_id": violation["violation_id"],
            "actor": violation["actor"], "reviewer_id": "rev-ana", "reason": "The item is a legal replica."}


def test_the_extension_events_decode_and_keep_their_fields():
    o = decode(json.dumps(overturn("o1", {"violation_id": "v1", "actor": "seller:a/b"}, 5)).encode())
    assert isinstance(o, ViolationOverturned) and o.actor == "seller:a/b"
    assert (o.as_decision().decision, o.as_decision().appeal_id, o.as_decision().reason) == \
        ("overturned", "o1", "The item is a legal replica.")
    r = decode(json.dumps({"event_id": "r1", "type": "review.decided", "ts": 5, "actor": "creator:C1",
                           "model": "creator_anomaly_v1", "entry_ts": 4, "decision": "escalated",
                           "reviewer_id": "rev-bo"}).encode())
    assert isinstance(r, ReviewDecided) and r.features == {} and r.reason is None
    d = decode(json.dumps({"event_id": "d1", "type": "appeal.decided", "ts": 5, "appeal_id": "a", "violation_id": "v",
                           "actor": "seller:S1", "decision": "upheld", "reviewer_id": "rev-ana",
                           "reason": "The invoice is for another item."}).encode())
    assert d.reason == "The invoice is for another item."


def test_a_reviewers_overturn_is_applied_by_the_job_once(tmp_path):
    events = prohibited_listing_events()
    write_events(tmp_path / "events.jsonl", events)
    _, first = replay(tmp_path / "events.jsonl", tmp_path / "out1")
    [v] = first["violations.jsonl"]
    before = max(first["standing.jsonl"], key=lambda s: s["ts"])
    assert before["active_points"] == v["points"] > 0

    verdicts = [overturn("o1", v, T0 + 9 * MIN), overturn("o2", v, T0 + 10 * MIN),  # the second: already decided
                {"event_id": "r1", "type": "review.decided", "ts": T0 + 9 * MIN, "actor": v["actor"],
                 "model": "seller_anomaly_v1", "entry_ts": T0 + 8 * MIN, "decision": "dismissed",
                 "reviewer_id": "rev-ana", "features": {"orders_per_hour": 3.0}}]
    write_events(tmp_path / "events2.jsonl", events + verdicts)
    _, second = replay(tmp_path / "events2.jsonl", tmp_path / "out2")
    after = max(second["standing.jsonl"], key=lambda s: s["ts"])
    assert after["active_points"] == 0 and after["restrictions"] == []
    assert any(a["action"] == "reinstatement" for a in second["actions.jsonl"])
    [dead] = second["dead_letter.jsonl"]  # only the repeated overturn; the review verdict is accepted
    assert dead["reason"] == "repeated_appeal" and "o2" in dead["source"]


def test_an_overturn_of_an_unknown_violation_is_a_dead_letter(tmp_path):
    events = prohibited_listing_events() + [overturn("o9", {"violation_id": "v-none", "actor": "seller:S99"},
                                                     T0 + 9 * MIN)]
    write_events(tmp_path / "events.jsonl", events)
    _, out = replay(tmp_path / "events.jsonl", tmp_path / "out")
    [dead] = out["dead_letter.jsonl"]
    assert dead["reason"] == "unknown_violation" and "overturn o9" in dead["error"]


def test_a_dismissed_review_entry_teaches_the_anomaly_model_its_features():
    model = AnomalyModel(models_config().anomaly)
    seller = model.state["seller"]
    verdict = ReviewDecided(event_id="r1", ts=1, actor="seller:S1", model=seller.name, entry_ts=1,
                            decision="dismissed", reviewer_id="rev-ana", features={"orders_per_hour": 40.0})
    weight_before = seller.moments["orders_per_hour"][0]
    assert model.learn_verdict(verdict)
    assert seller.moments["orders_per_hour"][0] == weight_before + 1
    escalated = msgspec.structs.replace(verdict, decision="escalated")
    assert model.learn_verdict(escalated)
    assert seller.moments["orders_per_hour"][0] == weight_before + 1  # a confirmed anomaly is never learned
    assert not model.learn_verdict(msgspec.structs.replace(verdict, model="creator_anomaly_v1"))
    models = OnlineModels(models_config(), resume=None)
    models.anomaly = model
    assert models.quality()[(seller.name, "reviewer_escalated_share")] == 0.5
    assert seller.verdicts == {"dismissed": 1, "escalated": 1}


def test_the_job_reads_the_extensions_from_a_governance_file_without_dead_letters(tmp_path):
    gov = [{"event_id": "r2", "type": "review.decided", "ts": T0, "actor": "creator:C1", "model": "creator_anomaly_v1",
            "entry_ts": T0, "decision": "escalated", "reviewer_id": "rev-bo", "reason": None}]
    write_events(tmp_path / "events.jsonl", prohibited_listing_events() + gov)
    _, out = replay(tmp_path / "events.jsonl", tmp_path / "out")
    assert out["dead_letter.jsonl"] == []
    assert read_jsonl(tmp_path / "out" / "violations.jsonl")
