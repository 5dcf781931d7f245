"""A reviewer's day in the workbench, through HTTP: find, claim, annotate, decide, export, audit, chart.

Each test does what a reviewer does and checks what they (or the seller, or
the job reading the governance file) see afterwards.
"""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlencode

from pipeline.contract.records import encode
from pipeline.enforce.ledger import example_violation
from pipeline.enforce.policy import load_policy
from tests.test_workbench_access import (  # noqa: F401
    ALICE, BOB, REVIEWER, REVIEWER_2, governance_lines, signed_in, world,
)
from tests.test_workbench_store import MIN, T0
from workbench.charts import detector_rates


def appeal(world, vid: str, token: str = ALICE[1], actor: str = "seller:S1") -> None:
    c, csrf = signed_in(world["app"], token)
    r = c.post(f"/standing/{actor}/appeal", data={"csrf_token": csrf, "violation_id": vid, "reason": "Genuine."})
    assert r.status_code == 303, r.text


def post_pairs(c, url: str, pairs: list[tuple[str, str]]):
    """POST a form with repeated fields, in order (the CSRF token first)."""
    return c.post(url, content=urlencode(pairs), headers={"content-type": "application/x-www-form-urlencoded"})


def rows_of(csv_text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(csv_text)))


# ---- finding work ------------------------------------------------------------------------------------


def test_search_finds_actors_by_prefix_and_violations_appeals_and_listings_by_id(world):
    appeal(world, world["alice_v"][0])
    rev, _ = signed_in(world["app"], REVIEWER[1])
    by_prefix = rev.get("/search?q=seller:S").text
    assert "seller:S1" in by_prefix and "seller:S2" in by_prefix
    assert "seller:S1" in rev.get("/search?q=S1").text  # the role may be left out
    vid = world["alice_v"][1]
    assert f"#{vid}" in rev.get(f"/search?q={vid[:8]}").text
    appeal_id = governance_lines(world["gov"])[0]["appeal_id"]
    assert appeal_id in rev.get(f"/search?q={appeal_id}").text
    found = rev.get("/search?q=L2").text  # the listing in seller:S2's fake discount evidence
    assert '/violations?ref=L2' in found
    listed = rev.get("/violations?ref=L2").text
    assert 'id="count">1 matching violation' in listed and "seller:S2" in listed
    nothing = rev.get("/search?q=zzz-nothing").text
    assert nothing.count("None.") == 4


def test_the_violations_list_filters_by_actor_prefix(world):
    rev, _ = signed_in(world["app"], REVIEWER[1])
    assert 'id="count">4 matching' in rev.get("/violations?actor_prefix=seller:S").text
    assert 'id="count">2 matching' in rev.get("/violations?actor_prefix=seller:S2").text
    assert 'id="count">2 matching' in rev.get("/violations?actor=seller:S1").text


# ---- cases: claim, assign, notes, status --------------------------------------------------------------


def test_claim_assign_note_and_release_a_review_case(world):
    ana, a_csrf = signed_in(world["app"], REVIEWER[1])
    bo, b_csrf = signed_in(world["app"], REVIEWER_2[1])
    case = "review:seller:S2"
    assert ana.post("/cases/claim", data={"csrf_token": a_csrf, "case": case}).status_code == 303
    queue = ana.get("/queue").text
    assert "In review" in queue and "rev-ana" in queue
    taken = bo.post("/cases/claim", data={"csrf_token": b_csrf, "case": case})
    assert taken.status_code == 409 and "rev-ana has claimed this case" in taken.text
    assert ana.post("/cases/claim", data={"csrf_token": a_csrf, "case": case, "assignee": "rev-bo"}).status_code == 303
    assert "rev-bo" in bo.get("/queue?assignee=rev-bo").text
    assert "No case matches" in bo.get("/queue?assignee=rev-ana").text
    assert bo.post("/cases/note", data={"csrf_token": b_csrf, "case": case,
                                        "text": "Orders from new buyers only."}).status_code == 303
    assert "Orders from new buyers only." in ana.get("/actors/seller:S2").text
    assert bo.post("/cases/release", data={"csrf_token": b_csrf, "case": case}).status_code == 303
    assert "seller:S2" in ana.get("/queue?assignee=-").text
    nowhere = ana.post("/cases/claim", data={"csrf_token": a_csrf, "case": "review:seller:S404"})
    assert nowhere.status_code == 404
    bad = ana.post("/cases/claim", data={"csrf_token": a_csrf, "case": case, "assignee": "rev-nobody"})
    assert bad.status_code == 400


