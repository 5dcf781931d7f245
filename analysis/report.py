"""`shopguard report DIR`: an analyst's summary of an output folder, computed with Polars.

    shopguard report out/ [--labels labels.jsonl] [--events events.jsonl] [--json] [--top N] [--to-parquet]

Reads the output files of the wire contract with lazy Polars scans, parsing
only the columns it needs, and prints:

- violations by type, detector, severity, and enforced or shadow;
- enforcement actions by kind;
- the top actors by points (the sum of `points` of their *enforced*
  violations) with their latest standing (`active_points`, `level`,
  `health`) when `standing.jsonl` is there;
- actors by latest standing level; dead letters by reason; the review queue
  by model.

With `--labels` (the simulator's `labels.jsonl`, `{actor, violation_type,
evidence_ts}`) it also scores the violations exactly as `analysis.scoring`
does: per type, precision and recall over distinct (actor, type) pairs
(shadow violations count: they are what the detector found), the median and
p90 time to detect (first `detected_at` of the pair minus `evidence_ts`, in
seconds; p90 is the nearest-rank value `sorted[min(n-1, int(0.9*n))]`), the
distribution of time to detect over all found pairs, and honest actors
wrongly flagged per 10,000.

Honest actors: the actors the report can see that are labelled for no type.
"The actors it can see" is the denominator of the per-10,000 rate:

- with `--events EVENTS.jsonl`: every actor in the events (`seller:` +
  `seller_id`, `creator:` + `creator_id`, and `actor`), plus anyone in the
  outputs or labels;
- without it: the actors in the outputs (violations, actions, review queue,
  standing) plus the labelled actors. That set leaves out the honest actors
  the job never touched, so the rate would only be an upper bound: the report
  gives the counts, leaves `flagged_per_10k` null and says to pass `--events`.

A negative time to detect means the pair was found before the labelled
evidence (the detector had enough before the label's `evidence_ts`); the
first bucket counts those, and a note says so.

`--html FILE` writes the same report as one self-contained HTML page with
plots (`analysis.report_html`).

An honest actor is "flagged" when it has any violation (enforced or shadow);
`flagged_enforced` counts those with an enforced one. An actor labelled for
one type and flagged for another is not honest: that shows up as a false
positive in that type's precision instead.

For each output kind the report reads `KIND*.parquet` (e.g. from
`--to-parquet` or a Parquet sink) instead of `KIND.jsonl` when the Parquet
files are at least as new as the JSONL file, else the JSONL file. A JSONL
file whose last line is cut short (a job still writing) is read up to its
last newline.

`--json` prints one JSON object whose keys are always present (times in
seconds; `time_to_detect` and `quality` are null without labels):

- `schema_version` (1), `dir`, `missing` (file names), `notes` (sentences);
- `files`: per kind `{file, status: ok|empty|missing, format: jsonl|parquet|null, paths, rows}`;
- `violations`: `{total, enforced, shadow, actors, by_type: [{violation_type, count,
  enforced, shadow, actors}], by_detector: [{detector, count, actors}],
  by_severity: [{severity, count, actors}]}`;
- `actions`: `{total, by_kind: [{action, count, actors}]}`;
- `top_actors`: `[{actor, points, violations, active_points, level, health}]`;
- `standing`: `{actors, by_level: [{level, actors}]}`;
- `dead_letters`: `{total, by_reason: [{reason, count, example_error}]}`;
- `review_queue`: `{total, actors, by_model: [{model, count, actors, max_score}]}`;
- `time_to_detect`: `{count, min_s, median_s, p90_s, p99_s, max_s, buckets: [{bucket, count}]}`;
- `quality`: `{labels, per_type: [{violation_type, labelled, flagged,
  true_positives, precision, recall, median_ttd_s, p90_ttd_s}], overall:
  {labelled, flagged, true_positives, precision, recall}, honest: {actors,
  flagged, flagged_enforced, flagged_per_10k, denominator: events|outputs_and_labels,
  examples}}`.

An empty folder (or missing files) is reported, not an error; only a folder
that does not exist, or a labels/events file that does not, exits 2.

Example
-------
>>> import tempfile
>>> from pathlib import Path
>>> out = Path(tempfile.mkdtemp())
>>> _ = (out / "violations.jsonl").write_text(
...     '{"actor": "seller:S1", "violation_type": "listing_spam", "detector": "listing_spam_v1",'
...     ' "severity": "minor", "points": 4, "enforced": true, "detected_at": 1000}\\n')
>>> report = build_report(out)
>>> report["violations"]["total"], report["top_actors"][0]["actor"], report["missing"][0]
(1, 'seller:S1', 'actions.jsonl')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import polars as pl

from sinks.files import scan_jsonl

SCHEMA_VERSION = 1
OUTPUT_KINDS = ("violations", "actions", "review_queue", "standing", "dead_letter")
RUN_FIRST = "run `shopguard replay EVENTS --out DIR` or `shopguard run --out DIR` first"

S, I, F, B = pl.String, pl.Int64, pl.Float64, pl.Boolean
# The columns the report reads from each output file; a scan parses only these.
COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "violations": {"actor": S, "violation_type": S, "detector": S, "severity": S, "points": I,
                   "enforced": B, "detected_at": I},
    "actions": {"actor": S, "action": S},
    "review_queue": {"actor": S, "model": S, "score": F},
    "standing": {"actor": S, "active_points": I, "level": S, "health": I, "ts": I},
    "dead_letter": {"reason": S, "error": S},
}
# Incentive changes (issue 19): read when the folder has them (output folders from before have none).
INCENTIVE_COLUMNS = {"actor": S, "program": S, "change": S, "shadow": B}
LABEL_COLUMNS = {"actor": S, "violation_type": S, "evidence_ts": I}
EVENT_ACTOR_COLUMNS = {"seller_id": S, "creator_id": S, "actor": S}
ACTOR_ROLES = ("seller:", "creator:")

# Time-to-detect buckets: (label, upper bound in seconds, exclusive).
TTD_BUCKETS: tuple[tuple[str, float], ...] = (
    ("found before the labelled evidence", 0.0), ("0-10 s", 10.0), ("10-60 s", 60.0), ("1-5 min", 300.0),
    ("5-15 min", 900.0), ("15-60 min", 3600.0), (">= 1 h", math.inf),
)


# ---- reading the folder ---------------------------------------------------------------------


@dataclass
class Source:
    """Where one output kind is read from: JSONL, Parquet, or nothing."""

    kind: str
    paths: list[Path] = field(default_factory=list)
    format: str | None = None  # "jsonl" | "parquet" | None when missing

    @property
    def file_name(self) -> str:
        return f"{self.kind}.jsonl"


def locate(out_dir: Path, kind: str) -> Source:
    """The freshest copy of `kind` in `out_dir`: Parquet if at least as new as the JSONL."""
    jsonl = out_dir / f"{kind}.jsonl"
    parquet = sorted(p for p in out_dir.glob(f"{kind}*.parquet") if p.is_file())
    has_jsonl = jsonl.is_file()
    if parquet and (not has_jsonl or max(p.stat().st_mtime for p in parquet) >= jsonl.stat().st_mtime):
        return Source(kind, parquet, "parquet")
    if has_jsonl:
        return Source(kind, [jsonl], "jsonl")
    return Source(kind)


def scan(source: Source, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """A lazy frame of `schema`'s columns; empty when the source is missing."""
    if source.format == "parquet":
        frame = pl.scan_parquet(source.paths, missing_columns="insert", extra_columns="ignore")
        return frame.select(pl.col(c).cast(t) for c, t in schema.items())
    if source.format == "jsonl":
        return scan_jsonl(source.paths[0], schema)
    return pl.LazyFrame(schema=schema)


