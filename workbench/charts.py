"""Charts a lead reads at a glance, drawn on the server as SVG by pygal (no script, nothing from a CDN).

Each chart has a data function (what the chart shows, also rendered as a
table under it and exported as CSV) and is drawn from that data:

- `violations_per_day`: violations per day of event time, stacked by type;
- `detector_rates`: per detector, the share of its violations appealed and
  the share of its verdicts that overturned it;
- `queue_age`: review-queue cases still to review, by age (job clock), and
  cases by status;
- `reviewer_throughput`: verdicts per reviewer per day (wall clock, from the
  audit log).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Callable

import pygal
from pygal.style import Style

from workbench.render import day, humanize
from workbench.store import Store

VERDICT_ACTIONS = ("decided_upheld", "decided_overturned", "overturned_unappealed", "review_dismissed",
                   "review_escalated")
STYLE = Style(background="white", plot_background="white", font_family="system-ui, sans-serif",
              colors=("#2450b2", "#b42318", "#1f7a3d", "#a15c00", "#6d28d9", "#0e7490", "#be185d", "#4d7c0f",
                      "#9a3412", "#334155", "#0369a1"))


def violations_per_day(store: Store) -> dict[str, Any]:
    counts: dict[str, dict[int, int]] = defaultdict(dict)
    days: set[int] = set()
    for start, vtype, n in store.violations_per_day():
        counts[vtype][start] = n
        days.add(start)
    order = sorted(days)
    return {"labels": [day(d) for d in order],
            "series": {humanize(t): [by_day.get(d, 0) for d in order] for t, by_day in sorted(counts.items())}}


def detector_rates(store: Store) -> dict[str, Any]:
    rows = store.rates_per_detector()
    return {"labels": [r["detector"] for r in rows],
            "series": {"appeal rate (% of violations)": [pct(r["appealed"], r["violations"]) for r in rows],
                       "overturn rate (% of verdicts)": [pct(r["overturned"], r["decided"]) for r in rows]},
            "rows": rows}


def queue_age(store: Store) -> dict[str, Any]:
    ages = store.queue_ages(store.clock())
    statuses = store.queue_status_counts()
    return {"labels": list(ages), "series": {"cases to review": list(ages.values())}, "statuses": statuses}


def reviewer_throughput(store: Store, days: int = 14, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    since = (now // 86400 - days + 1) * 86400
    marks = ",".join("?" * len(VERDICT_ACTIONS))
    rows = store.read().execute(
        f"SELECT CAST(at / 86400 AS INTEGER) * 86400, who, count(*) FROM wb_audit WHERE at >= ? "
        f"AND action IN ({marks}) GROUP BY 1, 2 ORDER BY 1, 2", (since, *VERDICT_ACTIONS)).fetchall()
    order = sorted({r[0] for r in rows})
    per: dict[str, dict[int, int]] = defaultdict(dict)
    for start, who, n in rows:
        per[who][start] = n
    return {"labels": [day(int(d * 1000)) for d in order],
            "series": {who: [by_day.get(d, 0) for d in order] for who, by_day in sorted(per.items())}}


def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


CHARTS: dict[str, tuple[str, Callable[[Store], dict[str, Any]], type]] = {
    "violations-per-day": ("Violations per day, by type", violations_per_day, pygal.StackedBar),
    "detector-rates": ("Appeal rate and overturn rate per detector", detector_rates, pygal.HorizontalBar),
    "queue-age": ("Review queue: cases to review, by age", queue_age, pygal.Bar),
    "reviewer-throughput": ("Verdicts per reviewer per day (last 14 days)", reviewer_throughput, pygal.StackedBar),
}


def svg(name: str, store: Store) -> str:
    """The chart `name` (a key of CHARTS) as an SVG document."""
    _title, data_of, kind = CHARTS[name]  # the page shows the title above the chart
    data = data_of(store)
    chart = kind(title=None, style=STYLE, js=[], width=900, height=380, legend_at_bottom=True,
                 x_label_rotation=30 if len(data["labels"]) > 8 else 0, print_values=False, show_y_guides=True,
                 no_data_text="Nothing yet", truncate_legend=40, disable_xml_declaration=False)
    chart.x_labels = data["labels"]
    for series, values in data["series"].items():
        chart.add(series, values)
    return chart.render(is_unicode=True)