def test_dismiss_and_escalate_review_cases_publish_verdicts_the_job_reads(world, tmp_path):
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    r = rev.post("/actors/seller:S2/review", data={"csrf_token": csrf, "decision": "dismissed",
                                                   "reason": "A seasonal sale."})
    assert r.status_code == 303
    [event] = governance_lines(world["gov"])
    assert event["type"] == "review.decided" and event["decision"] == "dismissed"
    assert event["model"] == "seller_anomaly_v1" and event["features"] == {"orders_per_hour": 40.0,
                                                                           "refund_share": 0.1}
    again = rev.post("/actors/seller:S2/review", data={"csrf_token": csrf, "decision": "escalated"})
    assert again.status_code == 409 and "Already decided by rev-ana" in again.text
    assert "Decided" in rev.get("/queue?status=decided").text
    assert "No case matches" in rev.get("/queue").text  # the default view: open and in review
    # claiming reopens it for a second look; escalating then marks it
    rev.post("/cases/release", data={"csrf_token": csrf, "case": "review:seller:S2"})
    assert rev.post("/actors/seller:S2/review", data={"csrf_token": csrf, "decision": "escalated"}).status_code == 303
    assert "Escalated" in rev.get("/queue?status=escalated").text
    assert [e["decision"] for e in governance_lines(world["gov"])] == ["dismissed", "escalated"]
    assert rev.post("/actors/seller:S1/review", data={"csrf_token": csrf, "decision": "dismissed"}).status_code == 404


# ---- decisions ------------------------------------------------------------------------------------------


def test_a_decision_needs_a_reason_and_the_seller_reads_it(world):
    vid = world["alice_v"][0]
    appeal(world, vid)
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    missing = rev.post("/actors/seller:S1/decide", data={"csrf_token": csrf, "violation_id": vid,
                                                         "decision": "upheld", "reason": "   "})
    assert missing.status_code == 400 and "Give a reason" in missing.text
    rev.post("/actors/seller:S1/decide", data={"csrf_token": csrf, "violation_id": vid, "decision": "upheld",
                                               "reason": "The listing copies a protected logo."})
    alice, _ = signed_in(world["app"], ALICE[1])
    page = alice.get("/standing/seller:S1").text
    assert "the violation stands" in page and "The listing copies a protected logo." in page


def test_a_reviewer_overturns_a_violation_nobody_appealed(world):
    vid = world["alice_v"][1]
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    assert "Overturn without an appeal" in rev.get("/actors/seller:S1").text
    r = rev.post("/actors/seller:S1/overturn", data={"csrf_token": csrf, "violation_id": vid,
                                                     "reason": "The duplicates were variants of one listing."})
    assert r.status_code == 303
    [event] = governance_lines(world["gov"])
    assert event["type"] == "violation.overturned" and event["violation_id"] == vid
    bo, b_csrf = signed_in(world["app"], REVIEWER_2[1])
    again = bo.post("/actors/seller:S1/overturn", data={"csrf_token": b_csrf, "violation_id": vid, "reason": "x"})
    assert again.status_code == 409 and "overturned by rev-ana" in again.text
    alice, _ = signed_in(world["app"], ALICE[1])
    page = alice.get("/standing/seller:S1").text
    assert "A reviewer overturned this violation" in page and "variants of one listing" in page
    wrong = rev.post("/actors/seller:S1/overturn", data={"csrf_token": csrf, "violation_id": world["bob_v"][0],
                                                         "reason": "x"})
    assert wrong.status_code == 404


