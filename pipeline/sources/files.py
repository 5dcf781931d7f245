"""NDJSON files (or standard input) as a source of `RawRecord`s.

A Bytewax fixed-partition source: it snapshots its read position (byte
offset and line number), so a job that resumes from recovery continues where
it stopped instead of reading again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pipeline.errors import SetupError
from pipeline.sources.raw import RawRecord



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
            raise SetupError(f"{path}: no such events file; give an NDJSON file or - for stdin")
        self.path = path
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [self.path]

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, int] | None) -> _FilePartition:
        return _FilePartition(for_part, self.batch_size, resume_state)
