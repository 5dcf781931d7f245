"""`shopguard report DIR`: the numbers an analyst reads, and the Parquet copies they load.

The fixture folder tests/fixtures/report/ is small enough to count by hand;
its README lists every count asserted here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import polars as pl
import pytest

from pipeline.contract.records import Education, Violation
from analysis.report import TTD_BUCKETS, build_report, format_report
from pipeline.cli.report import main
from analysis.scoring import score
from sinks.parquet import FREE_FORM, KINDS, SCHEMAS, ParquetBatchWriter, convert_dir
from tests.conftest import read_jsonl

FIXTURE = Path(__file__).parent / "fixtures" / "report"
OUT, LABELS, EVENTS = FIXTURE / "out", FIXTURE / "labels.jsonl", FIXTURE / "events.jsonl"
TOP_LEVEL_KEYS = ["schema_version", "dir", "files", "missing", "notes", "violations", "actions", "top_actors",
                  "standing", "dead_letters", "review_queue", "incentives", "time_to_detect", "quality"]


@pytest.fixture
def out_copy(tmp_path) -> Path:
    """A writable copy of the fixture folder."""
    return Path(shutil.copytree(OUT, tmp_path / "out"))


def by(rows: list[dict], key: str) -> dict:
    return {r[key]: {k: v for k, v in r.items() if k != key} for r in rows}


# ---- hand counts on the fixture ----------------------------------------------------------------


def test_violations_are_counted_by_type_detector_severity_and_mode():
    v = build_report(OUT)["violations"]
    assert (v["total"], v["enforced"], v["shadow"], v["actors"]) == (7, 5, 2, 5)
    assert v["by_type"] == [
        {"violation_type": "listing_spam", "count": 3, "enforced": 3, "shadow": 0, "actors": 2},
        {"violation_type": "price_gouging", "count": 2, "enforced": 2, "shadow": 0, "actors": 2},
        {"violation_type": "engagement_inflation", "count": 1, "enforced": 0, "shadow": 1, "actors": 1},
        {"violation_type": "off_platform_solicitation", "count": 1, "enforced": 0, "shadow": 1, "actors": 1},
    ]
    assert [(r["detector"], r["count"]) for r in v["by_detector"]] == [
        ("listing_spam_v1", 3), ("price_gouging_v1", 2), ("engagement_inflation_v1", 1),
        ("off_platform_solicitation_v1", 1)]
    assert by(v["by_severity"], "severity") == {"low": {"count": 3, "actors": 2}, "medium": {"count": 3, "actors": 3},
                                                "high": {"count": 1, "actors": 1}}


def test_actions_dead_letters_review_queue_and_standing_are_counted():
    r = build_report(OUT)
    assert r["actions"] == {"total": 5, "by_kind": [{"action": "warning", "count": 3, "actors": 3},
                                                    {"action": "listing_removal", "count": 2, "actors": 2}]}
    assert r["dead_letters"]["total"] == 3
    assert [(d["reason"], d["count"]) for d in r["dead_letters"]["by_reason"]] == [("invalid_json", 2),
                                                                                   ("unknown_type", 1)]
    assert r["review_queue"] == {"total": 4, "actors": 3, "by_model": [
        {"model": "hst", "count": 3, "actors": 2, "max_score": 0.95},
        {"model": "live_hst", "count": 1, "actors": 1, "max_score": 0.85}]}
    assert r["standing"] == {"actors": 4, "by_level": [{"level": "warning", "actors": 2}, {"level": "good", "actors": 1},
                                                       {"level": "restricted", "actors": 1}]}


def test_top_actors_sum_enforced_points_and_show_the_latest_standing():
    top = build_report(OUT)["top_actors"]
    assert top == [
        {"actor": "seller:S2", "points": 10, "violations": 2, "active_points": 10, "level": "restricted", "health": 880},
        {"actor": "seller:S1", "points": 8, "violations": 2, "active_points": 8, "level": "warning", "health": 920},
        {"actor": "seller:S4", "points": 6, "violations": 1, "active_points": 6, "level": "warning", "health": 940},
    ]  # shadow-mode actors (C1, C2) carry no points
    assert [a["actor"] for a in build_report(OUT, top=1)["top_actors"]] == ["seller:S2"]


def test_precision_recall_and_time_to_detect_per_type_equal_the_hand_count():
    q = build_report(OUT, labels=LABELS)["quality"]
    assert q["per_type"] == [
        {"violation_type": "engagement_inflation", "labelled": 1, "flagged": 1, "true_positives": 1,
         "precision": 1.0, "recall": 1.0, "median_ttd_s": 120.0, "p90_ttd_s": 120.0},
        {"violation_type": "fake_discount", "labelled": 1, "flagged": 0, "true_positives": 0,
         "precision": 1.0, "recall": 0.0, "median_ttd_s": None, "p90_ttd_s": None},
        {"violation_type": "listing_spam", "labelled": 1, "flagged": 2, "true_positives": 1,
         "precision": 0.5, "recall": 1.0, "median_ttd_s": 5.0, "p90_ttd_s": 5.0},
        {"violation_type": "off_platform_solicitation", "labelled": 0, "flagged": 1, "true_positives": 0,
         "precision": 0.0, "recall": 1.0, "median_ttd_s": None, "p90_ttd_s": None},
        {"violation_type": "price_gouging", "labelled": 1, "flagged": 2, "true_positives": 1,
         "precision": 0.5, "recall": 1.0, "median_ttd_s": 30.0, "p90_ttd_s": 30.0},
    ]
    assert q["overall"] == {"labelled": 4, "flagged": 6, "true_positives": 3, "precision": 0.5, "recall": 0.75}


def test_time_to_detect_distribution_over_found_pairs():
    ttd = build_report(OUT, labels=LABELS)["time_to_detect"]
    buckets = {b["bucket"]: b["count"] for b in ttd.pop("buckets")}
    assert ttd == {"count": 3, "min_s": 5.0, "median_s": 30.0, "p90_s": 120.0, "p99_s": 120.0, "max_s": 120.0}
    assert list(buckets) == [name for name, _ in TTD_BUCKETS]
    assert buckets == {"found before the labelled evidence": 0, "0-10 s": 1, "10-60 s": 1, "1-5 min": 1, "5-15 min": 0,
                       "15-60 min": 0, ">= 1 h": 0}


def test_honest_actors_wrongly_flagged_without_events_use_outputs_and_labels():
    honest = build_report(OUT, labels=LABELS)["quality"]["honest"]
    assert honest["denominator"] == "outputs_and_labels"
    assert (honest["actors"], honest["flagged"], honest["flagged_enforced"]) == (6, 2, 1)
    assert honest["flagged_per_10k"] is None, "an upper bound is not the figure: it needs --events"
    assert honest["examples"] == ["creator:C2", "seller:S4"]  # S2 is labelled (another type): not honest


def test_honest_actors_with_events_count_every_actor_in_them():
    """events.jsonl has S1..S10 and C1..C4, a buyer (not an actor) and a malformed line."""
    honest = build_report(OUT, labels=LABELS, events=EVENTS)["quality"]["honest"]
    assert honest["denominator"] == "events"
    assert (honest["actors"], honest["flagged"], honest["flagged_per_10k"]) == (10, 2, 2000.0)


def test_without_events_the_text_gives_counts_and_says_how_to_get_the_rate(capsys):
    assert main([str(OUT), "--labels", str(LABELS)]) == 0
    text = capsys.readouterr().out
    assert "2 honest actors wrongly flagged (1 enforced); per 10,000: pass --events EVENTS.jsonl" in text
    assert "3,333" not in text and "per 10,000 =" not in text
    assert main([str(OUT), "--labels", str(LABELS), "--events", str(EVENTS)]) == 0
    assert "2 honest actors wrongly flagged (1 enforced) of 10 in the events = 2,000.0 per 10,000" in \
        capsys.readouterr().out


def test_early_detections_are_explained_as_found_before_the_labelled_evidence(tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"actor": "seller:S1", "violation_type": "listing_spam",
                                  "evidence_ts": 1_065_000}) + "\n")  # v-1 was detected at 1,005,000
    r = build_report(OUT, labels=labels)
    assert r["time_to_detect"]["min_s"] == -60.0
    assert r["time_to_detect"]["buckets"][0] == {"bucket": "found before the labelled evidence", "count": 1}
    assert any("found before the labelled evidence" in n for n in r["notes"])


def test_no_labels_means_no_quality_and_a_note_saying_how():
    r = build_report(OUT)
    assert r["quality"] is None and r["time_to_detect"] is None
    assert any("--labels" in n for n in r["notes"])


# ---- agreement with analysis.scoring -------------------------------------------------------------


def _scores_as_rows(violations: list[dict], labels: list[dict]) -> list[dict]:
    return [{"violation_type": s.violation_type, "labelled": s.labelled, "flagged": s.flagged,
             "true_positives": s.true_positives, "precision": s.precision, "recall": s.recall,
             "median_ttd_s": s.median_delay_s, "p90_ttd_s": s.p90_delay_s()}
            for s in score(violations, labels).values()]


def test_agrees_with_pipeline_scoring_on_the_fixture():
    expected = _scores_as_rows(read_jsonl(OUT / "violations.jsonl"), read_jsonl(LABELS))
    assert build_report(OUT, labels=LABELS)["quality"]["per_type"] == expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agrees_with_pipeline_scoring_on_random_outputs(tmp_path, seed):
    """Repeat finds, even and odd counts (the median's two cases), ties, labels repeated, detections early."""
    rng = random.Random(seed)
    types = ["listing_spam", "price_gouging", "fake_discount", "order_brushing"]
    actors = [f"seller:S{i}" for i in range(60)]
    labels = [{"actor": rng.choice(actors), "violation_type": rng.choice(types),
               "evidence_ts": rng.randrange(0, 10**7)} for _ in range(rng.randrange(40, 80))]
    violations = [{"actor": rng.choice(actors), "violation_type": rng.choice(types), "detector": "d",
                   "severity": "low", "points": rng.randrange(1, 9), "enforced": rng.random() < 0.8,
                   "detected_at": rng.randrange(0, 10**7)} for _ in range(rng.randrange(150, 300))]
    for label in labels[::2]:  # half the labelled pairs are found, at most a few minutes either side
        violations.append({**violations[0], "actor": label["actor"], "violation_type": label["violation_type"],
                           "detected_at": label["evidence_ts"] + rng.randrange(-60_000, 600_000)})
    out = tmp_path / "out"
    out.mkdir()
    (out / "violations.jsonl").write_text("".join(json.dumps(v) + "\n" for v in violations))
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(l) + "\n" for l in labels))
    report = build_report(out, labels=tmp_path / "labels.jsonl")
    assert report["quality"]["per_type"] == _scores_as_rows(violations, labels)


