"""A detector that raises on one event costs that detector that event, never the job.

The attack: an event that trips a bug in one detector. Before, the exception
escaped the detect step and the whole job (and, from Kafka, every restart)
died. Now the event is dead-lettered with reason `detector_error`, the
metric counts it, the other detectors still use it, and everything after it
is processed.
"""

from __future__ import annotations

import json

from detectors.spam import ListingSpam
from tests.conftest import replay

T0 = 1_793_491_200_000


def listing(i: int, title: str, seller: str = "S1") -> dict:
    return {"event_id": f"e{i}", "type": "listing.created", "ts": T0 + i * 60_000, "seller_id": seller,
            "listing_id": f"L{i}", "title": title, "category": "phones", "price": 9.0, "currency": "USD",
            "brand": None, "original_price": None, "image_hash": None, "stock": 5}


def test_a_detector_error_is_a_dead_letter_and_the_job_keeps_going(tmp_path, monkeypatch):
    real = ListingSpam.on_event

    def on_event(self, state, event):
        if "poison" in event.title:
            raise ZeroDivisionError("division by zero")
        return real(self, state, event)

    monkeypatch.setattr(ListingSpam, "on_event", on_event)
    events = [listing(0, "poison pill")]
    events += [listing(i, f"Phone case {i}", seller="S2") for i in range(1, 7)]  # a spam burst after it
    events.append(listing(7, "Buy ivory carving, real elephant ivory", seller="S3"))  # a prohibited item
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))

    metrics, out = replay(path, tmp_path / "out")

    letters = out["dead_letter.jsonl"]
    assert [(d["reason"], d["source"]) for d in letters] == [("detector_error", "listing-events/listing.created/e0")]
    assert "listing_spam_v1 raised ZeroDivisionError" in letters[0]["error"]
    assert json.loads(letters[0]["raw"])["title"] == "poison pill"
    def counted(counter, label):
        return {k: v for k, v in metrics.by_label(counter, label).items() if v}

    assert counted(metrics.detector_errors, "detector") == {"listing_spam_v1": 1.0}
    assert counted(metrics.dead_letters, "reason") == {"detector_error": 1.0}
    found = {(v["actor"], v["violation_type"]) for v in out["violations.jsonl"]}
    assert found == {("seller:S2", "listing_spam"), ("seller:S3", "prohibited_listing")}