def scan_event_actors(path: Path) -> pl.LazyFrame:
    """Distinct actor references (`seller:…`, `creator:…`) that appear in an events file.

    Malformed lines (the pipeline dead-letters them) are skipped: the fast
    NDJSON scan is tried first, then a line-by-line JSON-path read.
    """
    def refs(frame: pl.LazyFrame) -> pl.LazyFrame:
        actors = pl.concat([
            frame.select(actor=pl.concat_str(pl.lit("seller:"), pl.col("seller_id"))),
            frame.select(actor=pl.concat_str(pl.lit("creator:"), pl.col("creator_id"))),
            frame.select(actor=pl.col("actor")),
        ])
        return actors.drop_nulls().filter(pl.col("actor").str.starts_with(ACTOR_ROLES[0])
                                          | pl.col("actor").str.starts_with(ACTOR_ROLES[1])).unique()

    try:
        return refs(pl.scan_ndjson(path, schema=EVENT_ACTOR_COLUMNS, ignore_errors=True)).collect().lazy()
    except pl.exceptions.PolarsError:
        lines = pl.scan_csv(path, has_header=False, separator="\x1f", quote_char=None, schema={"line": S})
        fields = lines.select(**{c: pl.col("line").str.json_path_match(f"$.{c}") for c in EVENT_ACTOR_COLUMNS})
        return refs(fields).collect().lazy()


