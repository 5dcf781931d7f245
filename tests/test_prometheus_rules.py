"""The Prometheus alert rules, their promtool unit tests, their runbooks and the Alertmanager example.

These tests run the real tools from Debian's packages:
    apt-get install prometheus prometheus-alertmanager
(`promtool` comes with `prometheus`; `amtool` and `prometheus-alertmanager`
with `prometheus-alertmanager`; `make test` installs them). A missing tool
is a failure, never a skip. docker-compose deploys the same versions
(tests/test_deploy.py checks it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.real_tools import free_port, http_json, run, start, stop, tool, wait_until

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "config" / "prometheus"
RULES_DIR = PROM_DIR / "rules"
RULE_TESTS_DIR = PROM_DIR / "tests"
ALERTMANAGER_YML = ROOT / "config" / "alertmanager" / "alertmanager.yml"
RUNBOOK_DIR = ROOT / "docs" / "runbooks"
# Where every runbook_url points: the project's repository (a fork changes it here and in the rules).
RUNBOOK_BASE = "https://github.com/shopguard/shopguard/blob/main/docs/runbooks/"
RUNBOOK_SECTIONS = ("What it means", "How to confirm", "How to mitigate", "How to escalate")

# The alerts shopguard promises on-call (see config/prometheus/rules/).
EXPECTED_ALERTS = {
    "ShopguardDown",
    "ShopguardStalled",
    "ShopguardEventTimeLagHigh",
    "ShopguardDeadLetterSpike",
    "ShopguardViolationRateDrift",
    "ShopguardOverturnRateHigh",
    "ShopguardTopicSilent",
    "ShopguardIncentiveRevocationSpike",
}

def rule_files() -> list[Path]:
    files = sorted(RULES_DIR.glob("*.yml"))
    assert files, f"no rule files in {RULES_DIR}"
    return files


def rule_test_files() -> list[Path]:
    files = sorted(RULE_TESTS_DIR.glob("*.yml"))
    assert files, f"no promtool test files in {RULE_TESTS_DIR}"
    return files


# --------------------------------------------------------------------------
# A small reader for the shape of our own rule and test files (no YAML
# library is a dependency of the project; promtool is the real parser, these
# helpers only list what is there).
# --------------------------------------------------------------------------

def alert_rules(text: str) -> list[dict]:
    """Each `- alert:` rule as {alert, labels, annotations}, YAML aliases resolved."""
    lines = text.splitlines()
    anchors: dict[str, str] = {}
    rules: list[dict] = []
    current: dict | None = None
    section, section_indent = None, 0
    i = 0
    while i < len(lines):
        line = lines[i]
        m_rule = re.match(r"^(\s*)- (alert|record): *(\S+)", line)
        m_section = re.match(r"^\s*(labels|annotations):\s*$", line)
        m_key = re.match(r"^(\s*)([A-Za-z_]\w*): *(.*)$", line)
        if m_rule:
            current = {"alert": m_rule.group(3), "kind": m_rule.group(2), "labels": {}, "annotations": {}}
            rules.append(current)
            section = None
        elif current is not None and m_section:
            section, section_indent = m_section.group(1), len(line) - len(line.lstrip())
        elif current is not None and section and m_key and len(m_key.group(1)) <= section_indent:
            section = None  # a sibling of labels/annotations, or the next group
        elif current is not None and section and m_key:
            indent, key, rest = len(m_key.group(1)), m_key.group(2), m_key.group(3).strip()
            anchor = None
            m_anchor = re.match(r"&(\S+)\s*(.*)$", rest)
            if m_anchor:
                anchor, rest = m_anchor.group(1), m_anchor.group(2)
            if rest.startswith("*"):
                value = anchors.get(rest[1:], "")
            elif rest in (">-", ">", "|", "|-"):
                block = []
                while i + 1 < len(lines) and (
                    not lines[i + 1].strip() or len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent
                ):
                    i += 1
                    block.append(lines[i].strip())
                value = " ".join(b for b in block if b)
            else:
                value = rest.strip("\"'")
            if anchor:
                anchors[anchor] = value
            current[section][key] = value
        i += 1
    return [r for r in rules if r["kind"] == "alert"]


def alert_test_cases(text: str) -> list[tuple[str, list[dict]]]:
    """(alertname, [exp_labels, ...]) for every alert_rule_test entry of a promtool test file."""
    cases = []
    chunks = re.split(r"^\s*alertname:\s*", text, flags=re.M)[1:]
    for chunk in chunks:
        name = chunk.split()[0]
        expected = []
        for block in re.split(r"- exp_labels:\s*\n", chunk)[1:]:
            labels = {}
            for m in re.finditer(r"^\s+(\w+): (\"[^\"]*\"|\S+)\s*$", block.split("exp_annotations:")[0], re.M):
                labels[m.group(1)] = m.group(2).strip('"')
            expected.append(labels)
        cases.append((name, expected))
    return cases


# --------------------------------------------------------------------------
# promtool
# --------------------------------------------------------------------------

def test_rules_pass_promtool_check():
    promtool = tool("promtool")
    proc = run([promtool, "check", "rules", *map(str, rule_files())])
    assert "SUCCESS" in proc.stdout, proc.stdout


def test_rules_pass_their_promtool_unit_tests():
    promtool = tool("promtool")
    proc = run([promtool, "test", "rules", *map(str, rule_test_files())])
    assert "FAILED" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_prometheus_configs_are_valid():
    promtool = tool("promtool")
    for name in ("prometheus.yml", "prometheus.local.yml"):
        run([promtool, "check", "config", str(PROM_DIR / name)])


def all_alert_rules() -> list[dict]:
    return [r for f in rule_files() for r in alert_rules(f.read_text())]


def test_every_alert_is_defined_with_severity_summary_and_runbook_url():
    rules = all_alert_rules()
    names = {r["alert"] for r in rules}
    assert names == EXPECTED_ALERTS, f"missing: {EXPECTED_ALERTS - names}, unexpected: {names - EXPECTED_ALERTS}"
    for r in rules:
        where = f"{r['alert']} {r['labels']}"
        assert r["labels"].get("severity") in {"critical", "warning", "info"}, where
        for key in ("summary", "description"):
            assert len(r["annotations"].get(key, "")) > 20, f"{where}: annotation {key} missing or empty"
        assert r["annotations"].get("runbook_url") == f"{RUNBOOK_BASE}{r['alert']}.md", (
            f"{where}: runbook_url should be {RUNBOOK_BASE}{r['alert']}.md")


def runbook_path(url: str) -> Path:
    """The file in this repository a runbook_url points at."""
    assert url.startswith(RUNBOOK_BASE), url
    return RUNBOOK_DIR / url[len(RUNBOOK_BASE):]


def sections(markdown: str) -> dict[str, str]:
    """`## Heading` -> its text."""
    parts = re.split(r"^## +(.+)$", markdown, flags=re.M)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts), 2)}


def test_every_runbook_link_resolves_to_a_page_that_answers_the_four_questions():
    for url in sorted({r["annotations"]["runbook_url"] for r in all_alert_rules()}):
        page = runbook_path(url)
        assert page.is_file(), f"{url}: no file {page.relative_to(ROOT)}"
        text = page.read_text()
        assert text.startswith(f"# {page.stem}\n"), f"{page.name}: title it `# {page.stem}`"
        found = sections(text)
        for heading in RUNBOOK_SECTIONS:
            assert len(found.get(heading, "")) > 80, f"{page.name}: section `## {heading}` missing or thin"
        assert "`" in found["How to confirm"], f"{page.name}: confirming quotes no command or query"
        assert re.search(r"shopguard_[a-z_]+", text), f"{page.name}: names no metric"


def test_every_runbook_page_belongs_to_an_alert_and_the_index_links_it():
    pages = {p.stem for p in RUNBOOK_DIR.glob("*.md")} - {"README"}
    assert pages == EXPECTED_ALERTS, f"pages without an alert: {pages - EXPECTED_ALERTS}"
    index = (RUNBOOK_DIR / "README.md").read_text()
    for alert in EXPECTED_ALERTS:
        assert f"]({alert}.md)" in index, f"docs/runbooks/README.md does not link {alert}.md"


# A path in this repository that a runbook cites (OUT/... and .cache/... are the user's).
REPO_PATH = re.compile(r"(?<![\w./-])((?:config|docs|deploy|scripts|tests|sinks|pipeline|detectors)/[\w./-]*[\w/])")


def test_every_path_and_metric_a_runbook_cites_exists():
    defined = defined_metric_names()
    for page in sorted(RUNBOOK_DIR.glob("*.md")):
        text = page.read_text()
        for path in REPO_PATH.findall(text):
            assert (ROOT / path).exists(), f"{page.name} cites {path}, which does not exist"
        for name in re.findall(r"(?<![\w:])shopguard_[a-z_]+[a-z]", text):
            assert name in defined, f"{page.name} names {name}, which sinks/metrics.py does not export"


def test_every_alert_has_firing_and_quiet_unit_tests():
    cases = [c for f in rule_test_files() for c in alert_test_cases(f.read_text())]
    for alert in sorted(EXPECTED_ALERTS):
        outcomes = {bool(expected) for name, expected in cases if name == alert}
        assert True in outcomes, f"{alert}: no promtool test where it fires"
        assert False in outcomes, f"{alert}: no promtool test where it stays quiet"


def test_every_alerting_rule_fires_in_some_unit_test():
    """Each rule, not only each name: a test expects an alert with that rule's labels."""
    cases = [c for f in rule_test_files() for c in alert_test_cases(f.read_text())]
    rules = all_alert_rules()
    assert len(rules) >= len(EXPECTED_ALERTS)
    for r in rules:
        fired = [
            labels for name, expected in cases if name == r["alert"]
            for labels in expected if r["labels"].items() <= labels.items()
        ]
        assert fired, f"{r['alert']} {r['labels']}: no promtool test expects this rule to fire"


