"""Parquet copies of violations and actions, so analysts can load months of output.

Two ways in, one column layout:

- `convert_dir(DIR)` turns an output folder's `violations.jsonl` and
  `actions.jsonl` into `violations.parquet` and `actions.parquet` beside them
  (`shopguard report DIR --to-parquet`). Polars streams the JSONL through, so
  a large folder does not have to fit in memory.
- `ParquetBatchWriter(path)` takes batches of records as the job produces them
  (`write(records)`, then `close()`) and streams them into one Parquet file in
  row groups; no Bytewax import, so a sink can wrap it.

The columns are the wire contract's fields in contract order (`SCHEMAS`).
`evidence` varies by detector, so it is kept as JSON text: load it with
`pl.col("evidence").str.json_decode()` when needed. `education` is a struct
and `violation_ids` a list of strings. Read a month of files with
`pl.scan_parquet("out/violations*.parquet")`; `shopguard report` does so.

Example
-------
>>> import tempfile, polars as pl
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "actions.parquet"
>>> with ParquetBatchWriter(path, kind="actions") as w:
...     w.write([{"action_id": "a-1", "actor": "seller:S1", "action": "warning", "active_points": 4,
...               "violation_ids": ["v-1"], "ts": 1000, "reason": "listing_spam: warning"}])
>>> pl.read_parquet(path).select("actor", "action", "violation_ids").rows()
[('seller:S1', 'warning', ['v-1'])]
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgspec
import polars as pl
from polars.io.plugins import register_io_source

from sinks.files import scan_jsonl

EDUCATION = pl.Struct({"module_id": pl.String, "title": pl.String, "url": pl.String})

# One schema per record kind, in the field order of pipeline/contract/records.py.
SCHEMAS: dict[str, pl.Schema] = {
    "violations": pl.Schema({
        "violation_id": pl.String,
        "actor": pl.String,
        "violation_type": pl.String,
        "policy_id": pl.String,
        "severity": pl.String,
        "points": pl.Int64,
        "detector": pl.String,
        "confidence": pl.Float64,
        "detected_at": pl.Int64,
        "window_start": pl.Int64,
        "window_end": pl.Int64,
        "evidence": pl.String,  # JSON text: its keys differ by detector
        "explanation": pl.String,
        "education": EDUCATION,
        "enforced": pl.Boolean,
    }),
    "actions": pl.Schema({
        "action_id": pl.String,
        "actor": pl.String,
        "action": pl.String,
        "active_points": pl.Int64,
        "violation_ids": pl.List(pl.String),
        "ts": pl.Int64,
        "reason": pl.String,
    }),
}
# Columns kept as JSON text when a record carries a dict or list there.
_JSON_TEXT_COLUMNS = {"violations": ("evidence",), "actions": ()}

_encoder = msgspec.json.Encoder()


def convert_dir(out_dir: str | Path, kinds: Iterable[str] = ("violations", "actions")) -> dict[str, int]:
    """Write `KIND.parquet` from `KIND.jsonl` in `out_dir`; returns rows written per file name.

    A kind whose JSONL file is missing is skipped. Each file is written under
    a temporary name and renamed, so a reader never sees half a file.
    """

    out_dir = Path(out_dir)
    written: dict[str, int] = {}
    for kind in kinds:
        source = out_dir / f"{kind}.jsonl"
        if not source.is_file():
            continue
        target = out_dir / f"{kind}.parquet"
        partial = target.with_name(target.name + ".partial")
        scan_jsonl(source, SCHEMAS[kind]).sink_parquet(partial)
        os.replace(partial, target)
        written[target.name] = pl.scan_parquet(target).select(pl.len()).collect().item()
    return written


def to_frame(records: Iterable[Any], kind: str) -> pl.DataFrame:
    """Records (dicts or msgspec structs) as a DataFrame with the `kind`'s schema.

    Fields outside the schema (later contract extensions) are left out;
    dicts and lists in JSON-text columns are encoded as JSON.
    """
    schema, as_text = SCHEMAS[kind], _JSON_TEXT_COLUMNS[kind]
    rows = []
    for record in records:
        row = record if isinstance(record, dict) else msgspec.to_builtins(record)
        if as_text:
            row = dict(row)
            for column in as_text:
                value = row.get(column)
                if value is not None and not isinstance(value, str):
                    row[column] = _encoder.encode(value).decode()
        rows.append(row)
    return pl.from_dicts(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


class ParquetBatchWriter:
    """Streams batches of violations or actions into one Parquet file.

    Parameters
    ----------
    path
        The Parquet file to write. Rows go to `PATH.partial` while the writer
        is open; `close()` finishes the file and renames it to `path`, so a
        reader never opens a file without its footer.
    kind
        `"violations"` or `"actions"`: which schema of `SCHEMAS` to write.
    row_group_size
        Rows per Parquet row group (Polars' default when None).
    max_pending_batches
        Batches queued before `write` blocks: bounds memory when the disk is
        slower than the job.

    Polars' streaming Parquet sink runs on a helper thread and pulls the
    batches from a bounded queue, appending row groups as they fill, so
    memory stays flat however many rows pass through. An error in the sink
    is raised by the next `write` or by `close`.
    """

    def __init__(self, path: str | Path, kind: str = "violations", *, row_group_size: int | None = None,
                 max_pending_batches: int = 8) -> None:
        if kind not in SCHEMAS:
            raise ValueError(f"kind must be one of {sorted(SCHEMAS)}, got {kind!r}")
        self.path, self.kind = Path(path), kind
        self.rows = 0
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._queue: queue.Queue[pl.DataFrame | None] = queue.Queue(maxsize=max_pending_batches)
        self._error: BaseException | None = None
        self._closed = False
        frames = register_io_source(self._batches, schema=SCHEMAS[kind])
        self._thread = threading.Thread(target=self._sink, args=(frames, row_group_size),
                                        name=f"parquet-{self.path.name}", daemon=True)
        self._thread.start()

    def _batches(self, with_columns: list[str] | None, predicate: Any, n_rows: int | None,
                 batch_size: int | None) -> Iterator[pl.DataFrame]:
        while (frame := self._queue.get()) is not None:
            yield frame if with_columns is None else frame.select(with_columns)

    def _sink(self, frames: pl.LazyFrame, row_group_size: int | None) -> None:
        try:
            frames.sink_parquet(self._partial, row_group_size=row_group_size)
        except BaseException as err:  # handed to the caller by write/close
            self._error = err
            _drain(self._queue)

    def write(self, records: list[Any]) -> None:
        """Append records (dicts or msgspec structs of the writer's kind)."""
        if self._closed:
            raise ValueError(f"{self.path}: write after close")
        self._raise_if_failed()
        if not records:
            return
        frame = to_frame(records, self.kind)
        while True:  # never block forever on a sink thread that died
            try:
                self._queue.put(frame, timeout=0.5)
                break
            except queue.Full:
                self._raise_if_failed()
        self.rows += frame.height

    def close(self) -> None:
        """Finish the file (footer) and move it to `path`."""
        if self._closed:
            return
        self._closed = True
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise_if_failed()
        os.replace(self._partial, self.path)

    def __enter__(self) -> "ParquetBatchWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"{self.path}: Parquet sink failed: {self._error}") from self._error


def _drain(q: queue.Queue) -> None:
    """Empty a queue so a producer blocked on it wakes up."""
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
