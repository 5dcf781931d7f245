"""NDJSON files (or standard input) as a source of `RawRecord`s.

A Bytewax fixed-partition source: it snapshots its read position (byte
offset and line number), so a job that resumes from recovery continues where
it stopped instead of reading again.

Memory is bounded whatever the file holds: a line longer than
`max_line_bytes` is never read whole (its first `excerpt_bytes` and its size
go on, for the decode step to dead-letter), and a batch stops once it holds
`max_batch_bytes`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pipeline.errors import SetupError
from pipeline.sources.raw import RawRecord

SKIP_CHUNK_BYTES = 1 << 20  # the rest of an over-long line is read and dropped in pieces this big
MAX_BATCH_BYTES = 16 << 20


class _FilePartition(StatefulSourcePartition[RawRecord, tuple[int, int]]):
    def __init__(self, path: str, batch_size: int, max_line_bytes: int, excerpt_bytes: int,
                 resume: tuple[int, int] | None) -> None:
        self._stdin = path == "-"
        self._origin = "stdin" if self._stdin else Path(path).name
        self._f = sys.stdin.buffer if self._stdin else open(path, "rb")
        self._offset, self._line = resume or (0, 0)
        if resume and not self._stdin:
            self._f.seek(self._offset)
        self._batch_size = batch_size
        self._max_line = max_line_bytes
        self._excerpt = excerpt_bytes

    def next_batch(self) -> list[RawRecord]:
        now = int(time.time() * 1000)
        batch: list[RawRecord] = []
        held = 0
        line = b""
        for _ in range(self._batch_size):
            line = self._f.readline(self._max_line + 1)
            if not line:
                break
            self._line += 1
            self._offset += len(line)
            if len(line) > self._max_line and not line.endswith(b"\n"):
                batch.append(self._over_long(line, now))
                continue
            # Blank lines go on too (empty): the decode step counts them, nothing is dropped unseen.
            line = line.rstrip(b"\r\n")
            batch.append(RawRecord(b"" if line.isspace() else line, self._origin, self._line, now))
            held += len(line)
            if held >= MAX_BATCH_BYTES:
                break
        if not batch and not line:
            raise StopIteration
        return batch

    def _over_long(self, start: bytes, now: int) -> RawRecord:
        """A line over the limit: keep its first bytes and its size, read the rest without keeping it."""
        size = len(start)
        while piece := self._f.readline(SKIP_CHUNK_BYTES):
            self._offset += len(piece)
            if piece.endswith(b"\n"):
                size += len(piece) - 1  # the newline ends the line; it is not part of it
                break
            size += len(piece)
        return RawRecord(start[: self._excerpt], self._origin, self._line, now, size)

    def snapshot(self) -> tuple[int, int]:
        return (self._offset, self._line)

    def close(self) -> None:
        if not self._stdin:
            self._f.close()


class FileSource(FixedPartitionedSource[RawRecord, tuple[int, int]]):
    """One NDJSON file (`-` for stdin) read line by line; file order is arrival order.

    Every line is a record (valid or not); a blank line is an empty record,
    which the decode step counts. `max_line_bytes` and `excerpt_bytes` are the
    `[input]` limits (see the module docstring).
    """

    def __init__(self, path: str, batch_size: int = 1000, *, max_line_bytes: int = 1 << 20,
                 excerpt_bytes: int = 16_384) -> None:
        if path != "-" and not Path(path).is_file():
            raise SetupError(f"{path}: no such events file; give an NDJSON file or - for stdin")
        self.path = path
        self.batch_size = batch_size
        self.max_line_bytes = max_line_bytes
        self.excerpt_bytes = excerpt_bytes

    def list_parts(self) -> list[str]:
        return [self.path]

    def build_part(self, step_id: str, for_part: str, resume_state: tuple[int, int] | None) -> _FilePartition:
        return _FilePartition(for_part, self.batch_size, self.max_line_bytes, self.excerpt_bytes, resume_state)