def defined_metric_names() -> set[str]:
    """Every series name the job exports, from sinks/metrics.py itself."""
    from sinks.metrics import Metrics

    return Metrics().series_names()


def test_rules_name_only_defined_metrics():
    """Expressions and descriptions name real metrics (a typo would never fire)."""
    defined = defined_metric_names()
    for f in rule_files():
        text = "\n".join(line for line in f.read_text().splitlines() if not line.lstrip().startswith("#"))
        names = set(re.findall(r"(?<![\w:])shopguard_[a-z_]+[a-z]", text))
        assert names, f.name
        unknown = names - defined
        assert not unknown, f"{f.name}: not defined in sinks/metrics.py: {sorted(unknown)}"


# --------------------------------------------------------------------------
# Alertmanager
# --------------------------------------------------------------------------

def test_alertmanager_config_passes_amtool():
    amtool = tool("amtool")
    proc = run([amtool, "check-config", str(ALERTMANAGER_YML)])
    assert "SUCCESS" in proc.stdout, proc.stdout
    assert "3 inhibit rules" in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    "severity, receiver",
    [("critical", "oncall-pager"), ("warning", "team-webhook"), ("info", "analysts-webhook")],
)
def test_alertmanager_routes_by_severity(severity, receiver):
    amtool = tool("amtool")
    proc = run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
                "alertname=ShopguardDown", f"severity={severity}"])
    assert proc.stdout.strip() == receiver, proc.stdout


