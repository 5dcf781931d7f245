"""What a deploying team runs: docker-compose.yml, the image, deploy/ (Kubernetes and the cluster scripts).

Real tools where the team has them: `docker-compose config` (Debian's
docker-compose; no Docker engine needed) resolves and validates the stack,
`kubernetes-validate --strict` checks the manifests against the Kubernetes
API schemas, a real 2-process Bytewax cluster runs over the recovery shares
the entrypoint script makes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.real_tools import run, tool

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "k8s"
SHARE_SCRIPT = ROOT / "deploy" / "init-recovery-share.sh"
ENTRYPOINT = ROOT / "deploy" / "cluster-entrypoint.sh"
PASSWORD = "a-generated-password-for-the-test"
SERVICES = {"kafka", "topics", "shopguard-0", "shopguard-1", "loadgen", "prometheus", "alertmanager", "alert-log",
            "grafana"}
ONE_SHOT = {"topics"}  # runs once and exits: its exit code is its health


# ---- docker-compose -----------------------------------------------------------------------------


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`docker compose config` (the plugin when there, else Debian's docker-compose): validate and resolve."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    else:
        command = [tool("docker-compose")]
    clean = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    return subprocess.run([*command, "-f", str(COMPOSE_FILE), "--profile", "demo", "config"],
                          capture_output=True, text=True, cwd=ROOT, env={**clean, **env}, timeout=60)


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    result = compose_config({"GRAFANA_ADMIN_PASSWORD": PASSWORD})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_compose_config_is_valid_and_has_every_service(services):
    assert set(services) == SERVICES


def test_compose_refuses_to_start_without_a_grafana_password():
    result = compose_config({})
    assert result.returncode != 0
    assert "set GRAFANA_ADMIN_PASSWORD to the Grafana admin password first" in result.stderr, result.stderr


def test_grafana_takes_the_password_given_and_has_no_default(services):
    env = services["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == PASSWORD
    assert "admin/admin" not in COMPOSE_FILE.read_text() and "PASSWORD: admin" not in COMPOSE_FILE.read_text()


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        check = service.get("healthcheck", {})
        disabled = check.get("disable") or check.get("test") == ["NONE"]  # how compose resolves `disable: true`
        if name in ONE_SHOT:
            assert disabled and service.get("restart") == "no", f"{name}: mark one-shot jobs as such"
            continue
        assert check.get("test") and not disabled, f"{name}: no health check"


def test_shopguard_runs_as_a_two_process_cluster_with_health_checks(services):
    processes = [services["shopguard-0"], services["shopguard-1"]]
    addresses = "shopguard-0:2101,shopguard-1:2101"
    for i, p in enumerate(processes):
        env = p["environment"]
        assert (env["SHOPGUARD_PROCESS_ID"], env["SHOPGUARD_PROCESSES"], env["SHOPGUARD_ADDRESSES"]) == (
            str(i), "2", addresses)
        assert p["hostname"] == f"shopguard-{i}" and p["entrypoint"] == ["/app/deploy/cluster-entrypoint.sh"]
        check = " ".join(p["healthcheck"]["test"])
        assert "127.0.0.1:9464" in check and "healthz" in check and "readyz" in check
    volumes = [p["volumes"][0] for p in processes]
    assert volumes[0] != volumes[1], "each process needs its own recovery volume"


def test_prometheus_scrapes_every_process(services):
    config = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "shopguard"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    processes = sorted(s for s in services if s.startswith("shopguard-"))
    assert targets == [f"{p}:9464" for p in processes]


def tool_version(name: str) -> str:
    """`promtool, version 2.42.0+ds (...)` -> `2.42.0`."""
    out = run([tool(name), "--version"]).stdout + ""
    match = re.search(r"version (\d+\.\d+\.\d+)", out)
    assert match, out
    return match.group(1)


@pytest.mark.parametrize("service, tested_with", [("prometheus", "promtool"), ("alertmanager", "amtool")])
def test_compose_deploys_the_versions_the_suite_tests(services, service, tested_with):
    """The rule unit tests, dashboard queries and routing tests run Debian's tools: compose deploys those versions."""
    image = services[service]["image"]
    assert image.endswith(f":v{tool_version(tested_with)}"), (
        f"docker-compose deploys {image} but the suite tests with {tested_with} {tool_version(tested_with)}: "
        f"move both together")


def test_alertmanager_receivers_reach_a_compose_service_with_a_health_check(services):
    config = yaml.safe_load((ROOT / "config" / "alertmanager" / "alertmanager.yml").read_text())
    urls = [hook["url"] for r in config["receivers"] for hook in r.get("webhook_configs", [])]
    assert urls
    for url in urls:
        host = re.match(r"https?://([^:/]+)", url).group(1)
        assert host in services and services[host].get("healthcheck", {}).get("test"), url
    assert "PLACEHOLDER" in (ROOT / "config" / "alertmanager" / "alertmanager.yml").read_text()


