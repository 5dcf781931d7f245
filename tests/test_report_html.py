"""`shopguard report DIR --html FILE` opened in a real browser (Debian's Chromium driven by Playwright).

The page must be one file: every request the browser makes for it is
recorded, and only the file itself may be fetched (the plots are `data:`
images). A screenshot is kept in the test's tmp folder (`report.png`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.cli.report import main
from tests.test_workbench_browser import CHROMIUM_FLAGS, chromium_path

FIXTURE = Path(__file__).parent / "fixtures" / "report"
OUT, LABELS, EVENTS = FIXTURE / "out", FIXTURE / "labels.jsonl", FIXTURE / "events.jsonl"
PLOTS = ("violations-over-time", "precision-recall", "time-to-detect", "actions-ladder", "dead-letters")


def open_in_chromium(page_path: Path, screenshot: Path) -> dict:
    """Load the page; return what the browser requested, each plot's size as drawn, and the page text."""
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requested.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            plots = page.eval_on_selector_all(
                "figure", """figs => Object.fromEntries(figs.map(f => { const img = f.querySelector('img');
                    return [f.id, {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
                                   shown: img.getBoundingClientRect().width}]; }))""")
            page.screenshot(path=str(screenshot), full_page=True)
            return {"requested": requested, "plots": plots, "text": page.inner_text("body")}
        finally:
            browser.close()


@pytest.mark.slow
def test_the_html_report_renders_its_plots_in_chromium_and_loads_nothing_else(tmp_path, capsys):
    page_path = tmp_path / "report.html"
    assert main([str(OUT), "--labels", str(LABELS), "--events", str(EVENTS), "--html", str(page_path)]) == 0
    assert f"wrote {page_path}" in capsys.readouterr().err
    seen = open_in_chromium(page_path, tmp_path / "report.png")
    assert seen["requested"] == [page_path.as_uri()], "the page fetched something besides itself"
    assert set(seen["plots"]) == set(PLOTS)
    for name, plot in seen["plots"].items():
        assert plot["complete"] and plot["width"] > 300 and plot["height"] > 100 and plot["shown"] > 300, (name, plot)
    text = seen["text"]
    assert "found before the labelled evidence" in text
    assert "2 honest actors wrongly flagged (1 enforced) of 10 in the events = 2,000.0 per 10,000" in text
    assert (tmp_path / "report.png").stat().st_size > 20_000


def test_the_page_has_no_external_reference_and_escapes_what_it_shows(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "violations.jsonl").write_text(
        '{"actor": "seller:<b>S1</b>", "violation_type": "listing_spam", "detector": "listing_spam_v1",'
        ' "severity": "low", "points": 2, "enforced": true, "detected_at": 1000}\n')
    page_path = tmp_path / "r.html"
    assert main([str(out), "--html", str(page_path)]) == 0
    page = page_path.read_text()
    references = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert references and all(r.startswith("data:image/svg+xml;base64,") for r in references), references
    assert "<b>S1</b>" not in page and "seller:&lt;b&gt;S1&lt;/b&gt;" in page
    assert "Needs labels: pass --labels labels.jsonl." in page  # no precision/recall plot without labels
    assert "honest" not in page.lower()


def test_html_to_a_folder_that_does_not_exist_is_one_line(tmp_path, capsys):
    assert main([str(OUT), "--html", str(tmp_path / "nope" / "r.html")]) == 2
    assert "its folder does not exist; create it or write the page elsewhere" in capsys.readouterr().err
