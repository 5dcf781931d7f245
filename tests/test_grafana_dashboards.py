"""The provisioned Grafana dashboards of config/grafana/.

Static checks (fast): the JSON is a dashboard, every panel queries the
provisioned Prometheus datasource, panel ids are unique, every PromQL
expression parses (promtool) and names only metrics that sinks/metrics.py
defines.

End to end (`-m slow`): Debian's `prometheus` scrapes a running
`shopguard run` (built-in simulator) and every panel's query runs through the
HTTP API; a panel marked `"shopguardExpectNonEmpty": true` must return series.

`panel_queries()` lists the queries for both. A target may override its
panel's `shopguardExpectNonEmpty` with its own (e.g. dead letters beside input
records in one panel).

Needs `promtool`/`prometheus`: apt-get install prometheus (a missing tool is
a failure, not a skip).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GRAFANA_DIR = ROOT / "config" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES_DIR = GRAFANA_DIR / "provisioning" / "datasources"
RULES_DIR = ROOT / "config" / "prometheus" / "rules"  # loaded by the end-to-end Prometheus

PANEL_TYPES = {"timeseries", "stat", "heatmap", "gauge", "bargauge", "table", "text"}

# What Grafana substitutes before a query reaches Prometheus. The values only
# need to be valid PromQL durations; the end-to-end test picks values that fit
# a short run (see E2E_MACROS).
STATIC_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run `apt-get install prometheus` (Debian) and re-run the tests")
    return path


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


def panel_queries(dashboard_dir: Path | str = DASHBOARD_DIR) -> list[tuple[str, str, str, bool]]:
    """(dashboard uid, panel title, PromQL expr as in the JSON, expect_non_empty) for every target.

    `expect_non_empty` is the target's `shopguardExpectNonEmpty` if it has one,
    else its panel's. Grafana macros ($__rate_interval, ...) are left in the
    expression: see `to_promql`.
    """
    out = []
    for path, dash in dashboards(Path(dashboard_dir)).items():
        for panel in query_panels(dash):
            for target in panel.get("targets", []):
                if "expr" not in target:
                    continue
                expect = target.get("shopguardExpectNonEmpty", panel.get("shopguardExpectNonEmpty"))
                out.append((dash.get("uid", path.stem), panel["title"], target["expr"], bool(expect)))
    return out


def to_promql(expr: str, macros: dict[str, str] = STATIC_MACROS) -> str:
    """The expression as Prometheus receives it: Grafana's macros replaced."""
    # longest first: $__range_s would otherwise lose to $__range
    for name in sorted(macros, key=len, reverse=True):
        expr = expr.replace(name, macros[name])
    assert "$" not in expr, f"unknown Grafana variable left in: {expr}"
    return expr


def provisioned_datasource_uids() -> set[str]:
    uids = set()
    for f in DATASOURCES_DIR.glob("*.y*ml"):
        uids.update(re.findall(r"^\s*uid:\s*['\"]?([\w-]+)", f.read_text(), re.M))
    return uids


def defined_metric_names() -> set[str]:
    """Every series name the job exports, from sinks/metrics.py itself."""
    from sinks.metrics import Metrics

    return Metrics().series_names()


SHOPGUARD_METRIC = re.compile(r"(?<![\w:])shopguard_[a-z_]+[a-z]")


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


def test_every_panel_uses_the_provisioned_datasource():
    uids = provisioned_datasource_uids()
    assert uids == {"prometheus"}, uids
    for path, dash in dashboards().items():
        for p in query_panels(dash):
            where = f"{path.name}: panel {p['title']!r}"
            assert p["type"] in PANEL_TYPES, f"{where}: type {p['type']}"
            assert p.get("datasource", {}).get("uid") in uids, f"{where}: datasource {p.get('datasource')}"
            assert p.get("targets"), f"{where}: no targets"
            for t in p["targets"]:
                assert t.get("datasource", {}).get("uid") in uids, f"{where}: target {t.get('refId')}"
                assert t.get("expr"), f"{where}: target {t.get('refId')} has no expr"
            if p["type"] == "heatmap":
                assert all(t.get("format") == "heatmap" for t in p["targets"]), f"{where}: heatmap format"


def test_every_panel_says_whether_it_must_have_data():
    for path, dash in dashboards().items():
        for p in query_panels(dash):
            assert isinstance(p.get("shopguardExpectNonEmpty"), bool), (
                f"{path.name}: panel {p['title']!r} needs \"shopguardExpectNonEmpty\": true|false"
            )


def test_rates_use_grafana_rate_interval():
    for dash, title, expr, _ in panel_queries():
        for window in re.findall(r"(?:rate|increase)\([^\[]*\[([^\]]+)\]", expr):
            assert window in ("$__rate_interval", "$__range") or re.fullmatch(r"\d+[smhd]", window), (
                f"{dash}: {title!r}: window [{window}]"
            )
        if "rate(" in expr and "irate(" not in expr:
            assert "$__rate_interval" in expr or "[1d]" in expr, f"{dash}: {title!r}: use $__rate_interval"


def test_panel_queries_helper_lists_every_target():
    queries = panel_queries()
    targets = sum(len(p["targets"]) for d in dashboards().values() for p in query_panels(d))
    assert len(queries) == targets
    assert all(isinstance(e, bool) for *_, e in queries)
    assert any(e for *_, e in queries) and any(not e for *_, e in queries)


def test_every_query_names_only_defined_metrics():
    defined = defined_metric_names()
    for dash, title, expr, _ in panel_queries():
        for name in SHOPGUARD_METRIC.findall(expr):
            assert name in defined, f"{dash}: {title!r}: {name} is not defined in sinks/metrics.py"


