"""The simulator as the job's source: its clock (`--start`) and the governance feedback it sends back
(appeals, reviewer decisions, lessons) for the violations a run issues."""

from __future__ import annotations

import json

import msgspec
import pytest

from pipeline.config import load
from pipeline.contract.events import AppealDecided, AppealFiled, EducationCompleted, decode
from pipeline.errors import ConfigError
from simulator import DEFAULT_START_TS, SimConfig, iter_events
from simulator.feedback import Feedback, FeedbackState, governance_for
from simulator.source import SimulatorSource, SourceState, start_ts

MINUTE = 60_000
NOW = 1_800_000_000_000


def violation(n: int, detected_at: int, actor: str = "seller:S1", enforced: bool = True) -> dict:
    return {"violation_id": f"v-{n:04d}", "actor": actor, "violation_type": "listing_spam", "detected_at": detected_at,
            "enforced": enforced, "education": {"module_id": "edu-listing-spam", "title": "t", "url": "u"}}


# ---- the clock ---------------------------------------------------------------------------------------


def test_start_is_auto_now_or_an_iso_time():
    assert start_ts("auto", hours=6.0, paced=False, now_ms=NOW) == NOW - 6 * 3_600_000  # ends now
    assert start_ts("auto", hours=6.0, paced=True, now_ms=NOW) == NOW  # starts now
    assert start_ts("now", hours=6.0, paced=False, now_ms=NOW) == NOW
    assert start_ts("2026-11-01T00:00:00Z", hours=1, paced=False, now_ms=NOW) == DEFAULT_START_TS
    assert start_ts("2026-11-01T01:00:00+01:00", hours=1, paced=False, now_ms=NOW) == DEFAULT_START_TS
    assert start_ts("2026-11-01T00:00:00", hours=1, paced=False, now_ms=NOW) == DEFAULT_START_TS  # naive = UTC
    with pytest.raises(ConfigError, match="simulator start 'yesterday'.*expected auto, now or an ISO-8601"):
        start_ts("yesterday", hours=1, paced=False, now_ms=NOW)


def test_an_unpaced_run_ends_now_so_no_event_is_in_the_future():
    hours = 1.0
    cfg = SimConfig(hours=hours, scale=0.1, start_ts=start_ts("auto", hours=hours, paced=False, now_ms=NOW))
    times = [e["ts"] for e in iter_events(cfg)]
    assert NOW - 3_600_000 <= min(times) and max(times) < NOW


def test_the_job_config_takes_world_start_and_feedback():
    config = load(None, {"source": {"simulator": {"world": "sakura", "start": "now", "feedback": False}}})
    assert (config.source.simulator.world, config.source.simulator.start, config.source.simulator.feedback) == (
        "sakura", "now", False)
    assert load().source.simulator.start == "auto" and load().source.simulator.world == "home"


# ---- feedback for given violations ----------------------------------------------------------------------

GOVERNANCE = {"appeal.filed": AppealFiled, "appeal.decided": AppealDecided,
              "education.completed": EducationCompleted}


def test_governance_events_are_valid_contract_events_after_the_violation():
    made = [e for n in range(200) for e in governance_for(violation(n, NOW), NOW + 5 * MINUTE, 7, set())]
    kinds = {e["type"] for e in made}
    assert kinds == set(GOVERNANCE)
    for event in made:
        decoded = decode(msgspec.json.encode(event))  # the job's own decoder: raises if invalid
        assert isinstance(decoded, GOVERNANCE[event["type"]])
        assert event["ts"] > NOW + 5 * MINUTE
    decided = {e["appeal_id"]: e for e in made if e["type"] == "appeal.decided"}
    for filed in (e for e in made if e["type"] == "appeal.filed"):
        assert decided[filed["appeal_id"]]["ts"] > filed["ts"]
    assert len({e["event_id"] for e in made}) == len(made)
    assert {e["module_id"] for e in made if e["type"] == "education.completed"} == {"edu-listing-spam"}


def test_decisions_follow_the_truth_and_the_seed():
    wrong = [governance_for(violation(n, NOW), NOW, 7, set()) for n in range(300)]
    right = [governance_for(violation(n, NOW), NOW, 7, {("seller:S1", "listing_spam")}) for n in range(300)]

    def share(runs, kind, decision=None):
        events = [e for run in runs for e in run if e["type"] == kind and decision in (None, e.get("decision"))]
        return len(events) / len(runs)

    assert share(wrong, "appeal.filed") > 0.8 and share(right, "appeal.filed") < 0.4
    assert share(wrong, "appeal.decided", "overturned") > 0.75 and share(right, "appeal.decided", "overturned") < 0.1
    assert wrong == [governance_for(violation(n, NOW), NOW, 7, set()) for n in range(300)]
    shadow = [e for n in range(50) for e in governance_for(violation(n, NOW, enforced=False), NOW, 7, set())]
    assert {e["type"] for e in shadow} == {"education.completed"}  # a shadow-mode violation is not appealed


