"""Configuration: TOML files in `config/`, decoded into typed, frozen structs.

The job reads `config/shopguard.toml` (job, source, output, metrics and every
detector threshold) and `config/policy.toml` (what each violation costs). A
user file given with `--config` is laid over the defaults key by key, so it
only needs the keys it changes. Everything is validated at start-up: a typo or
a wrong type stops the job with one line naming the file and the key.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from detectors.models.config import ModelsConfig
from detectors.registry import registry
from pipeline.contract.events import InputLimits
from pipeline.errors import ConfigError, validation_message

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULT_CONFIG = CONFIG_DIR / "shopguard.toml"
DEFAULT_POLICY = CONFIG_DIR / "policy.toml"


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class JobConfig(_Section):
    shards: int
    allowed_lateness_seconds: float
    dedupe_horizon_seconds: float
    idle_eviction_seconds: float
    batch_size: int
    ledger_hold_seconds: float
    epoch_interval_seconds: float
    stop_grace_seconds: float = 30.0
    policy_watch_seconds: float = 2.0


Positive = Annotated[int, msgspec.Meta(ge=1)]


class InputConfig(_Section):
    """`[input]`: what one input record may cost, and which event times are plausible (see shopguard.toml)."""

    max_line_bytes: Positive = 1_048_576
    max_depth: Positive = 64
    max_text_chars: Positive = 65_536
    dead_letter_raw_bytes: Positive = 16_384
    earliest_event_time: datetime = datetime(2000, 1, 1, tzinfo=timezone.utc)
    latest_event_time: datetime = datetime(2100, 1, 1, tzinfo=timezone.utc)
    max_clock_skew_seconds: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    max_stream_lead_seconds: Annotated[float, msgspec.Meta(ge=0)] = 2_592_000.0

    def limits(self) -> InputLimits:
        """The decoder's limits (`pipeline.contract.events.decode`)."""
        return InputLimits(max_depth=self.max_depth, max_text_chars=self.max_text_chars,
                           earliest_ts=_epoch_ms(self.earliest_event_time),
                           latest_ts=_epoch_ms(self.latest_event_time))


def _epoch_ms(at: datetime) -> int:
    """Milliseconds since the Unix epoch; a time without a zone is UTC."""
    return int((at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp() * 1000)


class SimulatorSourceConfig(_Section):
    seed: int
    hours: float
    scale: float
    speedup: float
    world: str = "home"  # a world of simulator/worlds/ (or a path to a world file)
    start: str = "auto"  # auto | now | ISO-8601 (see simulator/source.py)
    feedback: bool = True  # appeals, decisions and lessons for the run's violations (file outputs)


class FileSourceConfig(_Section):
    path: str


class KafkaConfig(_Section):
    brokers: list[str]
    input_topics: list[str]
    output_topics: dict[str, str]
    consumer: dict[str, str]
    producer: dict[str, str]
    security: dict[str, str]
    commit_offsets: bool = True
    read_ahead_seconds: float = 30.0


class SourceConfig(_Section):
    kind: Literal["simulator", "file", "kafka"]
    simulator: SimulatorSourceConfig
    file: FileSourceConfig


class OutputConfig(_Section):
    kind: Literal["files", "kafka"]
    dir: str
    max_record_bytes: Annotated[int, msgspec.Meta(ge=4096)] = 900_000


class MetricsConfig(_Section):
    port: int
    addr: str
    stall_seconds: float = 120.0


class LogConfig(_Section):
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class ClusterConfig(_Section):
    """`[cluster]`: this process's place in a Bytewax cluster across hosts (`--process-id`, `--addresses`)."""

    process_id: int = 0
    addresses: list[str] = []

    @property
    def processes(self) -> int:
        return max(1, len(self.addresses))


class RecoveryConfig(_Section):
    dir: str
    snapshot_interval_seconds: float
    partitions: int = 8


class WorkbenchConfig(_Section):
    """`[workbench]`: the reviewer console and the standing pages (`shopguard console`)."""

    addr: str = "127.0.0.1"
    port: int = 8470
    session_secret: str = ""
    https_only: bool = False
    session_hours: float = 8.0
    event_time: Literal["data", "wall"] = "data"
    follow_seconds: float = 1.0
    reviewers: dict[str, str] = {}
    actors: dict[str, str] = {}


# `[detectors.*]`: one typed table per registered detector (`detectors/registry.py`).
DetectorsConfig = registry().config_struct(__name__)


class Config(_Section):
    job: JobConfig
    input: InputConfig
    source: SourceConfig
    output: OutputConfig
    metrics: MetricsConfig
    recovery: RecoveryConfig
    kafka: KafkaConfig
    detectors: DetectorsConfig
    models: ModelsConfig
    policy_path: str = ""
    workbench: WorkbenchConfig = msgspec.field(default_factory=WorkbenchConfig)
    cluster: ClusterConfig = msgspec.field(default_factory=ClusterConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)


def read_toml(path: Path) -> dict[str, Any]:
    """Read one TOML file, with an error that names the file and the line."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass an existing file or omit the option") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Lay `override` over `base` table by table.

    >>> merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}})
    {'a': {'x': 1, 'y': 3}}
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """The job's configuration: defaults, then the user's file, then CLI overrides."""
    data = read_toml(DEFAULT_CONFIG)
    source = str(DEFAULT_CONFIG)
    if path is not None:
        data = merge(data, read_toml(Path(path)))
        source = str(path)
    if overrides:
        data = merge(data, overrides)
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as err:
        raise ConfigError(f"{source}: {validation_message(err, data)}") from None
