"""Where events come from: NDJSON files (or stdin), the simulator, Kafka.

Every source yields `RawRecord`s: the bytes as received plus where they came
from, so decoding, validation and dead-lettering happen in one place (the
`decode` step) whatever the source. Sources are Bytewax fixed-partition
sources: they snapshot their read position, so a job that resumes from
recovery continues where it stopped instead of reading again.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, NamedTuple

import msgspec
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition


class RawRecord(NamedTuple):
    """One input message as received: `origin` (file or topic/partition) and `position` (line or offset)."""

    raw: bytes
    origin: str
    position: int
    received_ms: int  # wall clock (files, simulator) or the broker's timestamp (Kafka)

    @property
    def source(self) -> str:
        return f"{self.origin}:{self.position}"


# ---- NDJSON files -------------------------------------------------------------


class _FilePartition(StatefulSourcePartition[RawRecord, tuple[int, int]]):
    def __init__(self, path: str, batch_size: int, resume: tuple[int, int] | None) -> None:
        self._stdin = path == "-"
        self._origin = "stdin" if self._stdin else Path(path).name
        self._f = sys.stdin.buffer if self._stdin else open(path, "rb")
        self._offset, self._line = resume or (0, 0)
        if resume and not self._stdin:
            self._f.seek(self._offset)
        self._batch_size = batch_size

    def next_batch(self) -> list[RawRecord]:
        now = int(time.time() * 1000)
        batch = []
        readline, origin = self._f.readline, self._origin
        for _ in range(self._batch_size):
            line = readline()
            if not line:
                break
            self._line += 1
            self._offset += len(line)
            line = line.rstrip(b"\r\n")
            if line.strip():
                batch.append(RawRecord(line, origin, self._line, now))
        if not batch and not line:
            raise StopIteration
        return batch

    def snapshot(self) -> tuple[int, int]:
        return (self._offset, self._line)

    def close(self) -> None:
        if not self._stdin:
            self._f.close()


class FileSource(FixedPartitionedSource[RawRecord, tuple[int, int]]):
    """One NDJSON file (`-` for stdin) read line by line; file order is arrival order.

    Blank lines are skipped; every other line is a record (valid or not).
    """

    def __init__(self, path: str, batch_size: int = 1000) -> None:
        if path != "-" and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such events file; give an NDJSON file or - for stdin")
        self.path = path
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [self.path]

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, int] | None) -> _FilePartition:
        return _FilePartition(for_part, self.batch_size, resume_state)


# ---- the simulator ------------------------------------------------------------


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
        from pipeline.simulator import iter_events

        return _SimulatorPartition(iter_events(self.sim_config), self.batch_size, self.speedup, resume_state)
