"""The Prometheus alert rules, their promtool unit tests and the Alertmanager example.

These tests run the real tools from Debian's packages:
    apt-get install prometheus prometheus-alertmanager
(`promtool` comes with `prometheus`; `amtool` and `prometheus-alertmanager`
with `prometheus-alertmanager`). A missing tool is a failure, never a skip:
CI must install them.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "config" / "prometheus"
RULES_DIR = PROM_DIR / "rules"
RULE_TESTS_DIR = PROM_DIR / "tests"
ALERTMANAGER_YML = ROOT / "config" / "alertmanager" / "alertmanager.yml"

# The alerts shopguard promises on-call (see config/prometheus/rules/).
EXPECTED_ALERTS = {
    "ShopguardDown",
    "ShopguardStalled",
    "ShopguardEventTimeLagHigh",
    "ShopguardDeadLetterSpike",
    "ShopguardViolationRateDrift",
    "ShopguardOverturnRateHigh",
    "ShopguardTopicSilent",
}

INSTALL_HINT = {
    "promtool": "apt-get install prometheus",
    "prometheus": "apt-get install prometheus",
    "amtool": "apt-get install prometheus-alertmanager",
    "prometheus-alertmanager": "apt-get install prometheus-alertmanager",
}


def tool(name: str) -> str:
    """Path of a Prometheus tool, or a failure that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run `{INSTALL_HINT[name]}` (Debian) and re-run the tests")
    return path


def run(cmd: list[str], timeout: float = 120, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a tool; fail with its full output unless it exits 0."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(cmd)}` exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    return proc


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


def test_every_alert_is_defined_with_severity_and_runbook():
    rules = [r for f in rule_files() for r in alert_rules(f.read_text())]
    names = {r["alert"] for r in rules}
    assert names == EXPECTED_ALERTS, f"missing: {EXPECTED_ALERTS - names}, unexpected: {names - EXPECTED_ALERTS}"
    for r in rules:
        where = f"{r['alert']} {r['labels']}"
        assert r["labels"].get("severity") in {"critical", "warning", "info"}, where
        for key in ("summary", "description", "runbook"):
            assert len(r["annotations"].get(key, "")) > 20, f"{where}: annotation {key} missing or empty"
        runbook = r["annotations"]["runbook"]
        # Concrete: names a metric, an output file or a config file, and quotes a command or query.
        assert re.search(r"shopguard_|OUT/|prometheus\.yml", runbook), f"{where}: runbook names no metric or file"
        assert "`" in runbook, f"{where}: runbook quotes no command or query"


def test_every_alert_has_firing_and_quiet_unit_tests():
    cases = [c for f in rule_test_files() for c in alert_test_cases(f.read_text())]
    for alert in sorted(EXPECTED_ALERTS):
        outcomes = {bool(expected) for name, expected in cases if name == alert}
        assert True in outcomes, f"{alert}: no promtool test where it fires"
        assert False in outcomes, f"{alert}: no promtool test where it stays quiet"


def test_every_alerting_rule_fires_in_some_unit_test():
    """Each rule, not only each name: a test expects an alert with that rule's labels."""
    cases = [c for f in rule_test_files() for c in alert_test_cases(f.read_text())]
    rules = [r for f in rule_files() for r in alert_rules(f.read_text())]
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
    """Expressions, descriptions and runbooks name real metrics (a typo would never fire)."""
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, data: bytes | None = None):
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def test_alertmanager_inhibits_lag_alerts_while_down_fires(tmp_path):
    """A real Alertmanager with our config: Down of one instance mutes that instance's lag alert only."""
    binary = tool("prometheus-alertmanager")
    port = free_port()
    log = open(tmp_path / "alertmanager.log", "w")
    proc = subprocess.Popen(
        [binary, f"--config.file={ALERTMANAGER_YML}", f"--storage.path={tmp_path}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("alertmanager did not start:\n" + (tmp_path / "alertmanager.log").read_text())
                time.sleep(0.2)

        def alert(name, instance, severity, **labels):
            return {"labels": {"alertname": name, "job": "shopguard", "instance": instance,
                               "severity": severity, **labels}}

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
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