def test_bulk_decisions_ask_for_confirmation_then_decide_each(world):
    for vid in world["alice_v"]:
        appeal(world, vid)
    for vid in world["bob_v"]:
        appeal(world, vid, BOB[1], "seller:S2")
    ids = [e["appeal_id"] for e in governance_lines(world["gov"])]
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    page = rev.get("/appeals").text
    assert all(f'value="{i}"' in page for i in ids)
    bo, b_csrf = signed_in(world["app"], REVIEWER_2[1])  # decides one while the bulk is being prepared
    bo.post("/actors/seller:S2/decide", data={"csrf_token": b_csrf, "violation_id": world["bob_v"][0],
                                              "decision": "overturned", "reason": "Real discount."})
    form = [("csrf_token", csrf), *[("appeal_id", i) for i in [*ids, "ap-gone"]], ("decision", "upheld"),
            ("reason", "The evidence holds.")]
    confirm = post_pairs(rev, "/appeals/bulk", form)
    assert confirm.status_code == 200 and "Uphold 4 appeals?" in confirm.text
    assert "1 selected appeal(s) no longer exist" in confirm.text
    assert len(governance_lines(world["gov"])) == 5  # nothing decided before confirming
    done = post_pairs(rev, "/appeals/bulk", form + [("confirm", "yes")])
    assert done.status_code == 303
    after = rev.get("/appeals").text
    assert "3 appeal(s) upheld by rev-ana" in after and "Already decided: overturned by rev-bo" in after
    assert "ap-gone: no such appeal" in after
    decided = [e for e in governance_lines(world["gov"]) if e["type"] == "appeal.decided"]
    assert sorted(e["decision"] for e in decided) == ["overturned", "upheld", "upheld", "upheld"]
    assert all(e["reason"] == "The evidence holds." for e in decided if e["reviewer_id"] == "rev-ana")
    assert post_pairs(rev, "/appeals/bulk", [("csrf_token", csrf), ("decision", "upheld"),
                                             ("reason", "x")]).status_code == 400


def test_the_appeals_page_filters_and_keeps_the_decided_history(world):
    for vid in world["alice_v"]:
        appeal(world, vid)
    appeal(world, world["bob_v"][0], BOB[1], "seller:S2")
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    rev.post("/actors/seller:S1/decide", data={"csrf_token": csrf, "violation_id": world["alice_v"][0],
                                               "decision": "overturned", "reason": "Genuine invoice."})
    waiting = rev.get("/appeals").text
    assert world["alice_v"][1] in waiting and world["alice_v"][0] not in waiting
    history = rev.get("/appeals?state=decided").text
    assert world["alice_v"][0] in history and "Genuine invoice." in history and "rev-ana" in history
    assert world["alice_v"][0] in rev.get("/appeals?state=decided&decision=overturned&reviewer=rev-ana").text
    assert "No appeal matches" in rev.get("/appeals?state=decided&decision=upheld").text
    by_type = rev.get("/appeals?type=fake_discount").text
    assert world["bob_v"][0] in by_type and world["alice_v"][1] not in by_type
    assert world["bob_v"][0] not in rev.get("/appeals?actor=seller:S1").text


# ---- exports and the audit log ------------------------------------------------------------------------


def test_every_list_exports_as_csv(world):
    appeal(world, world["alice_v"][0])
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    rev.post("/cases/note", data={"csrf_token": csrf, "case": "review:seller:S2", "text": "=cmd|' /C calc'!A0"})
    exports = {"/violations?format=csv": 4, "/violations?type=fake_discount&format=csv": 1,
               "/queue?format=csv": 1, "/appeals?state=all&format=csv": 1, "/audit?format=csv": 4}
    for url, n in exports.items():
        r = rev.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), url
        assert "attachment" in r.headers["content-disposition"]
        assert len(rows_of(r.text)) == n, (url, r.text)
    violations = rows_of(rev.get("/violations?format=csv").text)
    assert {"violation_id", "actor", "evidence", "explanation"} <= set(violations[0])
    assert json.loads(violations[0]["evidence"])["listing_id"].startswith("L")
    audit = rows_of(rev.get("/audit?format=csv").text)
    note = next(r for r in audit if r["action"] == "noted")
    assert note["detail"].startswith("'=")  # a formula in a note is defused for spreadsheets


