"""The docker-compose stack a deploying team brings up: valid, and wired to files that exist."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def compose_command() -> list[str]:
    """`docker compose` when the plugin is there, else Debian's `docker-compose`."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no compose client: apt-get install docker-compose (or the docker compose plugin)")


@pytest.fixture(scope="module")
def resolved() -> str:
    """`compose config`: validates the file and prints it resolved."""
    result = subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_compose_config_is_valid_and_has_every_service(resolved):
    for service in ("kafka", "topics", "shopguard", "loadgen", "prometheus", "alertmanager", "grafana"):
        assert f"  {service}:" in resolved


def test_every_mounted_config_path_exists():
    text = (ROOT / "docker-compose.yml").read_text()
    mounts = [line.split("- ", 1)[1].split(":", 1)[0] for line in text.splitlines()
              if line.strip().startswith("- ./")]
    assert mounts, "expected bind mounts of ./config"
    for mount in mounts:
        assert (ROOT / mount).exists(), mount


def test_the_job_in_compose_reads_and_writes_kafka_and_is_scrapable():
    from pipeline.config import load

    cfg = load(ROOT / "config" / "docker.toml")
    assert (cfg.source.kind, cfg.output.kind, cfg.metrics.addr) == ("kafka", "kafka", "0.0.0.0")
    assert "shopguard:9464" in (ROOT / "config" / "prometheus" / "prometheus.yml").read_text()
