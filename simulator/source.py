"""The simulator as a source of the job: `shopguard run` with `source.kind = "simulator"`.

A Bytewax fixed-partition source whose snapshot is the number of events
emitted: the simulator is deterministic, so a resume regenerates the stream
and skips what was already emitted. With `speedup > 0` events are paced in
event time x `speedup` of the wall clock.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Iterator

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pipeline.sources.raw import RawRecord



class _SimulatorPartition(StatefulSourcePartition[RawRecord, int]):
    def __init__(self, events: Iterator[dict], batch_size: int, speedup: float, resume: int | None) -> None:
        self._events = events
        self._emitted = 0
        for _ in range(resume or 0):  # deterministic: regenerate and skip what was emitted
            next(self._events, None)
            self._emitted += 1
        self._batch_size = batch_size
        self._speedup = speedup
        self._encode = msgspec.json.Encoder().encode
        self._next: dict | None = None
        self._t0_wall: float | None = None
        self._t0_event: int | None = None

    def _due(self, event: dict) -> float:
        """Wall time at which a paced event is due."""
        if self._t0_wall is None:
            self._t0_wall, self._t0_event = time.time(), event["ts"]
        return self._t0_wall + (event["ts"] - self._t0_event) / 1000.0 / self._speedup

    def next_batch(self) -> list[RawRecord]:
        now = time.time()
        batch = []
        while len(batch) < self._batch_size:
            event = self._next if self._next is not None else next(self._events, None)
            self._next = None
            if event is None:
                if not batch:
                    raise StopIteration
                break
            if self._speedup > 0 and self._due(event) > now:
                self._next = event  # not due yet: keep it for the next awake
                break
            self._emitted += 1
            batch.append(RawRecord(self._encode(event), "simulator", self._emitted, int(now * 1000)))
        return batch

    def next_awake(self) -> datetime | None:
        if self._next is None or self._speedup <= 0:
            return None
        return datetime.fromtimestamp(self._due(self._next), tz=timezone.utc)

    def snapshot(self) -> int:
        # A held-back event was not emitted yet.
        return self._emitted


class SimulatorSource(FixedPartitionedSource[RawRecord, int]):
    """The built-in marketplace simulator as a source, optionally paced in real time."""

    def __init__(self, sim_config, batch_size: int = 1000, speedup: float = 0.0) -> None:
        self.sim_config = sim_config
        self.batch_size = batch_size
        self.speedup = speedup

    def list_parts(self) -> list[str]:
        return ["simulator"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _SimulatorPartition:
        from simulator import iter_events

        return _SimulatorPartition(iter_events(self.sim_config), self.batch_size, self.speedup, resume_state)


def read_simulator(config, metrics):
    """`source.kind = "simulator"` for the engine (`pipeline.engine.job.Reader`): `[source.simulator]`."""
    from pipeline.engine.dataflow import read_from
    from simulator import SimConfig

    sim = config.source.simulator
    return read_from(SimulatorSource(SimConfig(seed=sim.seed, hours=sim.hours, scale=sim.scale),
                                     config.job.batch_size, sim.speedup))