def start_alertmanager(tmp_path: Path, config: Path) -> tuple[subprocess.Popen, str]:
    """A real Alertmanager with `config` on a free port, ready; returns (process, base URL)."""
    port = free_port()
    log = tmp_path / "alertmanager.log"
    proc = start([tool("prometheus-alertmanager"), f"--config.file={config}", f"--storage.path={tmp_path}",
                  f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], log, tmp_path)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.poll() is None and urllib.request.urlopen(f"{base}/-/ready", timeout=1).status == 200,
               20, "alertmanager to be ready", [log])
    return proc, base


def alert(name: str, instance: str, severity: str, **labels: str) -> dict:
    return {"labels": {"alertname": name, "job": "shopguard", "instance": instance, "severity": severity, **labels}}


def test_alertmanager_inhibits_lag_alerts_while_down_fires(tmp_path):
    """A real Alertmanager with our config: Down of one instance mutes that instance's lag alert only."""
    proc, base = start_alertmanager(tmp_path, ALERTMANAGER_YML)
    try:
        http_json(f"{base}/api/v2/alerts", json.dumps([
            alert("ShopguardDown", "a:9464", "critical", cause="scrape_failed"),
            alert("ShopguardEventTimeLagHigh", "a:9464", "warning"),
            alert("ShopguardEventTimeLagHigh", "b:9464", "warning"),
            alert("ShopguardOverturnRateHigh", "a:9464", "warning", violation_type="fake_discount"),
        ]).encode())

        state = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alerts = http_json(f"{base}/api/v2/alerts")
            state = {(a["labels"]["alertname"], a["labels"]["instance"]): a["status"] for a in alerts}
            if len(state) == 4 and state[("ShopguardEventTimeLagHigh", "a:9464")]["inhibitedBy"]:
                break
            time.sleep(0.2)
        assert state[("ShopguardEventTimeLagHigh", "a:9464")]["inhibitedBy"], state
        assert not state[("ShopguardEventTimeLagHigh", "b:9464")]["inhibitedBy"], state
        assert not state[("ShopguardDown", "a:9464")]["inhibitedBy"], state
        assert not state[("ShopguardOverturnRateHigh", "a:9464")]["inhibitedBy"], state
    finally:
        stop(proc)


