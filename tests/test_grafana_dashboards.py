"""The provisioned Grafana dashboards of config/grafana/.

Static checks (fast): the JSON is a dashboard; every panel queries the
`$datasource` variable (no hard-coded datasource uid, so the dashboards
import into any Grafana) and filters every metric on the `$job` and
`$instance` variables; every PromQL expression parses (promtool) and names
only metrics the job exports (sinks/metrics.py, process and Python
collectors included); the panels an operator needs are there.

End to end (`-m slow`): Debian's `prometheus` scrapes both processes of a
running `shopguard run -p 2` (built-in simulator) and every target of every
panel runs through the HTTP API and must return data. Panels that cannot
have data yet are listed in PENDING with the reason; they are strict
xfails, so the day they get data the test fails until they leave the list.

Needs `promtool`/`prometheus` (Debian's `prometheus`; a missing tool is a
failure, not a skip).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.real_tools import (
    free_consecutive_ports, free_port, http_json, shopguard_cli, start, stop, tail, tool, wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "config" / "grafana" / "dashboards"
RULES_DIR = ROOT / "config" / "prometheus" / "rules"  # loaded by the end-to-end Prometheus

PANEL_TYPES = {"timeseries", "stat", "heatmap", "gauge", "bargauge", "table", "text"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# What Grafana substitutes before a query reaches Prometheus. The values only
# need to be valid PromQL; the end-to-end test picks values that fit a short
# run (see E2E_MACROS).
STATIC_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h", "$job": "shopguard",
                 "$instance": ".+"}

# A metric the job exports: its own, the process collector's, the Python collectors'.
JOB_METRIC = re.compile(r'(?<![\w:"$])(shopguard_[a-z_]+[a-z]|process_[a-z_]+[a-z]|python_gc_[a-z_]+[a-z]'
                        r'|python_info|up)(?![\w(])(\{[^}]*\})?')


# --------------------------------------------------------------------------
# Reading dashboards
# --------------------------------------------------------------------------

def dashboards(dashboard_dir: Path = DASHBOARD_DIR) -> dict[Path, dict]:
    files = sorted(Path(dashboard_dir).glob("*.json"))
    assert files, f"no dashboards in {dashboard_dir}"
    return {f: json.loads(f.read_text()) for f in files}


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, including those nested in (collapsed) rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def query_panels(dashboard: dict) -> list[dict]:
    return [p for p in all_panels(dashboard) if p.get("type") != "row"]


def panel_queries(dashboard_dir: Path | str = DASHBOARD_DIR) -> list[tuple[str, str, str, str]]:
    """(dashboard uid, panel title, target refId, PromQL expr as in the JSON) for every target.

    Grafana macros and variables ($__rate_interval, $job...) are left in the
    expression: see `to_promql`.
    """
    return [(dash.get("uid", path.stem), panel["title"], target["refId"], target["expr"])
            for path, dash in dashboards(Path(dashboard_dir)).items()
            for panel in query_panels(dash) for target in panel.get("targets", []) if "expr" in target]


def to_promql(expr: str, macros: dict[str, str] = STATIC_MACROS) -> str:
    """The expression as Prometheus receives it: Grafana's macros and variables replaced."""
    # longest first: $__range_s would otherwise lose to $__range
    for name in sorted(macros, key=len, reverse=True):
        expr = expr.replace(name, macros[name])
    assert "$" not in expr, f"unknown Grafana variable left in: {expr}"
    return expr


def variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def datasource_refs(node) -> list:
    """Every `datasource` value anywhere in a dashboard (panels, targets, variables)."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "datasource"] + [
            r for k, v in node.items() if k != "datasource" for r in datasource_refs(v)]
    if isinstance(node, list):
        return [r for item in node for r in datasource_refs(item)]
    return []


def defined_metric_names() -> set[str]:
    """Every series name one job process exports, from sinks/metrics.py itself."""
    from sinks.metrics import Metrics

    return Metrics().series_names() | {"up"}


# --------------------------------------------------------------------------
# Static checks
# --------------------------------------------------------------------------

def test_dashboards_are_grafana_dashboards():
    uids = set()
    for path, dash in dashboards().items():
        assert dash.get("uid") == path.stem, f"{path.name}: uid should be the file name ({path.stem})"
        assert dash["uid"] not in uids
        uids.add(dash["uid"])
        assert dash.get("title"), path.name
        assert dash.get("schemaVersion", 0) >= 36, f"{path.name}: schemaVersion {dash.get('schemaVersion')}"
        assert isinstance(dash.get("panels"), list) and dash["panels"], path.name
        assert "shopguard" in dash.get("tags", []), f"{path.name}: tag it 'shopguard' (dashboard links use it)"
    assert {"shopguard-overview", "shopguard-governance", "shopguard-models"} <= uids


def test_panel_ids_are_unique_and_panels_do_not_overlap():
    for path, dash in dashboards().items():
        ids = [p["id"] for p in all_panels(dash)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids {sorted(ids)}"
        cells = {}
        for p in all_panels(dash):
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, f"{path.name}: panel {p['title']!r} is off the grid"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    other = cells.setdefault((x, y), p["title"])
                    assert other == p["title"], f"{path.name}: {p['title']!r} overlaps {other!r}"


def test_dashboards_have_datasource_job_and_instance_variables():
    for path, dash in dashboards().items():
        v = variables(dash)
        assert v.get("datasource", {}).get("type") == "datasource", f"{path.name}: no $datasource variable"
        assert v["datasource"]["query"] == "prometheus"
        for name in ("job", "instance"):
            assert v.get(name, {}).get("type") == "query", f"{path.name}: no ${name} variable"
            assert "shopguard_build_info" in v[name]["definition"], f"{path.name}: ${name} lists what?"
        assert v["instance"]["includeAll"] and v["instance"]["multi"] and v["instance"]["allValue"] == ".+"


def test_no_datasource_uid_is_hard_coded():
    for path, dash in dashboards().items():
        refs = datasource_refs(dash)
        assert refs, path.name
        assert all(ref == DATASOURCE for ref in refs), (
            f"{path.name}: datasources other than {DATASOURCE}: {[r for r in refs if r != DATASOURCE]}")


def test_every_panel_has_targets_of_a_known_type():
    for path, dash in dashboards().items():
        for p in query_panels(dash):
            where = f"{path.name}: panel {p['title']!r}"
            assert p["type"] in PANEL_TYPES, f"{where}: type {p['type']}"
            assert p.get("targets"), f"{where}: no targets"
            assert all(t.get("expr") for t in p["targets"]), f"{where}: a target has no expr"
            if p["type"] == "heatmap":
                assert all(t.get("format") == "heatmap" for t in p["targets"]), f"{where}: heatmap format"


def test_every_metric_is_filtered_by_job_and_instance():
    for dash, title, ref, expr in panel_queries():
        selectors = JOB_METRIC.findall(expr)
        assert selectors or "ALERTS" in expr, f"{dash}: {title!r} {ref}: queries no job metric"
        for name, matchers in selectors:
            assert 'job=~"$job"' in matchers and 'instance=~"$instance"' in matchers, (
                f"{dash}: {title!r} {ref}: {name}{matchers} ignores the $job/$instance variables")


def test_rates_use_grafana_rate_interval():
    for dash, title, _, expr in panel_queries():
        for window in re.findall(r"(?:rate|increase)\([^\[]*\[([^\]]+)\]", expr):
            assert window in ("$__rate_interval", "$__range") or re.fullmatch(r"\d+[smhd]", window), (
                f"{dash}: {title!r}: window [{window}]")
        if "rate(" in expr and "irate(" not in expr:
            assert "$__rate_interval" in expr or "[1d]" in expr, f"{dash}: {title!r}: use $__rate_interval"


def test_every_query_names_only_defined_metrics():
    defined = defined_metric_names()
    for dash, title, _, expr in panel_queries():
        for name, _ in JOB_METRIC.findall(expr):
            assert name in defined, f"{dash}: {title!r}: {name} is not exported (sinks/metrics.py)"


def test_the_panels_an_operator_needs_are_there():
    exprs = " ".join(e for *_, e in panel_queries())
    heatmaps = [t["expr"] for d in dashboards().values() for p in query_panels(d) if p["type"] == "heatmap"
                for t in p["targets"]]
    assert "sum by (detector)" in exprs, "a per-detector violation rate"
    assert any("shopguard_processing_latency_seconds_bucket" in e for e in heatmaps), "a latency heatmap"
    for use in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                "python_gc_collections_total", "shopguard_build_info"):
        assert use in exprs, f"no panel shows {use}"
    for gauge in ("shopguard_model_roc_auc", "shopguard_model_rule_agreement_auc", "shopguard_anomaly_threshold_score",
                  "shopguard_anomaly_flagged_ratio", "shopguard_model_outcomes_learned"):
        assert gauge in exprs, f"no panel shows {gauge}"
    assert "shopguard_model_quality" not in exprs, "the deprecated mixed gauge: use the split ones"


def test_every_query_parses_as_promql(tmp_path):
    """All expressions go through promtool's PromQL parser as alerting rules of one temporary file."""
    promtool = tool("promtool")
    queries = panel_queries()

    def check(items, path):
        rules = [{"alert": f"q{i}", "expr": to_promql(q[3])} for i, q in items]
        # JSON is YAML: no YAML library needed.
        path.write_text(json.dumps({"groups": [{"name": "grafana_panels", "rules": rules}]}, indent=1))
        return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)

    proc = check(list(enumerate(queries)), tmp_path / "all.yml")
    if proc.returncode == 0:
        return
    bad = []  # name the culprits: check each query alone
    for i, q in enumerate(queries):
        one = check([(i, q)], tmp_path / f"q{i}.yml")
        if one.returncode != 0:
            bad.append(f"{q[0]}: {q[1]!r}\n  {to_promql(q[3])}\n  {(one.stdout + one.stderr).strip()}")
    pytest.fail("PromQL that does not parse:\n" + ("\n".join(bad) or proc.stdout + proc.stderr), pytrace=False)


