"""The simulator as a source of the job: `shopguard run` with `source.kind = "simulator"`.

A Bytewax fixed-partition source whose snapshot is the number of simulated
events emitted (the simulator is deterministic, so a resume regenerates the
stream and skips what was already emitted) plus the feedback's state. With
`speedup > 0` events are paced in event time x `speedup` of the wall clock.

With file outputs and `[source.simulator] feedback = true`, governance events
for the run's own violations (appeals, decisions, lessons:
`simulator/feedback.py`) join the stream as its event time passes them.

The simulated clock (`[source.simulator] start`, `--start`): "auto" ends the
stream now when it runs as fast as it can (events span [now - hours, now]),
and starts it now when paced; "now", or an ISO-8601 time, starts it there.

>>> start_ts("2026-11-01T00:00:00Z", hours=6.0, paced=False, now_ms=0)
1793491200000
>>> start_ts("auto", hours=1.0, paced=False, now_ms=7_200_000), start_ts("auto", hours=1.0, paced=True, now_ms=7_200_000)
(3600000, 7200000)
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pipeline.errors import ConfigError
from pipeline.sources.raw import RawRecord
from simulator.feedback import Feedback, FeedbackState


def start_ts(text: str, *, hours: float, paced: bool, now_ms: int) -> int:
    """The simulated stream's first event time for `start` = "auto", "now" or an ISO-8601 time (UTC if naive)."""
    if text == "auto":
        return now_ms if paced else now_ms - int(hours * 3_600_000)
    if text == "now":
        return now_ms
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"simulator start {text!r} (--start, [source.simulator] start): expected auto, now or "
                          f"an ISO-8601 time such as 2026-11-01T00:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


class SourceState(msgspec.Struct, frozen=True):
    simulated: int  # simulated events emitted (a resume skips them)
    emitted: int  # every record emitted, feedback included (the records' positions)
    feedback: FeedbackState | None = None
    start_ts: int | None = None  # the stream's start ("auto" and "now" are not the same after a restart)


class _SimulatorPartition(StatefulSourcePartition[RawRecord, SourceState]):
    def __init__(self, events: Iterator[dict], batch_size: int, speedup: float, resume: SourceState,
                 feedback: Feedback | None = None) -> None:
        self._start_ts = resume.start_ts
        self._events = events
        for _ in range(resume.simulated):  # deterministic: regenerate and skip what was emitted
            next(self._events, None)
        self._simulated, self._emitted = resume.simulated, resume.emitted
        self._feedback = feedback
        self._batch_size = batch_size
        self._speedup = speedup
        self._encode = msgspec.json.Encoder().encode
        self._next: dict | None = None
        self._newest = 0  # newest event time emitted
        self._t0_wall: float | None = None
        self._t0_event: int | None = None

    def _due(self, event: dict) -> float:
        """Wall time at which a paced event is due."""
        if self._t0_wall is None:
            self._t0_wall, self._t0_event = time.time(), event["ts"]
        return self._t0_wall + (event["ts"] - self._t0_event) / 1000.0 / self._speedup

    def _record(self, event: dict, now: float) -> RawRecord:
        self._emitted += 1
        self._newest = max(self._newest, event["ts"])
        return RawRecord(self._encode(event), "simulator", self._emitted, int(now * 1000))

    def next_batch(self) -> list[RawRecord]:
        now = time.time()
        batch = []
        ended = False
        while len(batch) < self._batch_size:
            event = self._next if self._next is not None else next(self._events, None)
            self._next = None
            if event is None:
                ended = True
                break
            if self._speedup > 0 and self._due(event) > now:
                self._next = event  # not due yet: keep it for the next awake
                break
            self._simulated += 1
            batch.append(self._record(event, now))
        if self._feedback is not None:
            self._feedback.follow(self._newest)
            batch += [self._record(event, now) for event in self._feedback.due(self._newest)]
        if ended and not batch:
            raise StopIteration
        return batch

    def next_awake(self) -> datetime | None:
        if self._next is None or self._speedup <= 0:
            return None
        return datetime.fromtimestamp(self._due(self._next), tz=timezone.utc)

    def snapshot(self) -> SourceState:
        # A held-back event was not emitted yet.
        return SourceState(self._simulated, self._emitted,
                           self._feedback.snapshot() if self._feedback is not None else None, self._start_ts)


class SimulatorSource(FixedPartitionedSource[RawRecord, SourceState]):
    """The built-in marketplace simulator as a source, optionally paced in real time, optionally with
    feedback from the run's violations file (`feedback_from`)."""

    def __init__(self, sim_config, batch_size: int = 1000, speedup: float = 0.0,
                 feedback_from: Path | None = None) -> None:
        self.sim_config = sim_config
        self.batch_size = batch_size
        self.speedup = speedup
        self.feedback_from = feedback_from

    def list_parts(self) -> list[str]:
        return ["simulator"]

    def build_part(self, step_id: str, for_part: str, resume_state: SourceState | int | None) -> _SimulatorPartition:
        from simulator import iter_events, labels

        cfg = self.sim_config
        if isinstance(resume_state, int):  # a snapshot from before feedback existed
            resume_state = SourceState(resume_state, resume_state)
        state = resume_state or SourceState(0, 0)
        if state.start_ts is not None:
            cfg = replace(cfg, start_ts=state.start_ts)  # resume the stream this run started
        else:
            state = msgspec.structs.replace(state, start_ts=cfg.start_ts)
        feedback = None
        if self.feedback_from is not None:
            truth = {(x["actor"], x["violation_type"]) for x in labels(cfg)}
            feedback = Feedback(self.feedback_from, cfg.seed, truth, cfg.end_ts, state=state.feedback)
        return _SimulatorPartition(iter_events(cfg), self.batch_size, self.speedup, state, feedback)


def read_simulator(config, metrics):
    """`source.kind = "simulator"` for the engine (`pipeline.engine.job.Reader`): `[source.simulator]`."""
    from pipeline.engine.dataflow import read_from
    from simulator import SimConfig, load_world

    sim = config.source.simulator
    load_world(sim.world)  # an unknown world or a bad file stops the job before it starts, in one line
    first = start_ts(sim.start, hours=sim.hours, paced=sim.speedup > 0, now_ms=int(time.time() * 1000))
    cfg = SimConfig(seed=sim.seed, hours=sim.hours, scale=sim.scale, world=sim.world, start_ts=first)
    feedback = Path(config.output.dir) / "violations.jsonl" if sim.feedback and config.output.kind == "files" else None
    return read_from(SimulatorSource(cfg, config.job.batch_size, sim.speedup, feedback))