# ---- Polars expressions for the scoring definitions of analysis.scoring -------------------------


def nearest_rank(values: pl.Expr, q: float) -> pl.Expr:
    """`sorted(values)[min(n-1, int(q*n))]`, null when empty (analysis.scoring's p90)."""
    ordered = values.drop_nulls().sort()
    n = ordered.len()
    return ordered.get(pl.min_horizontal(n - 1, (n * q).floor()).cast(pl.Int64), null_on_oob=True)


def middle_values(values: pl.Expr, name: str) -> list[pl.Expr]:
    """The two middle values (the same one when the count is odd), as `NAME_lo`, `NAME_hi`.

    `median_s` turns them into statistics.median's result. Delays stay integer
    milliseconds inside Polars and become seconds in Python, because Polars
    divides by a constant through its reciprocal, which can differ from
    `ms / 1000.0` in the last digit, and the report must equal analysis.scoring.
    """
    ordered = values.drop_nulls().sort()
    n = ordered.len().cast(pl.Int64)
    return [ordered.get((n - 1) // 2, null_on_oob=True).alias(f"{name}_lo"),
            ordered.get(n // 2, null_on_oob=True).alias(f"{name}_hi")]


def ms_to_s(ms: int | None) -> float | None:
    """Milliseconds to seconds exactly as analysis.scoring does."""
    return None if ms is None else ms / 1000.0


def median_s(row: dict[str, Any], name: str) -> float | None:
    """statistics.median of seconds from the two middle millisecond values; pops them from `row`."""
    lo, hi = ms_to_s(row.pop(f"{name}_lo")), ms_to_s(row.pop(f"{name}_hi"))
    return None if lo is None else (lo + hi) / 2


def ratio_or_one(numerator: str, denominator: str) -> pl.Expr:
    """analysis.scoring's precision and recall: 1.0 when nothing was flagged or labelled."""
    return pl.when(pl.col(denominator) > 0).then(pl.col(numerator) / pl.col(denominator)).otherwise(1.0)


def _counts(frame: pl.LazyFrame, by: str, *, actors: bool = True, **extra: pl.Expr) -> pl.LazyFrame:
    """Rows per value of `by` (and distinct actors), largest first, ties by name."""
    aggs: dict[str, pl.Expr] = {"count": pl.len(), **extra}
    if actors:
        aggs["actors"] = pl.col("actor").n_unique()
    return frame.group_by(by).agg(**aggs).sort(["count", by], descending=[True, False], nulls_last=True)


# ---- the report ---------------------------------------------------------------------------------


def build_report(out_dir: str | Path, labels: str | Path | None = None, events: str | Path | None = None,
                 top: int = 10) -> dict[str, Any]:
    """The whole report as plain data (what `--json` prints). `out_dir` must exist."""
    out_dir = Path(out_dir)
    sources = {kind: locate(out_dir, kind) for kind in OUTPUT_KINDS}
    # Three passes, each one collect_all: parse each file once (JSON parsing is most of the
    # cost), then the per-actor and per-pair tables several answers share, then the answers.
    frames = _materialise({kind: scan(sources[kind], COLUMNS[kind]) for kind in OUTPUT_KINDS})
    incentives = scan(locate(out_dir, "incentives"), INCENTIVE_COLUMNS).with_columns(
        pl.col("shadow").fill_null(False))
    v, standing = frames["violations"], frames["standing"]
    enforced = pl.col("enforced")
    shared = {
        "per_actor": v.group_by("actor").agg(points=pl.col("points").filter(enforced).sum(),
                                             violations=enforced.sum(), any_enforced=enforced.any()),
        # the last standing of each actor: its largest ts, and of equal ts the last line
        "latest": (standing.filter(pl.col("ts") == pl.col("ts").max().over("actor"))
                   .group_by("actor").last().drop("ts")),
    }
    if labels is not None:
        shared.update(_quality_tables(frames, Path(labels), Path(events) if events else None))
    shared = _materialise(shared)
    latest = shared["latest"]

    queries: dict[str, pl.LazyFrame] = {
        **{f"rows_{kind}": frames[kind].select(rows=pl.len()) for kind in OUTPUT_KINDS},
        "v_totals": v.select(total=pl.len(), enforced=enforced.sum(), shadow=(~enforced).sum(),
                             actors=pl.col("actor").n_unique()),
        "v_by_type": _counts(v, "violation_type", enforced=enforced.sum(), shadow=(~enforced).sum()),
        "v_by_detector": _counts(v, "detector"),
        "v_by_severity": _counts(v, "severity"),
        "actions_by_kind": _counts(frames["actions"], "action"),
        "top_actors": (shared["per_actor"].filter(pl.col("violations") > 0).drop("any_enforced")
                       .sort(["points", "actor"], descending=[True, False]).head(top)
                       .join(latest, on="actor", how="left", maintain_order="left")),
        "standing_by_level": (latest.group_by("level").agg(actors=pl.len())
                              .sort(["actors", "level"], descending=[True, False])),
        "dead_by_reason": _counts(frames["dead_letter"].with_columns(pl.col("reason").fill_null("unlabelled")),
                                  "reason", actors=False, example_error=pl.col("error").first()),
        "review_totals": frames["review_queue"].select(total=pl.len(), actors=pl.col("actor").n_unique()),
        "review_by_model": _counts(frames["review_queue"], "model", max_score=pl.col("score").max()),
        "incentives_by_program": _incentives_by_program(incentives),
    }
    if labels is not None:
        queries.update(_quality_queries(shared))
    results = dict(zip(queries, pl.collect_all(list(queries.values()))))

    def rows(name: str) -> list[dict[str, Any]]:
        return results[name].to_dicts()

    def one(name: str) -> dict[str, Any]:
        return results[name].to_dicts()[0]

    files = {kind: _file_entry(sources[kind], one(f"rows_{kind}")["rows"]) for kind in OUTPUT_KINDS}
    missing = [sources[k].file_name for k in OUTPUT_KINDS if sources[k].format is None]
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "dir": str(out_dir),
        "files": files,
        "missing": missing,
        "notes": [],
        "violations": {**one("v_totals"), "by_type": rows("v_by_type"), "by_detector": rows("v_by_detector"),
                       "by_severity": rows("v_by_severity")},
        "actions": {"total": files["actions"]["rows"], "by_kind": rows("actions_by_kind")},
        "top_actors": rows("top_actors"),
        "standing": {"actors": sum(r["actors"] for r in rows("standing_by_level")),
                     "by_level": rows("standing_by_level")},
        "dead_letters": {"total": files["dead_letter"]["rows"], "by_reason": rows("dead_by_reason")},
        "review_queue": {**one("review_totals"), "by_model": rows("review_by_model")},
        "incentives": {"changes": sum(r["granted"] + r["revoked"] + r["restored"]
                                      for r in rows("incentives_by_program")),
                       "by_program": rows("incentives_by_program")},
        "time_to_detect": None,
        "quality": None,
    }
    if labels is not None:
        report["time_to_detect"] = _ttd_section(one("ttd"), rows("ttd_buckets"))
        report["quality"] = _quality_section(results, Path(labels), events)
    report["notes"] = _notes(report)
    return report


def _incentives_by_program(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Grants, revocations and restorations per program; holders now (each change toggles one actor's hold)."""
    change = pl.col("change")
    return (frame.group_by("program", "shadow")
            .agg(granted=(change == "granted").sum(), revoked=(change == "revoked").sum(),
                 restored=(change == "restored").sum(), actors=pl.col("actor").n_unique())
            .with_columns(holding=pl.col("granted") + pl.col("restored") - pl.col("revoked"))
            .sort("program"))


def _file_entry(source: Source, rows: int) -> dict[str, Any]:
    status = "missing" if source.format is None else ("empty" if rows == 0 else "ok")
    return {"file": source.file_name, "status": status, "format": source.format,
            "paths": [str(p) for p in source.paths], "rows": rows}


def _materialise(frames: dict[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """Run the plans together once; hand back their results as lazy frames to build on."""
    return {name: frame.lazy() for name, frame in zip(frames, pl.collect_all(list(frames.values())))}


def _quality_tables(frames: dict[str, pl.LazyFrame], labels_path: Path,
                    events_path: Path | None) -> dict[str, pl.LazyFrame]:
    """The (actor, type) pairs labelled or flagged, and the honest actors (analysis.scoring's definitions)."""
    v = frames["violations"]
    pair = ["actor", "violation_type"]
    # Like scoring's dict of labels: a repeated (actor, type) keeps its last evidence_ts.
    labels = scan_jsonl(labels_path, LABEL_COLUMNS).unique(pair, keep="last", maintain_order=True)
    found = v.group_by(pair).agg(first_detected=pl.col("detected_at").min())
    pairs = (labels.with_columns(labelled=pl.lit(True))
             .join(found.with_columns(flagged=pl.lit(True)), on=pair, how="full", coalesce=True)
             .with_columns(pl.col("labelled", "flagged").fill_null(False))
             .with_columns(delay_ms=pl.when(pl.col("labelled") & pl.col("flagged"))
                           .then(pl.col("first_detected") - pl.col("evidence_ts"))))
    labelled_actors = labels.select("actor").unique()
    seen = [frames[k].select("actor") for k in ("violations", "actions", "review_queue", "standing")]
    seen.append(labelled_actors)
    if events_path is not None:
        seen.append(scan_event_actors(events_path))
    honest = pl.concat(seen).drop_nulls().unique().join(labelled_actors, on="actor", how="anti")
    return {"pairs": pairs, "honest": honest}


def _quality_queries(shared: dict[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """Per-type precision, recall and time to detect; its distribution; honest actors flagged."""
    pairs, delay = shared["pairs"], pl.col("delay_ms")
    found = pl.col("labelled") & pl.col("flagged")
    per_type = (pairs.group_by("violation_type")
                .agg(labelled=pl.col("labelled").sum(), flagged=pl.col("flagged").sum(),
                     true_positives=found.sum(), *middle_values(delay, "median"),
                     p90_ms=nearest_rank(delay, 0.9))
                .with_columns(precision=ratio_or_one("true_positives", "flagged"),
                              recall=ratio_or_one("true_positives", "labelled"))
                .select("violation_type", "labelled", "flagged", "true_positives", "precision", "recall",
                        "median_lo", "median_hi", "p90_ms")
                .sort("violation_type"))
    overall = (pairs.select(labelled=pl.col("labelled").sum(), flagged=pl.col("flagged").sum(),
                            true_positives=found.sum())
               .with_columns(precision=ratio_or_one("true_positives", "flagged"),
                             recall=ratio_or_one("true_positives", "labelled")))
    ttd = pairs.select(delay.count().alias("count"), delay.min().alias("min_ms"), *middle_values(delay, "median"),
                       p90_ms=nearest_rank(delay, 0.9), p99_ms=nearest_rank(delay, 0.99), max_ms=delay.max())
    bucket = pl.lit(TTD_BUCKETS[-1][0])
    for name, upper in reversed(TTD_BUCKETS[:-1]):
        bucket = pl.when(delay < upper * 1000).then(pl.lit(name)).otherwise(bucket)
    buckets = pairs.filter(delay.is_not_null()).group_by(bucket.alias("bucket")).agg(count=pl.len())
    honest_flagged = (shared["honest"].join(shared["per_actor"], on="actor", how="inner")
                      .select("actor", enforced="any_enforced").sort("actor"))
    return {
        "per_type": per_type, "overall": overall, "ttd": ttd, "ttd_buckets": buckets,
        "honest_count": shared["honest"].select(actors=pl.len()), "honest_flagged": honest_flagged,
    }


def _ttd_section(summary: dict[str, Any], buckets: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {b["bucket"]: b["count"] for b in buckets}
    return {"count": summary["count"], "min_s": ms_to_s(summary["min_ms"]), "median_s": median_s(summary, "median"),
            "p90_s": ms_to_s(summary["p90_ms"]), "p99_s": ms_to_s(summary["p99_ms"]),
            "max_s": ms_to_s(summary["max_ms"]),
            "buckets": [{"bucket": name, "count": counts.get(name, 0)} for name, _ in TTD_BUCKETS]}


def _per_type_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: row[k] for k in ("violation_type", "labelled", "flagged", "true_positives", "precision",
                                   "recall")},
            "median_ttd_s": median_s(row, "median"), "p90_ttd_s": ms_to_s(row["p90_ms"])}


def _quality_section(results: dict[str, pl.DataFrame], labels_path: Path, events: Any) -> dict[str, Any]:
    honest_actors = results["honest_count"].item()
    flagged = results["honest_flagged"]
    n_flagged = flagged.height
    return {
        "labels": str(labels_path),
        "per_type": [_per_type_row(r) for r in results["per_type"].to_dicts()],
        "overall": results["overall"].to_dicts()[0],
        "honest": {
            "actors": honest_actors,
            "flagged": n_flagged,
            "flagged_enforced": int(flagged["enforced"].sum()),
            # Only over every actor in the events: over the outputs and labels alone the honest actors
            # the job never touched are left out, and the rate would be an upper bound, not the figure.
            "flagged_per_10k": (n_flagged / honest_actors * 10_000) if honest_actors and events else None,
            "denominator": "events" if events else "outputs_and_labels",
            "examples": flagged["actor"].head(10).to_list(),
        },
    }


def _notes(report: dict[str, Any]) -> list[str]:
    """Plain sentences about what is missing or how to read a number."""
    notes = []
    files = report["files"]
    if all(f["status"] == "missing" for f in files.values()):
        return [f"no outputs in {report['dir']}: run `shopguard replay` or `shopguard run` first"]
    if all(f["status"] != "ok" for f in files.values()):
        notes.append(f"no records in {report['dir']}: every output file is empty or missing")
    if report["missing"]:
        notes.append("missing: " + ", ".join(report["missing"]) + " (counted as zero)")
    if report["quality"] is None:
        notes.append("no labels: pass --labels labels.jsonl for precision, recall and time to detect")
    else:
        if report["quality"]["honest"]["denominator"] == "outputs_and_labels":
            notes.append("honest actors wrongly flagged per 10,000: pass --events EVENTS.jsonl to compute it "
                         "(the outputs and labels alone leave out the honest actors the job never touched)")
        early = report["time_to_detect"]["buckets"][0]["count"]
        if early:
            notes.append(f"{early:,} found pairs have a negative time to detect: found before the labelled "
                         "evidence (the detector had enough before the label's evidence_ts)")
    return notes


# ---- text for people ----------------------------------------------------------------------------

Column = tuple[str, str, Callable[[Any], str] | None]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(rows: list[dict[str, Any]], columns: Sequence[Column], indent: str = "  ") -> list[str]:
    """Aligned plain-text rows: text left, numbers right; '(none)' for no rows."""
    if not rows:
        return [indent + "(none)"]
    cells = [[(fmt or _fmt)(r.get(key)) for key, _, fmt in columns] for r in rows]
    numeric = [all(isinstance(r.get(key), (int, float)) or r.get(key) is None for r in rows)
               for key, _, _ in columns]
    widths = [max(len(header), *(len(c[i]) for c in cells)) for i, (_, header, _) in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return (indent + "  ".join(parts)).rstrip()

    return [line([h for _, h, _ in columns]), *(line(c) for c in cells)]


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned plain text."""
    out: list[str] = [f"shopguard report: {report['dir']}"]
    for kind, f in report["files"].items():
        where = ", ".join(Path(p).name for p in f["paths"]) or f["file"]
        state = {"missing": "missing", "empty": "empty"}.get(f["status"], f"{f['rows']:,} rows")
        out.append(f"  {where:<28}{state}")
    out += [f"note: {n}" for n in report["notes"]]
    if not any(f["format"] for f in report["files"].values()):
        return "\n".join(out) + "\n"  # nothing to summarise: the note says what to run

    v = report["violations"]
    out += ["", f"Violations: {v['total']:,} ({v['enforced']:,} enforced, {v['shadow']:,} shadow) "
                f"on {v['actors']:,} actors"]
    out += table(v["by_type"], [("violation_type", "type", None), ("count", "count", None),
                                ("enforced", "enforced", None), ("shadow", "shadow", None),
                                ("actors", "actors", None)])
    out += ["", "By detector"] + table(v["by_detector"], [("detector", "detector", None), ("count", "count", None),
                                                          ("actors", "actors", None)])
    out += ["", "By severity"] + table(v["by_severity"], [("severity", "severity", None), ("count", "count", None),
                                                          ("actors", "actors", None)])
    a = report["actions"]
    out += ["", f"Actions: {a['total']:,}"] + table(a["by_kind"], [("action", "action", None),
                                                                 ("count", "count", None), ("actors", "actors", None)])
    out += ["", "Top actors by points (enforced violations)"]
    out += table(report["top_actors"], [("actor", "actor", None), ("points", "points", None),
                                        ("violations", "violations", None), ("active_points", "active now", None),
                                        ("level", "level", None), ("health", "health", None)])
    st = report["standing"]
    out += ["", f"Standing: {st['actors']:,} actors"] + table(st["by_level"], [("level", "level", None),
                                                                             ("actors", "actors", None)])
    d = report["dead_letters"]
    out += ["", f"Dead letters: {d['total']:,}"] + table(d["by_reason"], [("reason", "reason", None),
                                                                        ("count", "count", None),
                                                                        ("example_error", "example", None)])
    r = report["review_queue"]
    out += ["", f"Review queue: {r['total']:,} entries on {r['actors']:,} actors"]
    out += table(r["by_model"], [("model", "model", None), ("count", "count", None), ("actors", "actors", None),
                                 ("max_score", "max score", None)])
    inc = report["incentives"]
    out += ["", f"Incentives: {inc['changes']:,} changes (incentives.jsonl; shadow programs marked)"]
    out += table([{**r, "program": r["program"] + (" (shadow)" if r["shadow"] else "")} for r in inc["by_program"]],
                 [("program", "program", None), ("holding", "holding now", None), ("granted", "granted", None),
                  ("revoked", "revoked", None), ("restored", "restored", None), ("actors", "actors", None)])
    out += ["", *_format_quality(report)]
    return "\n".join(out) + "\n"


def honest_line(h: dict[str, Any]) -> str:
    """One sentence on honest actors wrongly flagged; the rate only when it was computed (`--events`)."""
    counts = f"{h['flagged']:,} honest actors wrongly flagged ({h['flagged_enforced']:,} enforced)"
    if h["flagged_per_10k"] is None:
        return f"{counts}; per 10,000: pass --events EVENTS.jsonl to compute it"
    return f"{counts} of {h['actors']:,} in the events = {h['flagged_per_10k']:,.1f} per 10,000"


def _format_quality(report: dict[str, Any]) -> list[str]:
    ttd, q = report["time_to_detect"], report["quality"]
    if q is None:
        return ["Time to detect, precision, recall: need --labels"]
    out = [f"Time to detect (s) over {ttd['count']:,} found pairs: min {_seconds(ttd['min_s'])}, "
           f"median {_seconds(ttd['median_s'])}, p90 {_seconds(ttd['p90_s'])}, p99 {_seconds(ttd['p99_s'])}, "
           f"max {_seconds(ttd['max_s'])}"]
    out += table(ttd["buckets"], [("bucket", "time to detect", None), ("count", "pairs", None)])
    out += ["", f"Precision and recall (labels: {q['labels']})"]
    o = q["overall"]
    overall = {"violation_type": "(all types)", **o, "median_ttd_s": ttd["median_s"], "p90_ttd_s": ttd["p90_s"]}
    out += table([*q["per_type"], overall],
                 [("violation_type", "type", None), ("labelled", "labelled", None), ("flagged", "flagged", None),
                  ("true_positives", "found", None), ("precision", "precision", None), ("recall", "recall", None),
                  ("median_ttd_s", "median TTD s", _seconds), ("p90_ttd_s", "p90 TTD s", _seconds)])
    out += ["", honest_line(q["honest"])]
    if q["honest"]["examples"]:
        out.append("  e.g. " + ", ".join(q["honest"]["examples"]))
    return out