# --------------------------------------------------------------------------
# End to end: a real 2-process job, a real Prometheus, every panel target
# --------------------------------------------------------------------------

PROCESSES = 2
SCRAPE_INTERVAL_S = 1
# Grafana derives $__rate_interval from the scrape interval; 20s holds many
# 1s scrapes. $__range covers the whole short run.
E2E_MACROS = {"$__rate_interval": "20s", "$__interval": "2s", "$__range": "10m", "$job": "shopguard",
              "$instance": ".+"}
E2E_BUDGET_S = 90

# Panel targets that cannot have data from `shopguard run` on the simulator:
# (dashboard uid, panel title, refId) -> why. Each is a strict xfail: remove
# it here once its data arrives.
NO_KAFKA = "the simulator source reads no Kafka partitions, so there is no consumer lag to show"
PENDING: dict[tuple[str, str, str], str] = {
    ("shopguard-overview", "Kafka consumer lag by topic", "A"): NO_KAFKA,
}


def instant_query(base: str, promql: str) -> dict:
    from urllib.parse import urlencode

    return http_json(f"{base}/api/v1/query?" + urlencode({"query": promql}))


def prometheus_config(path: Path, metrics_port: int) -> Path:
    """Scrape every process of the cluster (metrics port + process id), every second."""
    path.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
        "rule_files": [str(p) for p in sorted(RULES_DIR.glob("*.yml"))],
        "scrape_configs": [{"job_name": "shopguard", "static_configs": [
            {"targets": [f"127.0.0.1:{metrics_port + i}" for i in range(PROCESSES)]}]}],
    }, indent=1))
    return path


def answers(base: str) -> dict[tuple[str, str, str], dict]:
    """Every panel target's answer, by (dashboard, title, refId)."""
    return {(d, t, ref): instant_query(base, to_promql(expr, E2E_MACROS)) for d, t, ref, expr in panel_queries()}