# ---- empty, missing, partial -----------------------------------------------------------------------


def test_an_empty_folder_says_what_is_missing_and_what_to_run(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"no outputs in {tmp_path}: run `shopguard replay` or `shopguard run` first" in text
    for name in ["violations.jsonl", "actions.jsonl", "review_queue.jsonl", "standing.jsonl", "dead_letter.jsonl"]:
        assert f"{name}" in text and "missing" in text
    assert main([str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["missing"]) == 5 and report["violations"]["total"] == 0


def test_a_folder_of_empty_files_reports_zero_and_says_so(tmp_path):
    for name in ["violations.jsonl", "actions.jsonl", "review_queue.jsonl", "standing.jsonl", "dead_letter.jsonl"]:
        (tmp_path / name).write_text("")
    r = build_report(tmp_path, labels=LABELS)
    assert r["missing"] == [] and {f["status"] for f in r["files"].values()} == {"empty"}
    assert r["violations"]["total"] == 0 and any("empty" in n for n in r["notes"])
    assert r["quality"]["overall"]["recall"] == 0.0  # four labels, nothing found


def test_missing_files_are_named_and_counted_as_zero(tmp_path):
    shutil.copy(OUT / "violations.jsonl", tmp_path)
    r = build_report(tmp_path)
    assert r["missing"] == ["actions.jsonl", "review_queue.jsonl", "standing.jsonl", "dead_letter.jsonl"]
    assert r["violations"]["total"] == 7 and r["actions"]["total"] == 0
    assert r["top_actors"][0] == {"actor": "seller:S2", "points": 10, "violations": 2, "active_points": None,
                                  "level": None, "health": None}
    assert "missing: actions.jsonl" in format_report(r)


@pytest.mark.parametrize("args, words", [
    (["{tmp}/nope"], "no outputs in {tmp}/nope: no such folder; run `shopguard replay"),
    ([str(OUT), "--labels", "{tmp}/none.jsonl"], "none.jsonl: no such file for --labels"),
    ([str(OUT), "--events", "{tmp}/none.jsonl"], "none.jsonl: no such file for --events"),
])
def test_a_folder_or_file_that_does_not_exist_exits_2_with_one_line(tmp_path, capsys, args, words):
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words.format(tmp=tmp_path) in err


def test_a_line_still_being_written_is_left_out(out_copy):
    with open(out_copy / "violations.jsonl", "ab") as f:
        f.write(b'{"violation_id":"v-8","actor":"seller:S9","viol')
    assert build_report(out_copy)["violations"]["total"] == 7


# ---- output formats ------------------------------------------------------------------------------------


def test_json_output_is_valid_json_with_the_documented_keys(capsys):
    assert main([str(OUT), "--labels", str(LABELS), "--events", str(EVENTS), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == TOP_LEVEL_KEYS
    assert report["schema_version"] == 1
    assert set(report["files"]["violations"]) == {"file", "status", "format", "paths", "rows"}
    assert set(report["violations"]) == {"total", "enforced", "shadow", "actors", "by_type", "by_detector",
                                         "by_severity"}
    assert set(report["top_actors"][0]) == {"actor", "points", "violations", "active_points", "level", "health"}
    assert set(report["time_to_detect"]) == {"count", "min_s", "median_s", "p90_s", "p99_s", "max_s", "buckets"}
    assert set(report["quality"]) == {"labels", "per_type", "overall", "honest"}
    assert set(report["quality"]["honest"]) == {"actors", "flagged", "flagged_enforced", "flagged_per_10k",
                                                "denominator", "examples"}


def test_the_text_report_is_aligned_tables(capsys):
    assert main([str(OUT), "--labels", str(LABELS)]) == 0
    lines = capsys.readouterr().out.splitlines()

    def row(first: str) -> list[str]:
        return next(line.split() for line in lines if line.split()[:1] == [first])

    assert row("seller:S2") == ["seller:S2", "10", "2", "10", "restricted", "880"]
    assert row("price_gouging") == ["price_gouging", "2", "2", "0", "2"]  # first table that names it
    assert row("(all") == ["(all", "types)", "4", "6", "3", "0.50", "0.75", "30", "120"]
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["type", "count"])
    widths = {len(lines[i]) for i in range(header, header + 5)}
    assert len(widths) == 1, "every row of a table has the header's width"


# ---- Parquet ------------------------------------------------------------------------------------------------


ALL_FILES = {"violations.parquet": 7, "actions.parquet": 5, "standing.parquet": 6, "review_queue.parquet": 4,
             "dead_letter.parquet": 3}


def as_json_values(row: dict) -> dict:
    """A Parquet row back in the JSONL's terms: timestamps to epoch milliseconds."""
    return {k: int(v.timestamp() * 1000) if isinstance(v, datetime) else v for k, v in row.items()}


def test_to_parquet_writes_every_output_with_timestamps_and_structs(out_copy):
    assert convert_dir(out_copy) == ALL_FILES  # the fixture has no incentives (the next test)
    for kind in (name.removesuffix(".parquet") for name in ALL_FILES):
        original = read_jsonl(out_copy / f"{kind}.jsonl")
        loaded = pl.read_parquet(out_copy / f"{kind}.parquet")
        assert {c: t for c, t in loaded.schema.items() if c not in FREE_FORM.values()} == \
            {c: t for c, t in SCHEMAS[kind].items() if c not in FREE_FORM.values()}
        assert [as_json_values(r) for r in loaded.to_dicts()] == [{k: r[k] for k in SCHEMAS[kind]} for r in original]
    violations = pl.read_parquet(out_copy / "violations.parquet")
    assert violations.schema["detected_at"] == pl.Datetime("ms", "UTC")
    assert violations.schema["evidence"] == pl.Struct({"n": pl.Int64, "note": pl.String})
    assert violations["evidence"].struct.field("n").to_list() == [1, 2, 3, 4, 5, 6, 7]
    assert violations["detected_at"][0] == datetime(1970, 1, 1, 0, 16, 45, tzinfo=timezone.utc)


def test_to_parquet_writes_incentives_with_the_defaults_the_jsonl_leaves_out(tmp_path):
    rows = [{"incentive_id": "i-1", "actor": "creator:C1", "program": "rising_creator", "change": "granted",
             "reason": "every rule holds", "ts": 7_200_000},
            {"incentive_id": "i-2", "actor": "creator:C1", "program": "rising_creator", "change": "revoked",
             "reason": "an enforced violation", "ts": 9_000_000, "violation_id": "v-9", "shadow": True}]
    (tmp_path / "incentives.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert convert_dir(tmp_path) == {"incentives.parquet": 2}
    loaded = pl.read_parquet(tmp_path / "incentives.parquet")
    assert loaded.schema == SCHEMAS["incentives"] and loaded.schema["ts"] == pl.Datetime("ms", "UTC")
    assert loaded.select("change", "violation_id", "appeal_id", "shadow").rows() == [
        ("granted", "", "", False), ("revoked", "v-9", "", True)]


def test_evidence_of_different_detectors_becomes_one_struct_of_every_key(tmp_path):
    rows = [{"violation_id": "v-1", "evidence": {"listings": 5, "window_s": 3600}},
            {"violation_id": "v-2", "evidence": {"price": 99.5, "median": 20.0}},
            {"violation_id": "v-3", "evidence": {}}]
    (tmp_path / "violations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    convert_dir(tmp_path)
    evidence = pl.read_parquet(tmp_path / "violations.parquet")["evidence"]
    assert set(evidence.struct.fields) == {"listings", "window_s", "price", "median"}
    assert evidence.struct.field("listings").to_list() == [5, None, None]
    assert evidence.struct.field("price").to_list() == [None, 99.5, None]


def test_report_reads_parquet_when_newer_and_gives_the_same_numbers(out_copy, capsys):
    from_jsonl = build_report(out_copy, labels=LABELS)
    assert main([str(out_copy), "--to-parquet", "--labels", str(LABELS), "--json"]) == 0
    captured = capsys.readouterr()
    from_parquet = json.loads(captured.out)
    assert "violations.parquet (7 rows)" in captured.err and "dead_letter.parquet (3 rows)" in captured.err
    assert {f["format"] for f in from_parquet["files"].values()} == {"parquet"}
    drop = ("files", "dir", "quality")
    assert {k: v for k, v in from_parquet.items() if k not in drop} == \
           {k: v for k, v in from_jsonl.items() if k not in drop}
    assert from_parquet["quality"]["per_type"] == from_jsonl["quality"]["per_type"]


def test_a_stale_parquet_file_is_ignored_for_the_newer_jsonl(out_copy):
    convert_dir(out_copy)
    older = (out_copy / "violations.jsonl").stat().st_mtime - 60
    os.utime(out_copy / "violations.parquet", (older, older))
    assert build_report(out_copy)["files"]["violations"]["format"] == "jsonl"


def test_parquet_batch_writer_appends_batches_and_finishes_on_close(tmp_path):
    records = read_jsonl(OUT / "violations.jsonl")
    path = tmp_path / "violations-2026-11-01.parquet"
    writer = ParquetBatchWriter(path, row_group_size=2)
    writer.write(records[:3])
    writer.write([])
    first = records[3]
    writer.write([Violation(**{**first, "education": Education(**first["education"])})])  # a struct works too
    writer.write(records[4:])
    assert not path.exists(), "no half-written file under the final name"
    writer.close()
    assert writer.rows == 7
    loaded = pl.read_parquet(path)
    assert loaded["violation_id"].to_list() == [r["violation_id"] for r in records]
    assert loaded["evidence"].to_list() == [r["evidence"] for r in records]
    # the report reads a folder of such files
    r = build_report(tmp_path)
    assert r["files"]["violations"]["format"] == "parquet" and r["violations"]["total"] == 7


def test_parquet_batch_writer_streams_many_batches(tmp_path):
    base = read_jsonl(OUT / "actions.jsonl")
    path = tmp_path / "actions.parquet"
    with ParquetBatchWriter(path, kind="actions", max_pending_batches=2) as writer:
        for i in range(200):
            writer.write([{**a, "action_id": f"a-{i}-{j}"} for j, a in enumerate(base)])
    assert pl.scan_parquet(path).select(pl.len()).collect().item() == 1000


def test_parquet_batch_writer_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        ParquetBatchWriter(tmp_path / "x.parquet", kind="appeals")
    violations = read_jsonl(OUT / "violations.jsonl")
    with ParquetBatchWriter(tmp_path / "v.parquet") as vw:
        vw.write(violations[:1])
        with pytest.raises(ValueError, match="key 'surprise' is not in this file's columns"):
            vw.write([{**violations[1], "evidence": {"surprise": 1}}])
    writer = ParquetBatchWriter(tmp_path / "x.parquet", kind="actions")
    with pytest.raises((TypeError, pl.exceptions.PolarsError, msgspec.ValidationError)):
        writer.write([{"action_id": "a", "actor": "seller:S1", "action": "warning", "active_points": "many",
                       "violation_ids": [], "ts": 1, "reason": "r"}])
    writer.close()
    with pytest.raises(ValueError, match="write after close"):
        writer.write([])


def test_reads_what_a_real_replay_writes(tmp_path, sample_events, malformed_events):
    """The contract samples through the real flow: the report's totals equal the files' line counts."""
    from tests.conftest import replay

    events = tmp_path / "events.jsonl"
    events.write_bytes(sample_events.read_bytes() + malformed_events.read_bytes())
    _, outputs = replay(events, tmp_path / "out")
    r = build_report(tmp_path / "out", events=events, labels=LABELS)
    assert r["missing"] == []
    assert r["violations"]["total"] == len(outputs["violations.jsonl"])
    assert r["actions"]["total"] == len(outputs["actions.jsonl"])
    assert r["dead_letters"]["total"] == len(outputs["dead_letter.jsonl"]) > 0
    assert sum(d["count"] for d in r["dead_letters"]["by_reason"]) == r["dead_letters"]["total"]
    assert r["standing"]["actors"] == len({s["actor"] for s in outputs["standing.jsonl"]})


def test_to_parquet_handles_empty_and_half_written_files(out_copy):
    (out_copy / "actions.jsonl").write_text("")
    with open(out_copy / "violations.jsonl", "ab") as f:
        f.write(b'{"violation_id":"v-8","act')
    assert convert_dir(out_copy) == {**ALL_FILES, "actions.parquet": 0}
    assert pl.read_parquet(out_copy / "actions.parquet").schema == SCHEMAS["actions"]


def test_incentives_are_counted_per_program_with_who_holds_them_now(out_copy):
    lines = [("seller:S1", "trusted_seller", "granted", False), ("seller:S1", "trusted_seller", "revoked", False),
             ("seller:S1", "trusted_seller", "restored", False), ("seller:S2", "trusted_seller", "granted", False),
             ("seller:S2", "trusted_seller", "revoked", False), ("creator:C1", "commission_bonus", "granted", True)]
    (out_copy / "incentives.jsonl").write_text("".join(json.dumps(
        {"incentive_id": f"i{n}", "actor": a, "program": p, "change": c, "reason": "r", "ts": n,
         **({"shadow": True} if shadow else {})}) + "\n" for n, (a, p, c, shadow) in enumerate(lines)))
    report = build_report(out_copy)
    rows = by(report["incentives"]["by_program"], "program")
    assert rows["trusted_seller"] == {"shadow": False, "granted": 2, "revoked": 2, "restored": 1, "actors": 2,
                                      "holding": 1}
    assert rows["commission_bonus"]["shadow"] is True and rows["commission_bonus"]["holding"] == 1
    text = format_report(report)
    assert "Incentives: 6 changes" in text and "commission_bonus (shadow)" in text


def test_a_folder_without_incentives_reports_none(out_copy):
    assert build_report(out_copy)["incentives"] == {"changes": 0, "by_program": []}