def test_feedback_follows_the_violations_file_line_by_line(tmp_path):
    path = tmp_path / "violations.jsonl"
    first, second = json.dumps(violation(1, NOW)), json.dumps(violation(2, NOW + MINUTE))
    path.write_text(first + "\n" + second[:20])  # the second line is still being written
    feedback = Feedback(path, 3, set(), end_ts=NOW + 24 * 60 * MINUTE)
    feedback.follow(NOW)
    planned = feedback.snapshot().pending
    assert planned and {e["violation_id"] for e in planned} == {"v-0001"}
    path.write_text(first + "\n" + second + "\n")
    feedback.follow(NOW + 2 * MINUTE)
    assert {e["violation_id"] for e in feedback.snapshot().pending} == {"v-0001", "v-0002"}
    assert feedback.due(NOW) == []
    resumed = Feedback(path, 3, set(), end_ts=NOW + 24 * 60 * MINUTE, state=feedback.snapshot())
    everything = resumed.due(NOW + 24 * 60 * MINUTE)
    assert [e["ts"] for e in everything] == sorted(e["ts"] for e in everything)
    assert len(everything) == len(planned) + len(governance_for(violation(2, NOW + MINUTE), NOW + 2 * MINUTE, 3, set()))
    resumed.follow(NOW + 24 * 60 * MINUTE)
    assert resumed.due(NOW + 48 * 60 * MINUTE) == []  # nothing read twice


def test_feedback_after_the_stream_ends_is_not_sent(tmp_path):
    path = tmp_path / "violations.jsonl"
    path.write_text(json.dumps(violation(1, NOW)) + "\n")
    feedback = Feedback(path, 6, set(), end_ts=NOW + 1)
    feedback.follow(NOW)
    assert feedback.snapshot() == FeedbackState(offset=path.stat().st_size, pending=[])


# ---- in the source of `shopguard run` --------------------------------------------------------------------


def drain(part) -> list[dict]:
    out = []
    while True:
        try:
            out += [json.loads(r.raw) for r in part.next_batch()]
        except StopIteration:
            return out


def test_the_source_sends_feedback_for_violations_written_during_the_run(tmp_path):
    cfg = SimConfig(seed=3, hours=2.0, scale=0.1, start_ts=NOW)
    path = tmp_path / "violations.jsonl"
    path.write_text("".join(json.dumps(violation(n, NOW + 30 * MINUTE + n, actor=f"seller:S{n}")) + "\n"
                            for n in range(20)))
    part = SimulatorSource(cfg, 500, 0.0, path).build_part("read_input", "simulator", None)
    events = drain(part)
    governance = [e for e in events if e["type"] in GOVERNANCE]
    assert governance and {e["type"] for e in governance} == set(GOVERNANCE)
    assert len(events) - len(governance) == sum(1 for _ in iter_events(cfg))
    newest = 0
    for event in events:  # each governance event joins once the stream has passed its event time
        if event["type"] in GOVERNANCE:
            assert NOW + 30 * MINUTE < event["ts"] <= newest
        newest = max(newest, event["ts"])


def test_a_resumed_source_keeps_its_start_and_sends_nothing_twice(tmp_path):
    cfg = SimConfig(seed=3, hours=1.0, scale=0.1, start_ts=NOW)
    path = tmp_path / "violations.jsonl"
    path.write_text(json.dumps(violation(1, NOW + 10 * MINUTE)) + "\n")
    source = SimulatorSource(cfg, 500, 0.0, path)
    whole = drain(source.build_part("read_input", "simulator", None))
    part = source.build_part("read_input", "simulator", None)
    head = [json.loads(r.raw) for _ in range(5) for r in part.next_batch()]
    later = SimulatorSource(SimConfig(seed=3, hours=1.0, scale=0.1, start_ts=NOW + 999), 500, 0.0, path)
    state = part.snapshot()
    assert isinstance(state, SourceState) and state.start_ts == NOW
    assert head + drain(later.build_part("read_input", "simulator", state)) == whole


def test_shopguard_run_on_the_simulator_applies_its_own_appeals(tmp_path):
    from pipeline.engine.job import run_job
    from simulator.source import read_simulator

    config = load(None, {"output": {"dir": str(tmp_path / "out")}, "metrics": {"port": 0},
                         "job": {"ledger_hold_seconds": 0.2},
                         "source": {"simulator": {"seed": 7, "hours": 4.0, "scale": 0.4}}})
    metrics = run_job(config, source=read_simulator, replay=False, workers=1, serve_metrics=False, progress=False)
    appeals = metrics.by_label(metrics.appeals, "outcome")
    assert appeals.get("filed", 0) >= 1, appeals
    assert metrics.total(metrics.dead_letters) == 0