def test_every_query_parses_as_promql(tmp_path):
    """All expressions go through promtool's PromQL parser as alerting rules of one temporary file."""
    promtool = tool("promtool")
    queries = panel_queries()

    def check(items, path):
        rules = [{"alert": f"q{i}", "expr": to_promql(expr)} for i, (_, _, expr, _) in items]
        # JSON is YAML: no YAML library needed.
        path.write_text(json.dumps({"groups": [{"name": "grafana_panels", "rules": rules}]}, indent=1))
        return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)

    proc = check(list(enumerate(queries)), tmp_path / "all.yml")
    if proc.returncode == 0:
        return
    # Name the culprits: check each query alone.
    bad = []
    for i, q in enumerate(queries):
        one = check([(i, q)], tmp_path / f"q{i}.yml")
        if one.returncode != 0:
            bad.append(f"{q[0]}: {q[1]!r}\n  {to_promql(q[2])}\n  {(one.stdout + one.stderr).strip()}")
    pytest.fail("PromQL that does not parse:\n" + ("\n".join(bad) or proc.stdout + proc.stderr), pytrace=False)


# --------------------------------------------------------------------------
# End to end: a real job, a real Prometheus, every panel query
# --------------------------------------------------------------------------

SCRAPE_INTERVAL_S = 1
# Grafana derives $__rate_interval from the scrape interval; 20s holds many
# 1s scrapes. $__range covers the whole short run.
E2E_MACROS = {"$__rate_interval": "20s", "$__interval": "2s", "$__range": "10m"}
E2E_BUDGET_S = 75  # the whole test stays well under 90s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get_json(url: str, timeout: float = 5) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:  # Prometheus puts the error in a JSON body
        return json.loads(err.read() or b"{}") | {"status": "error", "http": err.code}


def instant_query(base: str, promql: str) -> dict:
    return http_get_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))


def wait_until(predicate, timeout: float, what: str, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.25)
    tails = "\n".join(f"--- {p} ---\n{tail(p)}" for p in logs)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}", pytrace=False)


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def shopguard_cli() -> str:
    """The CLI of this checkout's virtualenv (SHOPGUARD_CLI=path overrides it)."""
    if os.environ.get("SHOPGUARD_CLI"):
        return os.environ["SHOPGUARD_CLI"]
    for candidate in (Path(sys.executable).parent / "shopguard", ROOT / ".venv" / "bin" / "shopguard"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("shopguard")
    if not found:
        pytest.fail("the `shopguard` command is not installed: pip install -e . in the virtualenv")
    return found


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_every_panel_query_runs_against_a_live_job(tmp_path):
    started = time.monotonic()
    prometheus = tool("prometheus")
    cli = shopguard_cli()
    metrics_port, prom_port = free_port(), free_port()
    job_log, prom_log = tmp_path / "shopguard.log", tmp_path / "prometheus.log"

    # The simulator paced at 300x: 8 simulated hours take at least 96 s of wall
    # time, longer than this test, so the job is alive for every scrape; the
    # first violations come about half a simulated hour in.
    job = subprocess.Popen(
        [cli, "run", "--metrics-port", str(metrics_port), "--out", str(tmp_path / "out"),
         "--hours", "8", "--speedup", "300", "--seed", "7", "--quiet"],
        stdout=open(job_log, "w"), stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
        "rule_files": [str(p) for p in sorted(RULES_DIR.glob("*.yml"))],
        "scrape_configs": [{"job_name": "shopguard",
                            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }, indent=1))
    prom = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=open(prom_log, "w"), stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{prom_port}"
    logs = (job_log, prom_log)
    try:
        def job_serves_metrics():
            assert job.poll() is None, f"shopguard run exited with {job.returncode}:\n{tail(job_log)}"
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as r:
                return b"shopguard_" in r.read()

        wait_until(job_serves_metrics, 30, "the job's /metrics", logs)
        wait_until(lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200,
                   20, "prometheus to be ready", logs)

        def scraped_twice():
            res = instant_query(base, 'count_over_time(up{job="shopguard"}[1m]) >= 2 and up{job="shopguard"} == 1')
            return res.get("status") == "success" and res["data"]["result"]

        wait_until(scraped_twice, 20, "two successful scrapes of the job", logs)

        queries = panel_queries()
        # Poll: some series appear only once the simulator reaches them, and a
        # rate needs two scrapes of a series. Errors fail at once; empty
        # expect-non-empty panels fail at the deadline.
        deadline = started + E2E_BUDGET_S
        while True:
            empty, errors = [], []
            for dash, title, expr, expect in queries:
                res = instant_query(base, to_promql(expr, E2E_MACROS))
                if res.get("status") != "success":
                    errors.append(f"{dash}: {title!r}: {res.get('error', res)}\n  {to_promql(expr, E2E_MACROS)}")
                elif expect and not res["data"]["result"]:
                    empty.append(f"{dash}: {title!r}\n  {to_promql(expr, E2E_MACROS)}")
            assert not errors, "queries that Prometheus rejected:\n" + "\n".join(errors)
            if not empty or time.monotonic() > deadline or job.poll() is not None:
                break
            time.sleep(2)
        assert not empty, (
            f"panels marked shopguardExpectNonEmpty that returned no series after "
            f"{time.monotonic() - started:.0f}s (job exit code: {job.poll()}):\n" + "\n".join(empty)
            + f"\n--- job log ---\n{tail(job_log)}"
        )

        # The alert rules load and evaluate in a real Prometheus too.
        rules = http_get_json(f"{base}/api/v1/rules")
        broken = [(r["name"], r.get("lastError")) for g in rules["data"]["groups"] for r in g["rules"]
                  if r.get("health") == "err"]
        assert not broken, broken
    finally:
        stop(prom)
        stop(job)