def test_every_mounted_config_path_exists(services):
    mounts = [v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if v.startswith("/")]
    assert mounts, "expected bind mounts of ./config"
    for mount in mounts:
        assert Path(mount).exists(), mount


def test_the_job_in_compose_reads_and_writes_kafka_and_is_scrapable():
    from pipeline.config import load

    cfg = load(ROOT / "config" / "docker.toml")
    assert (cfg.source.kind, cfg.output.kind, cfg.metrics.addr, cfg.metrics.port) == ("kafka", "kafka", "0.0.0.0", 9464)
    assert cfg.recovery.dir == "/data/recovery"


def test_the_image_holds_every_package_and_the_cluster_scripts():
    dockerfile = (ROOT / "Dockerfile").read_text()
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in packages:
        name = package.rstrip("*")
        assert f"COPY {name} {name}" in dockerfile, f"the image lacks {name}/"
    assert "deploy/cluster-entrypoint.sh deploy/init-recovery-share.sh" in dockerfile
    assert re.search(r"^USER \d+", dockerfile, re.M), "run as an unprivileged user"


def test_the_local_prometheus_script_scrapes_every_process(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "prometheus").write_text("#!/bin/sh\nexit 0\n")
    (fake / "prometheus").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "PROMETHEUS_CACHE": str(tmp_path / "cache")}
    run(["bash", str(ROOT / "scripts" / "prometheus_local.sh"), "9500", "3"], env=env)
    config = yaml.safe_load((tmp_path / "cache" / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9500", "127.0.0.1:9501", "127.0.0.1:9502"]
    run([tool("promtool"), "check", "config", str(tmp_path / "cache" / "prometheus.yml")])


# ---- the cluster scripts --------------------------------------------------------------------------


def share(directory: Path, process_id: int, processes: int, partitions: int = 4) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["sh", str(SHARE_SCRIPT), str(directory), str(process_id), str(processes), str(partitions)],
                          capture_output=True, text=True, env=env, timeout=60)


def partitions_in(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("part-*.sqlite3")}


def test_recovery_shares_hold_every_partition_once_and_fit_one_process_count(tmp_path):
    a, b = tmp_path / "p0", tmp_path / "p1"
    assert share(a, 0, 2).returncode == 0 and share(b, 1, 2).returncode == 0
    assert partitions_in(a) == {"part-0.sqlite3", "part-2.sqlite3"}
    assert partitions_in(b) == {"part-1.sqlite3", "part-3.sqlite3"}
    assert share(a, 0, 2).returncode == 0 and partitions_in(a) == {"part-0.sqlite3", "part-2.sqlite3"}  # restart
    other = share(a, 0, 3)
    assert other.returncode == 2
    assert "belongs to a cluster of 2 processes, not 3" in other.stderr and "deploy/README.md" in other.stderr
    too_few = share(tmp_path / "p9", 0, 5, partitions=4)
    assert too_few.returncode == 2 and "SHOPGUARD_RECOVERY_PARTITIONS" in too_few.stderr


COUNTING_FLOW = textwrap.dedent("""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSource
    from bytewax.connectors.stdio import StdOutSink

    flow = Dataflow("count")
    keyed = op.key_on("key", op.input("numbers", flow, TestingSource(range(140))), lambda n: str(n % 7))
    totals = op.stateful_map("total", keyed, lambda total, n: ((total or 0) + 1, (total or 0) + 1))
    op.output("out", op.filter("complete", totals, lambda kv: kv[1] == 20), StdOutSink())
""")


def run_cluster(tmp_path: Path, dirs: list[Path]) -> list[str]:
    """One Bytewax cluster of len(dirs) processes on loopback, process i recovering from dirs[i]; its output lines."""
    from pipeline.engine.cluster import free_ports

    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(len(dirs)))
    procs = [subprocess.Popen([sys.executable, "-m", "bytewax.run", "flow:flow", "-i", str(i), "-a", addresses,
                               "-r", str(d), "-s", "1", "-b", "0"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for i, d in enumerate(dirs)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs)
    # Bytewax prints its connection retries on stdout too: keep the flow's `(key, total)` lines.
    return sorted(line for out in outs for line in out.splitlines() if line.startswith("("))


def test_a_real_bytewax_cluster_runs_and_resumes_over_the_shares(tmp_path):
    (tmp_path / "flow.py").write_text(COUNTING_FLOW)
    dirs = [tmp_path / "p0", tmp_path / "p1"]
    for i, d in enumerate(dirs):
        assert share(d, i, 2).returncode == 0
    first = run_cluster(tmp_path, dirs)
    assert first == sorted(f"('{k}', 20)" for k in range(7))
    assert run_cluster(tmp_path, dirs) == [], "a resumed cluster emitted its finished work again"


def test_the_entrypoint_refuses_addresses_that_do_not_match_the_process_count(tmp_path):
    env = {**os.environ, "SHOPGUARD_PROCESS_ID": "0", "SHOPGUARD_PROCESSES": "3",
           "SHOPGUARD_ADDRESSES": "a:2101,b:2101", "SHOPGUARD_RECOVERY_DIR": str(tmp_path / "r")}
    result = subprocess.run(["sh", str(ENTRYPOINT)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2
    assert "SHOPGUARD_ADDRESSES lists 2 processes but SHOPGUARD_PROCESSES is 3" in result.stderr
    assert not (tmp_path / "r").exists(), "nothing created before the check"


# ---- Kubernetes -------------------------------------------------------------------------------------


def validator() -> str:
    path = Path(sys.executable).parent / "kubernetes-validate"
    if not path.exists():
        pytest.fail("kubernetes-validate is missing: run `make setup` (it is in the test extras of pyproject.toml)")
    return str(path)


def manifests() -> dict[str, dict]:
    """Every object of deploy/k8s/ by `Kind/name`."""
    files = sorted(K8S_DIR.glob("*.yaml"))
    assert files, f"no manifests in {K8S_DIR}"
    return {f"{d['kind']}/{d['metadata']['name']}": d for f in files for d in yaml.safe_load_all(f.read_text()) if d}


@pytest.mark.parametrize("version", ["1.28.0", "1.37.0"])
def test_manifests_pass_the_kubernetes_schema_validator(version):
    files = [str(f) for f in sorted(K8S_DIR.glob("*.yaml"))]
    proc = run([validator(), "--strict", "-k", version, *files])
    assert proc.stdout.count("passed") == len(manifests()), proc.stdout


def test_the_validator_rejects_a_broken_manifest(tmp_path):
    """The check above can fail: an unknown field and a wrong type are caught."""
    broken = (K8S_DIR / "statefulset.yaml").read_text().replace("replicas: 2", "replicas: two\n  replica: 2")
    (tmp_path / "broken.yaml").write_text(broken)
    proc = subprocess.run([validator(), "--strict", str(tmp_path / "broken.yaml")], capture_output=True, text=True)
    assert proc.returncode != 0 and "replica" in proc.stdout + proc.stderr


def test_the_statefulset_is_a_cluster_whose_pod_ordinal_is_the_process_id():
    m = manifests()
    sts, service = m["StatefulSet/shopguard"], m["Service/shopguard"]
    cluster = m["ConfigMap/shopguard-cluster"]["data"]
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert spec["podManagementPolicy"] == "Parallel"
    replicas = spec["replicas"]
    assert cluster["SHOPGUARD_PROCESSES"] == str(replicas)
    assert cluster["SHOPGUARD_ADDRESSES"].split(",") == [f"shopguard-{i}.shopguard:2101" for i in range(replicas)]
    assert int(cluster["SHOPGUARD_RECOVERY_PARTITIONS"]) >= replicas
    env = {e["name"]: e for e in container["env"]}
    assert env["SHOPGUARD_PROCESS_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['apps.kubernetes.io/pod-index']"
    assert container["command"] == ["/app/deploy/cluster-entrypoint.sh"]
    assert {"name": "cluster", "containerPort": 2101} in container["ports"]


def test_probes_resources_volumes_and_disruption_budget():
    m = manifests()
    sts = m["StatefulSet/shopguard"]
    pod = sts["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9464} in container["ports"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {v["name"]: v["mountPath"] for v in container["volumeMounts"]}
    toml = m["ConfigMap/shopguard-config"]["data"]["shopguard.toml"]
    recovery = re.search(r'\[recovery\]\s*dir = "([^"]+)"', toml).group(1)
    assert recovery.startswith(mounts[claim["metadata"]["name"]] + "/"), "recovery must live on the pod's volume"
    assert "9464" in toml and '"0.0.0.0"' in toml
    pdb = m["PodDisruptionBudget/shopguard"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_secrets_come_from_a_secret_and_config_from_config_maps():
    m = manifests()
    (container,) = m["StatefulSet/shopguard"]["spec"]["template"]["spec"]["containers"]
    secret_env = [e for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert [e["name"] for e in secret_env] == ["SHOPGUARD_KAFKA_SASL_PASSWORD"]
    assert not [k for k in m if k.startswith("Secret/")], "no Secret with a value in the repository"
    for name, obj in m.items():
        if name.startswith("ConfigMap/"):
            assert "password" not in yaml.safe_dump(obj["data"]).lower(), name
    assert {"configMapRef": {"name": "shopguard-cluster"}} in container["envFrom"]