def test_the_audit_log_records_every_action_with_who_did_it(world):
    vid = world["alice_v"][0]
    appeal(world, vid)
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    rev.post("/cases/claim", data={"csrf_token": csrf, "case": "review:seller:S2"})
    rev.post("/cases/note", data={"csrf_token": csrf, "case": "review:seller:S2", "text": "checking"})
    rev.post("/actors/seller:S1/decide", data={"csrf_token": csrf, "violation_id": vid, "decision": "upheld",
                                               "reason": "Holds."})
    rev.post("/actors/seller:S1/overturn", data={"csrf_token": csrf, "violation_id": world["alice_v"][1],
                                                 "reason": "Wrong."})
    rev.post("/actors/seller:S2/review", data={"csrf_token": csrf, "decision": "escalated"})
    rev.post("/logout", data={"csrf_token": csrf})
    rev, _ = signed_in(world["app"], REVIEWER_2[1])
    rows = world["app"].state.workbench.desk.audit_log(limit=100)
    actions = [(r["who"], r["action"]) for r in reversed(rows)]
    assert actions == [("seller:S1", "signed_in"), ("seller:S1", "appealed"), ("rev-ana", "signed_in"),
                       ("rev-ana", "claimed"), ("rev-ana", "noted"), ("rev-ana", "decided_upheld"),
                       ("rev-ana", "overturned_unappealed"), ("rev-ana", "review_escalated"),
                       ("rev-ana", "signed_out"), ("rev-bo", "signed_in")]
    page = rev.get("/audit?who=rev-ana&action=decided_upheld").text
    assert "Decided upheld" in page and vid in page and "Overturned unappealed" not in page.split("<table")[1]


# ---- what reviewers and sellers read ------------------------------------------------------------------


def test_evidence_is_rendered_for_people(world):
    store = world["store"]
    v = example_violation("seller:S1", "misleading_claims", load_policy(), ts=T0 + 9 * MIN, n=77, evidence={
        "listing_id": "L77", "price": 6499.999999999995, "currency": "USD", "ratio": 3.14159265,
        "matched": [{"kind": "medical", "term": "cures", "as_written": "CURES"}],
        "text": "This tea CURES <b>everything</b>", "other_actors_on_identifier": ["seller:S9"]})
    with open(world["gov"].parent / "out" / "violations.jsonl", "ab") as f:
        f.write(encode(v) + b"\n")
    store.sync()
    rev, _ = signed_in(world["app"], REVIEWER[1])
    page = rev.get("/actors/seller:S1").text
    card = page[page.index(f'id="{v.violation_id}"'):]
    assert "6,500.00 USD" in card and "6499.99" not in card
    assert "3.142" in card and "3.14159" not in card
    assert "This tea <mark>CURES</mark> &lt;b&gt;everything&lt;/b&gt;" in card
    assert '<a href="/violations?ref=L77">L77</a>' in card


def test_charts_show_volume_rates_queue_and_throughput(world):
    appeal(world, world["alice_v"][0])
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    rev.post("/actors/seller:S1/decide", data={"csrf_token": csrf, "violation_id": world["alice_v"][0],
                                               "decision": "overturned", "reason": "Genuine."})
    page = rev.get("/charts").text
    for name in ("violations-per-day", "detector-rates", "queue-age", "reviewer-throughput"):
        assert f'src="/charts/{name}.svg"' in page
        r = rev.get(f"/charts/{name}.svg")
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
        assert "<script" not in r.text.split("<defs>")[0] and "http" not in r.headers["content-security-policy"]
    rates = detector_rates(world["store"])
    assert rates["series"]["appeal rate (% of violations)"] == [25.0]  # 1 of the 4 violations (one detector)
    assert rates["series"]["overturn rate (% of verdicts)"] == [100.0]
    assert "rev-ana" in page  # throughput: the verdict above, by its reviewer
    assert rev.get("/charts/nope.svg").status_code == 404


def test_the_seller_sees_actions_with_dates_and_the_appeal_deadline(world):
    alice, _ = signed_in(world["app"], ALICE[1])
    page = alice.get("/standing/seller:S1").text
    actions = page[page.index('id="actions"'):page.index("<h2>Violations")]
    assert "Listing removed" in actions and "2026-11-01" in actions and "Counterfeit listing" in actions
    assert "You can appeal until 2027-01-30" in page  # 90 days after 2026-11-01


def test_an_appeal_case_can_be_escalated_for_a_senior_reviewer(world):
    appeal(world, world["alice_v"][0])
    appeal_id = governance_lines(world["gov"])[0]["appeal_id"]
    rev, csrf = signed_in(world["app"], REVIEWER[1])
    r = rev.post("/cases/escalate", data={"csrf_token": csrf, "case": f"appeal:{appeal_id}",
                                          "text": "Brand owner disputes the invoice."})
    assert r.status_code == 303
    escalated = rev.get("/appeals?status=escalated").text
    assert world["alice_v"][0] in escalated and "Escalated" in escalated
    assert len(governance_lines(world["gov"])) == 1  # an escalation is the reviewers' own: nothing to the job
    assert rev.post("/cases/escalate", data={"csrf_token": csrf, "case": "review:seller:S2"}).status_code == 400
