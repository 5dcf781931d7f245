"""The benchmark script in smoke mode: a tiny stream, every run, every figure printed.

Not a timed test: it checks that `bench/bench.py` still runs against the
current job and prints every figure, so the benchmark never rots. The
numbers of a tiny stream mean nothing; see BENCHMARKS.md for real ones.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("shopguard_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke():
    """One smoke run with the profile, as JSON (stdout) plus the human report (stderr)."""
    done = subprocess.run([sys.executable, str(BENCH), "--smoke", "--profile", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


def test_every_configuration_runs_on_the_same_stream(smoke):
    figures, _ = smoke
    runs = figures["runs"]
    expected = {"plain", "bare", "job_1w", "job_2w", "job_2p", "job_1w_10x"}
    assert expected <= set(runs)
    stream = figures["stream"]
    assert stream["events"] > 0 and stream["actors"] > 0
    assert figures["stream_10x"]["events"] > stream["events"]
    for key, run in runs.items():
        events = figures["stream_10x" if key.endswith("10x") else "stream"]["events"]
        assert run["events"] == events, key  # each run read the whole stream exactly once
        assert run["events_per_s"] > 0 and run["events_per_cpu_s"] > 0 and run["peak_rss_kb"] > 0, key
        assert run["process_cpu_s"] >= run["cpu_s"] * 0.9, key  # getrusage of the subprocess covers the run


def test_the_job_reports_latency_and_memory(smoke):
    figures, _ = smoke
    one = figures["runs"]["job_1w"]
    assert one["latency_observations"] > 0
    assert 0 < one["p50_s"] <= one["p99_s"]
    assert one["start_rss_kb"] < one["peak_rss_kb"]


def test_the_report_prints_every_figure_and_target(smoke):
    figures, report = smoke
    for text in ("plain Python (decode + dict)", "bare Bytewax flow", "job, 1 worker ", "job, 2 worker threads",
                 "job, 2 processes", "job, 1 worker, 10x stream", "events/s", "ev/CPU-s", "p50 ms", "p99 ms",
                 "peak RSS", "KB per actor", "vs plain Python", "vs bare Bytewax", "state keys at end"):
        assert text in report, text
    assert "skipped: no broker" in report  # the Kafka run says why it did not run
    targets = [t["target"] for t in figures["targets"]]
    assert len(targets) == 6 and all(isinstance(t["ok"], bool) for t in figures["targets"])
    for target in targets:
        assert target in report
    assert report.count("[PASS]") + report.count("[FAIL]") == len(targets)


def test_the_profile_lists_the_top_25_functions_by_own_time(smoke):
    figures, report = smoke
    profile = figures["profile"].splitlines()
    assert "top 25 by own time" in profile[0] and len(profile) == 2 + 25
    assert profile[0] in report
    own = [float(line.split()[0]) for line in profile[2:]]
    assert own == sorted(own, reverse=True)


def test_doctests_of_the_script():
    result = doctest.testmod(load_bench())
    assert result.attempted >= 2 and result.failed == 0


def test_a_1_mb_transcript_is_measured_with_the_size_of_what_it_makes(smoke):
    figures, report = smoke
    transcript = figures["transcript_1mb"]
    assert transcript["text_bytes"] == 1_000_000 and transcript["records"] >= 1 and transcript["cpu_s"] > 0
    assert 0 < transcript["largest_record_bytes"] <= transcript["record_cap_bytes"]
    assert "hostile input: a 1 MB live.transcript" in report