def has_data(answer: dict) -> bool:
    return answer.get("status") == "success" and bool(answer["data"]["result"])


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory):
    """A 2-process `shopguard run` on the simulator and a Prometheus scraping both; yields the answers."""
    started = time.monotonic()
    prometheus = tool("prometheus")
    tmp = tmp_path_factory.mktemp("live")
    metrics_port, prom_port = free_consecutive_ports(PROCESSES), free_port()
    job_log, prom_log = tmp / "shopguard.log", tmp / "prometheus.log"
    # The simulator paced at 300x: 8 simulated hours take at least 96 s of wall
    # time, longer than this test, so the job is alive for every scrape; the
    # first violations come about half a simulated hour in.
    job = start([shopguard_cli(), "run", "-p", str(PROCESSES), "--metrics-port", str(metrics_port),
                 "--out", str(tmp / "out"), "--hours", "8", "--speedup", "300", "--seed", "7", "--quiet"],
                job_log, tmp)
    prom = start([prometheus, f"--config.file={prometheus_config(tmp / 'prometheus.yml', metrics_port)}",
                  f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                 prom_log, tmp)
    base, logs = f"http://127.0.0.1:{prom_port}", (job_log, prom_log)
    try:
        wait_until(lambda: job.poll() is None and all(
            b"shopguard_" in _get(f"http://127.0.0.1:{metrics_port + i}/metrics") for i in range(PROCESSES)),
            60, f"/metrics of all {PROCESSES} processes", logs)
        wait_until(lambda: has_data(instant_query(base, f'count(up{{job="shopguard"}} == 1) == {PROCESSES}')),
                   30, f"Prometheus to scrape all {PROCESSES} processes", logs)
        # Poll: some series appear only once the simulator reaches them, and a
        # rate needs two scrapes. Stop when every panel not pending has data.
        while True:
            got = answers(base)
            missing = [k for k, a in got.items() if not has_data(a) and k not in PENDING]
            if not missing or time.monotonic() - started > E2E_BUDGET_S or job.poll() is not None:
                break
            time.sleep(2)
        yield {"answers": got, "base": base, "job": job, "job_log": job_log,
               "rules": http_json(f"{base}/api/v1/rules")}
    finally:
        stop(prom)
        stop(job)


def _get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.read()


def _target_params():
    for dash, title, ref, expr in panel_queries():
        why = PENDING.get((dash, title, ref))
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        yield pytest.param(dash, title, ref, expr, id=f"{dash}/{title}/{ref}", marks=marks)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("dash, title, ref, expr", list(_target_params()))
def test_panel_returns_data_from_a_live_job(live_stack, dash, title, ref, expr):
    answer = live_stack["answers"][(dash, title, ref)]
    assert answer.get("status") == "success", f"Prometheus rejected it: {answer.get('error', answer)}"
    assert answer["data"]["result"], (
        f"no series for {to_promql(expr, E2E_MACROS)}\n(job exit code {live_stack['job'].poll()})\n"
        f"--- job log ---\n{tail(live_stack['job_log'])}")


def test_pending_panels_exist():
    """A renamed or removed panel must leave PENDING too."""
    targets = {(d, t, ref) for d, t, ref, _ in panel_queries()}
    assert set(PENDING) <= targets, set(PENDING) - targets


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_every_process_is_scraped_and_the_rules_evaluate(live_stack):
    base = live_stack["base"]
    up = instant_query(base, 'up{job="shopguard"} == 1')["data"]["result"]
    assert len(up) == PROCESSES, up
    built = instant_query(base, "shopguard_build_info")["data"]["result"]
    assert {r["metric"]["instance"] for r in built} == {r["metric"]["instance"] for r in up}
    broken = [(r["name"], r.get("lastError")) for g in live_stack["rules"]["data"]["groups"] for r in g["rules"]
              if r.get("health") == "err"]
    assert not broken, broken
