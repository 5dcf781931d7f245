"""Policy reload without a restart: `run` watches its policy file (and takes SIGHUP).

A changed file is checked first, exactly as at start-up; a bad one is
rejected with its one-line error in the log and the policy in force stays.
A good one becomes a `policy.changed` governance event (the whole policy
table, its version, the file it came from) in force from the next event
time on: one past the newest event time this process has read. The event
is recorded first (appended to `OUT/governance-events.jsonl`, or produced
to the governance topic), then put into the job's input, where every
ledger shard and the models step apply it in event-time order with
everything else (`pipeline.engine.ordered`): violations found at or after
that time carry the new points and say so (`policy_version`). Replaying
the input with the recorded governance events therefore applies each
change at the same event time again.

In a cluster every process checks its own file, and process 0 announces:
one change, one event time, for all. The version last announced is kept
in process 0's snapshot, so a file changed while the job was down is
announced when it starts again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from pipeline.config import DEFAULT_POLICY, Config, read_toml
from pipeline.enforce.policy import Policy, parse_policy
from pipeline.errors import ConfigError
from pipeline.logs import event
from pipeline.sources.control import Control
from pipeline.sources.raw import RawRecord
from sinks.metrics import Metrics

log = logging.getLogger("shopguard.policy")
GOVERNANCE_FILE = "governance-events.jsonl"


class PolicyReload:
    """Watches the policy file for the life of a `with` block (a daemon thread)."""

    def __init__(self, config: Config, control: Control, metrics: Metrics) -> None:
        self.config = config
        self.control = control
        self.metrics = metrics
        self.path = Path(config.policy_path or DEFAULT_POLICY)
        self.every = config.job.policy_watch_seconds
        self.current = parse_policy(read_toml(self.path), str(self.path))
        self._stamp = _stamp(self.path)
        self._forced = False
        self._wake = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="shopguard-policy", daemon=True)

    def __enter__(self) -> "PolicyReload":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._wake.set()

    def check_soon(self) -> None:
        """SIGHUP: read the file now, changed or not (safe in a signal handler)."""
        self._forced = True
        self._wake.set()

    def _watch(self) -> None:
        self.control.started.wait()
        self._catch_up()
        while not self._done.is_set():
            self._wake.wait(self.every if self.every > 0 else None)
            self._wake.clear()
            if not self._done.is_set():
                self.check()

    def _catch_up(self) -> None:
        """A file that changed while the job was down is announced now; else the file is where we stand."""
        announced = self.control.state.get("policy_version")
        if announced is None:
            self.control.state["policy_version"] = self.current.version
        elif announced != self.current.version and self.control.process_id == 0:
            self._announce(self.current, read_toml(self.path), previous=announced)

    def check(self) -> None:
        """Read the file if it changed; reject it, or announce it (process 0)."""
        stamp = _stamp(self.path)
        if stamp == self._stamp and not self._forced:
            return  # unchanged (or still missing: its error was logged once)
        self._stamp, self._forced = stamp, False
        try:
            data = read_toml(self.path)
            policy = parse_policy(data, str(self.path))
        except ConfigError as err:
            self.metrics.policy_reloads.labels("rejected").inc()
            event(log, logging.ERROR, f"policy reload rejected, policy {self.current.version} stays: {err}",
                  path=str(self.path), error_class=type(err).__name__)
            return
        if policy.version == self.current.version:
            return
        if self.control.process_id != 0:
            event(log, logging.INFO, "policy file changed; process 0 of the cluster announces it",
                  version=policy.version, path=str(self.path))
            self.current = policy
            return
        self._announce(policy, data, previous=self.current.version)

    def _announce(self, policy: Policy, data: dict, previous: str) -> None:
        ts = self._next_event_time()
        change = {"event_id": f"policy-{policy.version}-{ts}", "type": "policy.changed", "ts": ts,
                  "version": policy.version, "policy": data, "source": str(self.path),
                  "previous_version": previous}
        raw = msgspec.json.encode(change)
        try:
            self._record(raw)
        except Exception as err:  # not recorded, so not applied: a replay must see what the job saw
            event(log, logging.ERROR, f"policy {policy.version} not applied: recording it as a governance event "
                  f"failed ({err}); the next check tries again", error_class=type(err).__name__)
            self._forced = True
            return
        self.control.inject(RawRecord(raw, "policy", ts, int(time.time() * 1000)))
        self.control.state["policy_version"] = policy.version
        self.current = policy
        self.metrics.policy_reloads.labels("applied").inc()
        event(log, logging.INFO, f"policy {policy.version} applies from event time {ts} on",
              version=policy.version, previous=previous, event_time=ts, path=str(self.path))

    def _next_event_time(self) -> int:
        """One past the newest event time read here (the wall clock before any event)."""
        newest = self.metrics.newest_event_time.collect()[0].samples[0].value
        return int(newest * 1000) + 1 if newest > 0 else int(time.time() * 1000)

    def _record(self, raw: bytes) -> None:
        """The change into the governance record: the governance topic, or `OUT/governance-events.jsonl`."""
        if self.config.output.kind == "kafka":
            _produce_governance(self.config, raw)
            return
        with open(Path(self.config.output.dir) / GOVERNANCE_FILE, "ab") as f:
            f.write(raw + b"\n")
            f.flush()
            os.fsync(f.fileno())


def _produce_governance(config: Config, raw: bytes) -> None:
    from confluent_kafka import Producer

    from pipeline.kafka import CLIENT_TIMEOUT_S, KafkaDeliveryError, producer_settings, quiet

    topic = next((t for t in config.kafka.input_topics if t.endswith("governance-events")), None)
    if topic is None:
        raise KafkaDeliveryError("no governance-events topic among [kafka] input_topics")
    failures: list[str] = []
    producer = Producer(quiet(producer_settings(config.kafka)))
    producer.produce(topic, raw, b"policy", on_delivery=lambda err, _m: err and failures.append(err.str()))
    if producer.flush(CLIENT_TIMEOUT_S) or failures:
        raise KafkaDeliveryError(f"{topic}: {failures[0] if failures else 'not acknowledged in time'}")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
