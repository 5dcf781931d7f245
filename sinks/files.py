"""JSONL output files, one per record kind, written by one Bytewax sink.

Each output file is one partition of a fixed-partitioned sink, so exactly one
worker appends to it. Every batch is written with a single `write` of whole
lines, so a reader following the file never sees half a line; a reader
should still stop at the last newline. The sink snapshots each file's length
and truncates back to it on resume, so with recovery a file never holds a
line twice. `scan_jsonl` reads such a file back (up to its last newline).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from pipeline.contract.records import OUTPUT_FILES

if TYPE_CHECKING:
    import polars as pl


class _JsonlPartition(StatefulSinkPartition[bytes, int]):
    def __init__(self, path: Path, resume_offset: int | None) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        offset = resume_offset or 0
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)
        self._offset = offset

    def write_batch(self, lines: list[bytes]) -> None:
        data = b"\n".join(lines) + b"\n"
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._offset += len(data)

    def snapshot(self) -> int:
        os.fsync(self._fd)
        return self._offset

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)


class JsonlDirSink(FixedPartitionedSink[bytes, int]):
    """Items are `(file_name, json_line)`; `file_name` is one of `OUTPUT_FILES`."""

    def __init__(self, out_dir: str | Path, *, fresh: bool = True) -> None:
        """`fresh` empties the files first (a new run); a resuming run keeps them."""
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            with open(self.out_dir / name, "wb" if fresh else "ab"):
                pass

    # Bytewax indexes `part_fn`'s result into the *sorted* partition names.
    _PARTS = sorted(OUTPUT_FILES)

    def list_parts(self) -> list[str]:
        return list(self._PARTS)

    def part_fn(self, item_key: str) -> int:
        return self._PARTS.index(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _JsonlPartition:
        return _JsonlPartition(self.out_dir / for_part, resume_state)


# ---- reading them back ------------------------------------------------------------


def scan_jsonl(path: Path, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """NDJSON up to its last newline: a line still being written is left for next time."""
    import polars as pl  # only readers need it: the job's start-up stays light

    size = path.stat().st_size
    if size == 0:
        return pl.LazyFrame(schema=schema)
    with open(path, "rb") as f:
        f.seek(size - 1)
        complete = f.read(1) == b"\n"
    if complete:
        return pl.scan_ndjson(path, schema=schema)
    data = path.read_bytes()
    return pl.scan_ndjson(data[: data.rfind(b"\n") + 1] or b"\n", schema=schema)
