"""CSV exports of the workbench's lists (`?format=csv` on every list page).

A cell that a spreadsheet would read as a formula (it starts with `=`, `+`,
`-`, `@`, a tab or a carriage return) is prefixed with `'`: seller-written
text such as an appeal reason must not run as a formula on a reviewer's
machine (OWASP, "CSV injection").
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, Iterator

from starlette.responses import StreamingResponse

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_EXPORT_ROWS = 100_000


def cell(value: Any) -> str:
    """One CSV cell: lists and objects as JSON, formulas defused.

    >>> cell("=HYPERLINK(\\"http://x\\")"), cell(-3), cell(["a", 1]), cell(None)
    ('\\'=HYPERLINK("http://x")', '-3', '["a", 1]', '')
    """
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_lines(columns: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for n, row in enumerate(rows):
        if n >= MAX_EXPORT_ROWS:
            break
        writer.writerow([cell(row.get(c)) for c in columns])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_response(name: str, columns: list[str], rows: Iterable[dict[str, Any]]) -> StreamingResponse:
    """A download of `rows` (at most `MAX_EXPORT_ROWS`), streamed as it is read."""
    return StreamingResponse(csv_lines(columns, rows), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": f'attachment; filename="{name}.csv"'})


def paged(fetch, page_size: int = 5000) -> Iterator[dict[str, Any]]:
    """Every row of a list read page by page: `fetch(offset, limit)` returns one page."""
    offset = 0
    while True:
        rows = fetch(offset, page_size)
        yield from rows
        if len(rows) < page_size:
            return
        offset += page_size
