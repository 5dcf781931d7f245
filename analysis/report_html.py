"""`shopguard report DIR --html FILE`: the analyst's report as one self-contained HTML page.

The page holds the numbers of `analysis.report.build_report` and five plots
drawn with matplotlib: violations over time by type, precision and recall per
type (with `--labels`), the time-to-detect distribution, the actions of the
enforcement ladder, and dead letters by reason. Each plot is an SVG inlined as
a `data:` image, and the style sheet is inline: the page loads nothing from
anywhere, so it can be mailed or archived as one file.

Example
-------
>>> import tempfile
>>> from pathlib import Path
>>> from analysis.report import build_report
>>> out = Path(tempfile.mkdtemp())
>>> _ = (out / "violations.jsonl").write_text(
...     '{"actor": "seller:S1", "violation_type": "listing_spam", "detector": "listing_spam_v1",'
...     ' "severity": "low", "points": 2, "enforced": true, "detected_at": 1000}\\n')
>>> page = render_html(build_report(out), violations_over_time(out))
>>> page.startswith("<!DOCTYPE html>") and 'src="http' not in page
True
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Callable

import polars as pl

from analysis.report import COLUMNS, honest_line, locate, scan

# The enforcement ladder in the order it escalates (the policy's action kinds).
LADDER = ("warning", "listing_removal", "live_restriction", "payout_hold", "suspension", "reinstatement")
EARLY_BUCKET_COLOUR, BAR_COLOUR = "#d98c1f", "#3b6ea8"
HOUR_MS = 3_600_000

STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d2430; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d5dbe3; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #e3e7ec; }
figcaption { font-size: .9rem; color: #4a5565; }
table { border-collapse: collapse; font-size: .9rem; } td, th { padding: .2rem .7rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } tr:nth-child(even) { background: #f4f6f9; }
.note { background: #fff6e0; padding: .4rem .7rem; border-left: 3px solid #d98c1f; }
.empty { color: #6b7685; font-style: italic; }
"""


