"""Parquet copies of every output file, so analysts can load months of output.

Two ways in, one column layout:

- `convert_dir(DIR)` turns an output folder's `violations.jsonl`,
  `actions.jsonl`, `standing.jsonl`, `review_queue.jsonl`,
  `dead_letter.jsonl` and `incentives.jsonl` into `KIND.parquet` beside them
  (`shopguard report DIR --to-parquet`). Polars streams the rows through;
  only the free-form column is read once first, to learn its struct.
- `ParquetBatchWriter(path, kind)` takes batches of records as the job
  produces them (`write(records)`, then `close()`) and streams them into one
  Parquet file in row groups; no Bytewax import, so a sink can wrap it.

The columns are the wire contract's fields in contract order (`SCHEMAS`).
Times are real timestamps, `Datetime("ms", "UTC")`, not integers. The
free-form column of a kind (`evidence` of a violation, `features` of a
review entry) is a struct whose fields are every key seen in it, so
`pl.col("evidence").struct.field("listings")` works; `education` is a
struct and the id lists are lists of strings. Read a month of files with
`pl.scan_parquet("out/violations*.parquet")`; `shopguard report` does so.

Example
-------
>>> import tempfile, polars as pl
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "actions.parquet"
>>> with ParquetBatchWriter(path, kind="actions") as w:
...     w.write([{"action_id": "a-1", "actor": "seller:S1", "action": "warning", "active_points": 4,
...               "violation_ids": ["v-1"], "ts": 1000, "reason": "listing_spam: warning"}])
>>> pl.read_parquet(path).select("actor", "violation_ids", "ts").rows()
[('seller:S1', ['v-1'], datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=zoneinfo.ZoneInfo(key='UTC')))]
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
TIMESTAMP = pl.Datetime("ms", "UTC")
S, I, F, B, STRINGS = pl.String, pl.Int64, pl.Float64, pl.Boolean, pl.List(pl.String)

# Each kind as the JSONL files hold it (field order of pipeline/contract/records.py): times are
# integer milliseconds and the free-form column is read as JSON text.
JSON_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "violations": {"violation_id": S, "actor": S, "violation_type": S, "policy_id": S, "severity": S, "points": I,
                   "detector": S, "confidence": F, "detected_at": I, "window_start": I, "window_end": I,
                   "evidence": S, "explanation": S, "education": EDUCATION, "enforced": B},
    "actions": {"action_id": S, "actor": S, "action": S, "active_points": I, "violation_ids": STRINGS, "ts": I,
                "reason": S},
    "standing": {"actor": S, "active_points": I, "level": S, "health": I, "restrictions": STRINGS, "ts": I,
                 "under_appeal": STRINGS},
    "review_queue": {"actor": S, "score": F, "model": S, "features": S, "ts": I},
    "dead_letter": {"raw": S, "error": S, "source": S, "ts": I, "reason": S},
    "incentives": {"incentive_id": S, "actor": S, "program": S, "change": S, "reason": S, "ts": I,
                   "violation_id": S, "appeal_id": S, "shadow": B},
}
KINDS = tuple(JSON_SCHEMAS)
TIME_COLUMNS = {"violations": ("detected_at", "window_start", "window_end"), "actions": ("ts",),
                "standing": ("ts",), "review_queue": ("ts",), "dead_letter": ("ts",), "incentives": ("ts",)}
# Fields the JSONL leaves out when they hold their default (`omit_defaults` records): the default again.
DEFAULTS = {"incentives": {"violation_id": "", "appeal_id": "", "shadow": False}}
# The column whose keys differ from record to record: a struct of every key seen.
FREE_FORM = {"violations": "evidence", "review_queue": "features"}
# A free-form column that never had a key (every record `{}`): Parquet cannot store a struct without fields.
NO_KEYS = pl.Struct({"_no_keys": pl.Boolean})


def schema(kind: str, free_form: pl.DataType | None = None) -> pl.Schema:
    """The Parquet columns of `kind`; `free_form` is the struct of its free-form column (if it has one)."""
    columns = dict(JSON_SCHEMAS[kind])
    for column in TIME_COLUMNS[kind]:
        columns[column] = TIMESTAMP
    if kind in FREE_FORM:
        columns[FREE_FORM[kind]] = free_form or NO_KEYS
    return pl.Schema(columns)


SCHEMAS: dict[str, pl.Schema] = {kind: schema(kind) for kind in KINDS}


def struct_of(json_texts: pl.Series) -> pl.DataType:
    """The struct holding every key of a column of JSON objects (NO_KEYS when none has one)."""
    texts = json_texts.drop_nulls()
    if texts.is_empty():
        return NO_KEYS
    dtype = texts.str.json_decode(infer_schema_length=None).dtype
    return dtype if isinstance(dtype, pl.Struct) and dtype.fields else NO_KEYS


def as_parquet_columns(frame: pl.LazyFrame, kind: str, free_form: pl.DataType | None) -> pl.LazyFrame:
    """JSONL columns to Parquet ones: integer ms to timestamps, JSON text to the struct."""
    casts = [pl.col(c).cast(TIMESTAMP) for c in TIME_COLUMNS[kind]]
    casts += [pl.col(c).fill_null(default) for c, default in DEFAULTS.get(kind, {}).items()]
    if kind in FREE_FORM:
        column = FREE_FORM[kind]
        casts.append(pl.col(column).str.json_decode(free_form) if free_form != NO_KEYS
                     else pl.lit(None, NO_KEYS).alias(column))
    return frame.with_columns(casts)


def convert_dir(out_dir: str | Path, kinds: Iterable[str] = KINDS) -> dict[str, int]:
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
        rows = scan_jsonl(source, JSON_SCHEMAS[kind])
        free_form = None
        if kind in FREE_FORM:
            free_form = struct_of(rows.select(FREE_FORM[kind]).collect().to_series())
        target = out_dir / f"{kind}.parquet"
        partial = target.with_name(target.name + ".partial")
        as_parquet_columns(rows, kind, free_form).sink_parquet(partial)
        os.replace(partial, target)
        written[target.name] = pl.scan_parquet(target).select(pl.len()).collect().item()
    return written


def to_frame(records: Iterable[Any], kind: str, free_form: pl.DataType | None = None) -> pl.DataFrame:
    """Records (dicts or msgspec structs) as a DataFrame of `schema(kind, free_form)`.

    Fields outside the schema (later contract extensions) are left out.
    """
    encode = msgspec.json.Encoder().encode
    column = FREE_FORM.get(kind)
    rows = []
    for record in records:
        row = dict(record if isinstance(record, dict) else msgspec.to_builtins(record))
        if column and not isinstance(row.get(column), (str, type(None))):
            row[column] = encode(row[column]).decode()
        rows.append(row)
    frame = pl.from_dicts(rows, schema=JSON_SCHEMAS[kind]) if rows else pl.DataFrame(schema=JSON_SCHEMAS[kind])
    return as_parquet_columns(frame.lazy(), kind, free_form).collect()


class ParquetBatchWriter:
    """Streams batches of violations or actions into one Parquet file.

    Parameters
    ----------
    path
        The Parquet file to write. Rows go to `PATH.partial` while the writer
        is open; `close()` finishes the file and renames it to `path`, so a
        reader never opens a file without its footer.
    kind
        Which output (a key of `SCHEMAS`). The struct of its free-form column
        (`evidence`, `features`) is learned from the first batch written; a
        later record with a key outside it is refused (start a new file).
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
        self._row_group_size = row_group_size
        self._free_form: pl.DataType | None = None
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._queue: queue.Queue[pl.DataFrame | None] = queue.Queue(maxsize=max_pending_batches)
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None  # started by the first batch, which fixes the schema

    def _start(self, free_form: pl.DataType | None) -> None:
        self._free_form = free_form
        frames = register_io_source(self._batches, schema=schema(self.kind, free_form))
        self._thread = threading.Thread(target=self._sink, args=(frames, self._row_group_size),
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
        column = FREE_FORM.get(self.kind)
        if self._thread is None:
            self._start(struct_of(_json_texts(records, column)) if column else None)
        if column:
            self._check_keys(records, column)
        frame = to_frame(records, self.kind, self._free_form)
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
        if self._thread is None:  # nothing written: an empty file of the kind's columns
            self._start(None)
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

    def _check_keys(self, records: list[Any], column: str) -> None:
        """Refuse keys the file's struct lacks: Polars would drop them without a word."""
        known = {f.name for f in self._free_form.fields}
        for record in records:
            extra = set(_field(record, column) or {}) - known
            if extra:
                raise ValueError(f"{self.path}: `{column}` key {sorted(extra)[0]!r} is not in this file's columns "
                                 f"(learned from its first batch): write it to a new file")

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


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name)


def _json_texts(records: list[Any], column: str) -> pl.Series:
    return pl.Series([msgspec.json.encode(_field(r, column)).decode() for r in records], dtype=pl.String)
