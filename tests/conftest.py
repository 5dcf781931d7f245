"""Shared fixtures: the contract samples and a helper that replays a file through the real flow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def sample_events() -> Path:
    return FIXTURES / "events.sample.jsonl"


@pytest.fixture
def malformed_events() -> Path:
    return FIXTURES / "malformed.sample.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()]


def replay(events: Path, out: Path, workers: int = 1, config: dict | None = None, policy: str | None = None):
    """Run `shopguard replay` in-process; returns (metrics, outputs by file name)."""
    from pipeline.engine.job import read_file, run_job
    from pipeline.config import load

    overrides = {"source": {"kind": "file", "file": {"path": str(events)}}, "output": {"dir": str(out)}}
    if policy:
        overrides["policy_path"] = policy
    cfg = load(None, {**overrides, **(config or {})})
    metrics = run_job(cfg, source=read_file, replay=True, workers=workers, serve_metrics=False, progress=False)
    outputs = {p.name: read_jsonl(p) for p in out.glob("*.jsonl")}
    return metrics, outputs
from tests.kafka_fixture import kafka_broker  # noqa: F401,E402  (a real broker, started once per session)


@pytest.fixture(scope="session")
def marketplace(kafka_broker, tmp_path_factory):
    """The simulated marketplace on the broker's input topics (4 partitions each), published once per session."""
    from tests.kafka_jobs import publish_marketplace

    return publish_marketplace(kafka_broker, tmp_path_factory.mktemp("marketplace"))