def violations_over_time(out_dir: str | Path) -> pl.DataFrame:
    """Violations per hour of `detected_at`, by type: columns `hour` (Datetime UTC), `violation_type`, `count`."""
    frame = scan(locate(Path(out_dir), "violations"), COLUMNS["violations"])
    return (frame.drop_nulls("detected_at")
            .group_by(hour=(pl.col("detected_at") // HOUR_MS * HOUR_MS).cast(pl.Datetime("ms", "UTC")),
                      violation_type=pl.col("violation_type"))
            .agg(count=pl.len()).sort("hour", "violation_type").collect())


def write_html(report: dict[str, Any], timeline: pl.DataFrame, path: str | Path) -> Path:
    """Write the page to `path` (its folder must exist); returns the path."""
    path = Path(path)
    path.write_text(render_html(report, timeline), encoding="utf-8")
    return path


def render_html(report: dict[str, Any], timeline: pl.DataFrame) -> str:
    """The whole page as text."""
    v, quality, ttd = report["violations"], report["quality"], report["time_to_detect"]
    parts = [
        f"<h1>shopguard report: {_e(report['dir'])}</h1>",
        *(f'<p class="note">{_e(n)}</p>' for n in report["notes"]),
        _table([("violations", v["total"]), ("enforced", v["enforced"]), ("shadow", v["shadow"]),
                ("actors with violations", v["actors"]), ("actions", report["actions"]["total"]),
                ("dead letters", report["dead_letters"]["total"]),
                ("review-queue entries", report["review_queue"]["total"])], ("", "count")),
        "<h2>Violations over time by type</h2>",
        _plot("violations-over-time", "Violations per hour of detection, stacked by type.",
              lambda ax: _timeline(ax, timeline), skip=timeline.is_empty(), empty="No violations."),
        "<h2>Precision and recall per type</h2>",
        _quality(quality),
        "<h2>Time to detect</h2>",
        _ttd(ttd),
        "<h2>Enforcement actions, by ladder step</h2>",
        _plot("actions-ladder", "Actions issued at each step of the ladder, in the order it escalates.",
              lambda ax: _ladder(ax, report["actions"]["by_kind"]), skip=not report["actions"]["total"],
              empty="No enforcement actions."),
        "<h2>Dead letters by reason</h2>",
        _plot("dead-letters", "Inputs the job could not use, by reason (see dead_letter.jsonl for examples).",
              lambda ax: _barh(ax, [(d["reason"], d["count"]) for d in report["dead_letters"]["by_reason"]],
                               "dead letters"),
              skip=not report["dead_letters"]["total"], empty="No dead letters."),
        "<h2>Top actors by points</h2>",
        _table([(a["actor"], a["points"], a["violations"], a["level"] or "-", a["health"] if a["health"] is not None
                 else "-") for a in report["top_actors"]], ("actor", "points", "violations", "level", "health")),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>shopguard report: {_e(report['dir'])}</title><style>{STYLE}</style></head>"
            "<body>\n" + "\n".join(parts) + "\n</body></html>\n")


# ---- sections ------------------------------------------------------------------------------------


def _quality(quality: dict[str, Any] | None) -> str:
    if quality is None:
        return '<p class="empty">Needs labels: pass --labels labels.jsonl.</p>'
    rows = quality["per_type"]
    plot = _plot("precision-recall", "Per type over distinct (actor, type) pairs; shadow violations count.",
                 lambda ax: _precision_recall(ax, rows), skip=not rows, empty="No labelled or flagged types.")
    return plot + f"<p>{_e(honest_line(quality['honest']))}.</p>"


def _ttd(ttd: dict[str, Any] | None) -> str:
    if ttd is None:
        return '<p class="empty">Needs labels: pass --labels labels.jsonl.</p>'
    caption = ("Found pairs by delay from the labelled evidence to the first violation. The first bar, a negative "
               "time to detect, is pairs found before the labelled evidence: the detector had enough before the "
               "label's evidence_ts.")
    return _plot("time-to-detect", caption, lambda ax: _ttd_bars(ax, ttd["buckets"]), skip=not ttd["count"],
                 empty="No labelled pair was found.")


# ---- plots ---------------------------------------------------------------------------------------


def _plot(name: str, caption: str, draw: Callable[[Any], None], *, skip: bool, empty: str) -> str:
    """A figure: `draw(ax)` on a fresh matplotlib axis, inlined as an SVG data URI."""
    if skip:
        return f'<p class="empty" id="{name}">{_e(empty)}</p>'
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name, "font.size": 10}):
        fig, ax = plt.subplots(figsize=(9, 3.6))
        try:
            draw(ax)
            ax.spines[["top", "right"]].set_visible(False)
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="svg", metadata={"Date": None})
        finally:
            plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure id="{name}"><img alt="{_e(caption)}" src="data:image/svg+xml;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _timeline(ax: Any, timeline: pl.DataFrame) -> None:
    wide = timeline.pivot(on="violation_type", index="hour", values="count").sort("hour").fill_null(0)
    hours = wide["hour"].to_list()
    bottom = [0] * len(hours)
    width = 1 / 24 * 0.9  # bars of most of an hour (matplotlib dates are in days)
    for vtype in sorted(c for c in wide.columns if c != "hour"):
        counts = wide[vtype].to_list()
        ax.bar(hours, counts, width=width, bottom=bottom, label=vtype, align="edge")
        bottom = [b + c for b, c in zip(bottom, counts)]
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("violations per hour (UTC)")
    ax.legend(fontsize=8, ncols=2, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _precision_recall(ax: Any, rows: list[dict[str, Any]]) -> None:
    names = [r["violation_type"] for r in rows]
    ys = range(len(names))
    ax.barh([y - 0.2 for y in ys], [r["precision"] for r in rows], height=0.4, label="precision",
            color=BAR_COLOUR)
    ax.barh([y + 0.2 for y in ys], [r["recall"] for r in rows], height=0.4, label="recall", color="#7cb08c")
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(frameon=False, loc="lower right")


def _ttd_bars(ax: Any, buckets: list[dict[str, Any]]) -> None:
    labels = ["before evidence\n(negative)" if i == 0 else b["bucket"] for i, b in enumerate(buckets)]
    colours = [EARLY_BUCKET_COLOUR] + [BAR_COLOUR] * (len(buckets) - 1)
    ax.bar(labels, [b["count"] for b in buckets], color=colours)
    ax.set_ylabel("found pairs")


def _ladder(ax: Any, by_kind: list[dict[str, Any]]) -> None:
    counts = {a["action"]: a["count"] for a in by_kind}
    steps = [s for s in LADDER if s in counts] + sorted(set(counts) - set(LADDER))
    ax.bar(steps, [counts[s] for s in steps], color=BAR_COLOUR)
    ax.set_ylabel("actions")


def _barh(ax: Any, pairs: list[tuple[str, int]], what: str) -> None:
    ax.barh([p[0] for p in pairs], [p[1] for p in pairs], color=BAR_COLOUR)
    ax.invert_yaxis()
    ax.set_xlabel(what)


# ---- html ----------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(rows: list[tuple], header: tuple[str, ...]) -> str:
    if not rows:
        return '<p class="empty">(none)</p>'

    def cell(value: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f'<td class="n">{value:,}</td>'
        return f"<td>{_e(value)}</td>"

    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
