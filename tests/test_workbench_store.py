"""The workbench store follows the job's outputs into SQLite; the publisher hands governance events to the job.

What a reviewer relies on: every output line is in the store exactly once,
whatever the job was doing when the store read it (a half-written line, a
new run into the same folder, a restart of the console); filters and pages
show each violation once, newest first; a decision written by the workbench
is applied by the job's next run; and pages stay fast on a big store.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import msgspec
import pytest

from pipeline.enforce.ledger import ActorLedger, example_violation
from pipeline.enforce.policy import load_policy
from pipeline.contract.records import Action, Standing, Violation, encode
from workbench.publish import (
    FilePublisher, PublishError, appeal_decided, appeal_filed, event_time, lesson_completed,
)
from workbench.store import FileFeed, Follower, Store
from tests.conftest import read_jsonl, replay

T0 = 1793491200000  # 2026-11-01T00:00:00Z
MIN = 60_000


# ---- output folders made by the real ledger ----------------------------------------------------------


def ledger_outputs(out: Path, plan: list[tuple[str, str, int]], shadow: set[int] = frozenset()) -> list[Violation]:
    """Write violations, actions and standing for (actor, violation_type, minutes after T0), as the ledger would."""
    out.mkdir(parents=True, exist_ok=True)
    policy = load_policy()
    ledgers: dict[str, ActorLedger] = {}
    violations: list[Violation] = []
    with open(out / "violations.jsonl", "wb") as vf, open(out / "actions.jsonl", "wb") as af, \
            open(out / "standing.jsonl", "wb") as sf:
        for n, (actor, vtype, minute) in enumerate(plan):
            v = example_violation(actor, vtype, policy, ts=T0 + minute * MIN, n=n,
                                  evidence={"listing_id": f"L{n}", "count": n + 5})
            if n in shadow:
                v = msgspec.structs.replace(v, enforced=False)
            violations.append(v)
            vf.write(encode(v) + b"\n")
            for record in ledgers.setdefault(actor, ActorLedger(actor)).add_violation(v, policy):
                (af if isinstance(record, Action) else sf).write(encode(record) + b"\n")
    for name in ("review_queue.jsonl", "dead_letter.jsonl"):
        (out / name).touch()
    return violations


def review_line(actor: str, score: float, ts: int) -> bytes:
    features = {"orders_per_hour": {"value": 40.0, "usual": 2.0, "z": 6.1},
                "refund_share": {"value": 0.1, "usual": 0.05, "z": 1.2}}
    return json.dumps({"actor": actor, "score": score, "model": "seller_anomaly_v1", "features": features,
                       "ts": ts}).encode() + b"\n"


def fresh_store(out: Path, *governance: Path) -> Store:
    return Store(out / "wb.sqlite", FileFeed(out, governance))


# ---- following files -------------------------------------------------------------------------------


def test_every_output_line_is_in_the_store_once(tmp_path):
    violations = ledger_outputs(tmp_path, [("seller:S1", "listing_spam", 1), ("seller:S1", "counterfeit_listing", 5),
                                           ("creator:C2", "engagement_inflation", 7)])
    store = fresh_store(tmp_path)
    added = store.sync()
    assert added["violations"] == 3
    assert added["actions"] == len(read_jsonl(tmp_path / "actions.jsonl"))
    assert added["standing"] == len(read_jsonl(tmp_path / "standing.jsonl"))
    row = store.violation(violations[1].violation_id)
    assert row["actor"] == "seller:S1" and row["points"] == 24 and row["enforced"] is True
    assert row["evidence"] == {"listing_id": "L1", "count": 6}
    assert row["lesson_url"].startswith("https://")
    assert store.standing_now("seller:S1")["active_points"] == 26
    assert store.sync() == {k: 0 for k in added}  # nothing new, nothing doubled


def test_a_half_written_line_waits_for_its_newline(tmp_path):
    ledger_outputs(tmp_path, [("seller:S1", "listing_spam", 1)])
    store = fresh_store(tmp_path)
    store.sync()
    extra = ledger_outputs(tmp_path / "more", [("seller:S9", "fake_discount", 3)])[0]
    line = encode(extra) + b"\n"
    with open(tmp_path / "violations.jsonl", "ab") as f:
        f.write(line[:40])
        f.flush()
        assert store.sync()["violations"] == 0
        f.write(line[40:])
    assert store.sync()["violations"] == 1
    assert store.violation(extra.violation_id)["actor"] == "seller:S9"


def test_a_restarted_console_reads_only_what_is_new(tmp_path):
    ledger_outputs(tmp_path, [("seller:S1", "listing_spam", 1), ("seller:S2", "fake_discount", 2)])
    store = fresh_store(tmp_path)
    store.sync()
    store.close()
    extra = ledger_outputs(tmp_path / "more", [("seller:S3", "price_gouging", 3)])[0]
    with open(tmp_path / "violations.jsonl", "ab") as f:
        f.write(encode(extra) + b"\n")
    store = fresh_store(tmp_path)
    assert store.sync()["violations"] == 1
    assert store.counts()["violations"] == 3


def test_a_new_run_into_the_same_folder_replaces_the_old_one(tmp_path):
    old = ledger_outputs(tmp_path, [("seller:S1", "listing_spam", 1), ("seller:S2", "fake_discount", 2)])
    store = fresh_store(tmp_path)
    store.sync()
    # a new replay truncates the files and writes more than the store had read: same size is no proof
    new = ledger_outputs(tmp_path, [("seller:S7", "counterfeit_listing", 1), ("seller:S8", "counterfeit_listing", 2),
                                    ("seller:S9", "counterfeit_listing", 3)])
    store.sync()
    ids = {r["violation_id"] for r in store.violations()}
    assert ids == {v.violation_id for v in new}
    assert not ids & {v.violation_id for v in old}
    assert store.standing_now("seller:S1") is None


def test_a_new_run_that_starts_like_the_old_one_is_still_noticed(tmp_path):
    """A replay of the same events plus appeals rewrites the standing file: same first lines, then different."""
    ledger_outputs(tmp_path, [])
    same = [Standing(actor=f"seller:S{i}", active_points=2, level="good", health=960, restrictions=[], ts=T0 + i)
            for i in range(100)]  # well over 4 KiB that both runs share
    old_tail = [Standing(actor="seller:S1", active_points=24, level="restricted", health=680,
                         restrictions=["listing_limit", "live_restriction"], ts=T0 + 10 * MIN)]
    new_tail = [Standing(actor="seller:S1", active_points=24, level="restricted", health=680,
                         restrictions=["listing_limit", "live_restriction"], ts=T0 + 10 * MIN, under_appeal=["v-1"]),
                Standing(actor="seller:S1", active_points=0, level="good", health=1000, restrictions=[],
                         ts=T0 + 11 * MIN)]
    standing = tmp_path / "standing.jsonl"
    standing.write_bytes(b"".join(encode(s) + b"\n" for s in same + old_tail))
    store = fresh_store(tmp_path)
    store.sync()
    standing.write_bytes(b"".join(encode(s) + b"\n" for s in same + new_tail))
    store.sync()
    assert store.counts()["standing"] == 102
    assert store.standing_now("seller:S1")["level"] == "good"


def test_rebuild_gives_the_same_store(tmp_path):
    ledger_outputs(tmp_path, [("seller:S1", "listing_spam", m) for m in range(0, 300, 7)])
    store = fresh_store(tmp_path)
    store.sync()
    before = store.counts(), [r["violation_id"] for r in store.violations(limit=1000)]
    store.rebuild()
    assert (store.counts(), [r["violation_id"] for r in store.violations(limit=1000)]) == before


def test_the_same_violation_twice_is_stored_once(tmp_path):
    v = ledger_outputs(tmp_path, [("seller:S1", "listing_spam", 1)])[0]
    with open(tmp_path / "violations.jsonl", "ab") as f:
        f.write(encode(v) + b"\n")  # e.g. an at-least-once sink after a restart
    store = fresh_store(tmp_path)
    store.sync()
    assert store.counts()["violations"] == 1


def test_a_line_that_is_not_a_record_is_skipped_and_counted(tmp_path):
    ledger_outputs(tmp_path, [("seller:S1", "listing_spam", 1)])
    with open(tmp_path / "violations.jsonl", "ab") as f:
        f.write(b'{"violation_id": "broken"}\n')
    store = fresh_store(tmp_path)
    store.sync()
    assert store.counts()["violations"] == 1 and store.problems == 1


def test_the_follower_keeps_up_while_the_job_writes(tmp_path):
    ledger_outputs(tmp_path, [])
    more = ledger_outputs(tmp_path / "more", [(f"seller:S{i}", "listing_spam", i) for i in range(200)])
    store = fresh_store(tmp_path)
    follower = Follower(store, interval=0.05).start()

    def job() -> None:
        with open(tmp_path / "violations.jsonl", "ab") as f:
            for v in more:
                line = encode(v) + b"\n"
                f.write(line[:25])
                f.flush()
                f.write(line[25:])
                f.flush()

    writer = threading.Thread(target=job)
    writer.start()
    writer.join()
    deadline = time.monotonic() + 10
    while store.counts()["violations"] < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    follower.stop()
    assert store.counts()["violations"] == 200
    assert follower.last_error is None


def test_standing_now_is_the_newest_by_event_time_not_by_file_order(tmp_path):
    ledger_outputs(tmp_path, [])
    lines = [Standing(actor="seller:S1", active_points=p, level="good", health=h, restrictions=[], ts=ts)
             for p, h, ts in ((6, 920, T0 + 5 * MIN), (2, 960, T0 + 1 * MIN))]  # arrival order != ts order
    (tmp_path / "standing.jsonl").write_bytes(b"".join(encode(s) + b"\n" for s in lines))
    store = fresh_store(tmp_path)
    store.sync()
    assert store.standing_now("seller:S1")["active_points"] == 6
    assert [h["active_points"] for h in store.standing_history("seller:S1")] == [2, 6]


def test_the_review_queue_shows_each_actor_once_at_its_highest_score(tmp_path):
    ledger_outputs(tmp_path, [])
    (tmp_path / "review_queue.jsonl").write_bytes(
        review_line("seller:S1", 0.5, T0) + review_line("seller:S2", 0.7, T0) + review_line("seller:S1", 0.9, T0 + MIN)
        + review_line("seller:S1", 0.2, T0 + 2 * MIN))
    store = fresh_store(tmp_path)
    store.sync()
    rows = store.queue()
    assert [(r["actor"], r["score"], r["entries"]) for r in rows] == [("seller:S1", 0.9, 3), ("seller:S2", 0.7, 1)]
    assert rows[0]["ts"] == T0 + MIN and rows[0]["last_ts"] == T0 + 2 * MIN


# ---- filters and pages -----------------------------------------------------------------------------


def test_filters_and_pages_show_each_violation_once_newest_first(tmp_path):
    types = ["listing_spam", "fake_discount", "price_gouging", "counterfeit_listing"]
    plan = [(f"seller:S{i % 17}", types[i % 4], i) for i in range(400)]
    violations = ledger_outputs(tmp_path, plan, shadow={i for i in range(400) if i % 5 == 0})
    store = fresh_store(tmp_path)
    store.sync()

    def all_pages(**filters) -> list[dict]:
        rows, before = [], None
        while True:
            page = store.violations(**filters, before=before, limit=30)
            rows += page
            if len(page) < 30:
                return rows
            before = (page[-1]["detected_at"], page[-1]["id"])

    def expected(pred) -> list[str]:
        return [v.violation_id for v in sorted(violations, key=lambda v: -v.detected_at) if pred(v)]

    assert [r["violation_id"] for r in all_pages()] == expected(lambda v: True)
    assert [r["violation_id"] for r in all_pages(violation_type="fake_discount")] == \
        expected(lambda v: v.violation_type == "fake_discount")
    assert [r["violation_id"] for r in all_pages(severity="critical", enforced=False)] == \
        expected(lambda v: v.severity == "critical" and not v.enforced)
    in_window = all_pages(detector="example_v1", since=T0 + 100 * MIN, until=T0 + 200 * MIN)
    assert [r["violation_id"] for r in in_window] == \
        expected(lambda v: T0 + 100 * MIN <= v.detected_at < T0 + 200 * MIN)
    assert store.count_violations(violation_type="price_gouging", enforced=True) == \
        len(expected(lambda v: v.violation_type == "price_gouging" and v.enforced))
    assert store.count_violations(cap=50) == 51  # "50+": counting stops past the cap
    assert store.facets()["violation_type"] == sorted(types)


# ---- governance events: appeals and lessons ------------------------------------------------------


def test_appeals_and_lessons_from_the_governance_file(tmp_path):
    violations = ledger_outputs(tmp_path, [("seller:S1", "counterfeit_listing", 1), ("seller:S1", "listing_spam", 2)])
    gov = tmp_path / "governance.jsonl"
    pub = FilePublisher(gov)
    filed = appeal_filed(violations[0].violation_id, "seller:S1", "It is genuine, here is the invoice.",
                         ts=T0 + 3 * MIN)
    pub.publish(filed)
    pub.publish(appeal_filed(violations[1].violation_id, "seller:S1", "Not spam.", ts=T0 + 3 * MIN))
    pub.publish(appeal_decided(filed["appeal_id"], violations[0].violation_id, "seller:S1", "overturned", "rev-ana",
                               ts=T0 + 4 * MIN))
    pub.publish(lesson_completed("seller:S1", "edu-listing-quality", ts=T0 + 5 * MIN))
    store = fresh_store(tmp_path, gov)
    assert store.sync()["governance"] == 4
    appeals = store.appeals("seller:S1")
    assert appeals[violations[0].violation_id]["decision"] == "overturned"
    assert appeals[violations[0].violation_id]["reviewer_id"] == "rev-ana"
    assert appeals[violations[1].violation_id]["decision"] is None
    assert [a["violation_id"] for a in store.open_appeals()] == [violations[1].violation_id]
    assert store.lessons_done("seller:S1") == {"edu-listing-quality": T0 + 5 * MIN}
    assert store.clock() == T0 + 5 * MIN


def test_a_governance_file_that_is_a_whole_events_file_gives_only_governance_events(tmp_path, sample_events):
    ledger_outputs(tmp_path, [])
    store = fresh_store(tmp_path, sample_events)
    store.sync()
    in_file = [e for e in read_jsonl(sample_events)
               if e.get("type") in ("appeal.filed", "appeal.decided", "education.completed")]
    assert store.counts()["governance"] == len({e["event_id"] for e in in_file})


def test_the_publisher_writes_whole_valid_lines_and_refuses_invalid_events(tmp_path):
    gov = tmp_path / "governance.jsonl"
    gov.write_bytes(b'{"event_id": "x", "type": "education.completed", "ts": 1, "actor": "seller:S1", '
                    b'"module_id": "m"}')
    pub = FilePublisher(gov)  # the file's last line had no newline: ours must not be glued to it
    threads = [threading.Thread(target=lambda i=i: pub.publish(lesson_completed(f"seller:S{i}", "m", ts=i)))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = read_jsonl(gov)
    assert len(rows) == 21 and len({r["event_id"] for r in rows}) == 21
    with pytest.raises(PublishError, match="actor"):
        pub.publish(lesson_completed("buyer:B1", "m", ts=1))
    with pytest.raises(PublishError, match="decision"):
        pub.publish(appeal_decided("ap", "v", "seller:S1", "maybe", "rev", ts=1))
    assert len(read_jsonl(gov)) == 21


def test_event_time_follows_the_jobs_clock_never_before_the_violation():
    assert event_time(store_clock=T0, floor=T0 - MIN, mode="data") == T0
    assert event_time(store_clock=T0, floor=T0 + MIN, mode="data") == T0 + MIN
    assert event_time(store_clock=T0, floor=None, mode="wall") > T0 - 365 * 86_400_000


def test_a_decision_published_to_the_file_is_applied_by_the_next_replay(tmp_path):
    """The loop the console closes: outputs -> store -> decision -> governance file -> job -> new standing."""
    policy = load_policy()
    events = tmp_path / "events.jsonl"
    lines = []
    for n in range(6):  # a counterfeit listing: replica wording on a protected brand
        lines.append({"event_id": f"e{n}", "type": "listing.created", "ts": T0 + n * MIN, "seller_id": f"S{n}",
                      "listing_id": f"L{n}", "title": "Honest plain mug", "category": "home", "price": 12.0,
                      "currency": "USD", "brand": None, "original_price": None, "image_hash": None})
    lines.append({"event_id": "bad", "type": "listing.created", "ts": T0 + 7 * MIN, "seller_id": "S99",
                  "listing_id": "L99", "title": "pangolin scales for medicine", "category": "health",
                  "price": 30.0, "currency": "USD", "brand": None, "original_price": None, "image_hash": None})
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    out = tmp_path / "out"
    _, outputs = replay(events, out)
    assert outputs["violations.jsonl"], "the replay found no violation to appeal"
    v = outputs["violations.jsonl"][0]
    store = fresh_store(out, tmp_path / "gov.jsonl")
    store.sync()
    points_before = store.standing_now(v["actor"])["active_points"]
    assert points_before >= v["points"] > 0
    pub = FilePublisher(tmp_path / "gov.jsonl")
    filed = appeal_filed(v["violation_id"], v["actor"], "Traditional decoration, not medicine.",
                         ts=event_time(store.clock(), v["detected_at"]))
    pub.publish(filed)
    pub.publish(appeal_decided(filed["appeal_id"], v["violation_id"], v["actor"], "overturned", "rev-ana",
                               ts=event_time(store.clock(), filed["ts"])))
    combined = tmp_path / "combined.jsonl"
    combined.write_bytes(events.read_bytes() + (tmp_path / "gov.jsonl").read_bytes())
    _, again = replay(combined, out)
    assert not again.get("dead_letter.jsonl")
    store.sync()  # the store notices the new run and reads it
    now = store.standing_now(v["actor"])
    assert now["active_points"] == points_before - v["points"]
    assert policy.step_for(now["active_points"]) < policy.step_for(points_before) or now["active_points"] == 0
    assert any(a["action"] == "reinstatement" for a in store.actions(v["actor"]))


# ---- how fast -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_page_benchmark_opens_every_page_on_30k_violations(tmp_path):
    """`python -m workbench.bench` (the README's page times) loads 30,000 violations and opens every list,
    search, the audit log and every chart. How fast is the benchmark's to measure (BENCHMARKS.md), not a
    unit test's: a shared CI machine's load is not the workbench's speed."""
    from workbench.bench import bench, write_outputs

    write_outputs(tmp_path, violations=30_000)
    result = bench(tmp_path, requests=3)
    assert result["violations"] == 30_000
    assert len(result["pages"]) >= 20
    assert all(t["median_ms"] > 0 for t in result["pages"].values()), result["pages"]
    assert result["sync_1000_new_ms"] > 0


# ---- Kafka: the store follows the output topics, the publisher writes the governance topic -----------


@pytest.mark.kafka
def test_the_store_follows_kafka_topics_and_publishes_to_the_governance_topic(kafka_broker, tmp_path):
    from workbench.publish import KafkaPublisher
    from workbench.store import KafkaFeed

    prefix = kafka_broker.unique_topic("wb") + "."
    topics = {prefix + "violations": "violations", prefix + "actor-standing": "standing",
              prefix + "governance-events": "governance"}
    kafka_broker.create_topics(list(topics), partitions=2)
    folder = tmp_path / "made"
    violations = ledger_outputs(folder, [("seller:S1", "counterfeit_listing", 1), ("seller:S2", "listing_spam", 2)])
    kafka_broker.produce(prefix + "violations", [encode(v) for v in violations],
                         keys=[v.actor.encode() for v in violations])
    standing = (folder / "standing.jsonl").read_bytes().splitlines()
    kafka_broker.produce(prefix + "actor-standing", standing)

    def wait_for(store: Store, table: str, n: int) -> None:
        deadline = time.monotonic() + 30
        while store.counts()[table] < n and time.monotonic() < deadline:
            store.sync()
        assert store.counts()[table] == n

    settings = kafka_broker.client_config()
    store = Store(tmp_path / "wb.sqlite", KafkaFeed(settings, topics))
    wait_for(store, "violations", 2)
    wait_for(store, "standing", len(standing))
    assert store.standing_now("seller:S1")["active_points"] == 24

    publisher = KafkaPublisher(settings, topic=prefix + "governance-events")
    event = appeal_filed(violations[0].violation_id, "seller:S1", "Genuine goods.", ts=T0 + 5 * MIN)
    publisher.publish(event)
    publisher.close()
    [(key, value)] = kafka_broker.consume_all(prefix + "governance-events")
    assert key == b"seller:S1" and json.loads(value) == event
    wait_for(store, "governance", 1)
    assert store.appeals("seller:S1")[violations[0].violation_id]["reason"] == "Genuine goods."
    store.close()

    # a restarted console resumes from its saved offsets: only what is new, nothing twice
    more = ledger_outputs(tmp_path / "more", [("seller:S3", "price_gouging", 9)])
    kafka_broker.produce(prefix + "violations", [encode(more[0])], keys=[b"seller:S3"])
    store = Store(tmp_path / "wb.sqlite", KafkaFeed(settings, topics))
    wait_for(store, "violations", 3)
    for _ in range(3):
        store.sync()
    assert store.counts()["violations"] == 3 and store.counts()["governance"] == 1
    store.close()