def test_a_critical_alert_reaches_the_placeholder_receiver(tmp_path):
    """Alertmanager delivers to alert-log (config/alertmanager/webhook_log.py), as in docker-compose."""
    receiver_port = free_port()
    receiver_log = tmp_path / "alert-log.log"
    receiver = start([sys.executable, str(ALERTMANAGER_YML.parent / "webhook_log.py"), "--addr", "127.0.0.1",
                      "--port", str(receiver_port)], receiver_log, tmp_path)
    # the compose service name, as this machine reaches it
    config = tmp_path / "alertmanager.yml"
    config.write_text(ALERTMANAGER_YML.read_text().replace("http://alert-log:5001/", f"http://127.0.0.1:{receiver_port}/"))
    proc, base = start_alertmanager(tmp_path, config)
    try:
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{receiver_port}/healthz", timeout=1).status == 200,
                   10, "alert-log to answer", [receiver_log])
        runbook = f"{RUNBOOK_BASE}ShopguardDown.md"
        http_json(f"{base}/api/v2/alerts", json.dumps([
            {**alert("ShopguardDown", "a:9464", "critical", cause="scrape_failed"),
             "annotations": {"runbook_url": runbook}}]).encode())

        def delivered() -> list[dict]:
            return [json.loads(line) for line in receiver_log.read_text().splitlines() if line.startswith("{")]

        wait_until(lambda: delivered(), 30, "the notification at alert-log", [receiver_log, tmp_path / "alertmanager.log"])
        (note,) = delivered()
        assert note["path"] == "/shopguard/critical" and note["receiver"] == "oncall-pager"
        assert note["alerts"][0]["alertname"] == "ShopguardDown" and note["alerts"][0]["runbook_url"] == runbook
    finally:
        stop(proc)
        stop(receiver)
