"""The workbench in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

End to end, as people use it: the job replays a simulated marketplace; the
console (`shopguard console`, a separate process) serves its outputs; a
seller signs in and appeals a violation; a reviewer goes from the queue to
the appeals, claims the case, notes it and overturns it with a reason; the
job runs again over the events plus the governance file the console wrote;
and the seller's page shows the new standing and the reviewer's reason.

Then each reviewer flow on a console over a small fixed marketplace
(`flows` fixture): search and claim, dismiss and escalate review cases,
overturn a violation nobody appealed, bulk decisions with confirmation, the
appeals history with filters and a CSV download, the audit log and the
charts, and sign-out ending the session. Screenshots of every main page are
kept in each test's temporary folder (`screenshots/`).

Needs Debian's Chromium: `apt-get install -y chromium`. Without it the test
fails and says so; it is never skipped. Playwright's own browser download
(`playwright install`) is not used.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.enforce.policy import load_policy
from simulator import SimConfig, write
from tests.conftest import read_jsonl, replay
from workbench.render import seller_explanation

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REVIEWER = ("rev-e2e", "e2e-reviewer-token-0123456789abcdefghij")
REVIEWER_2 = ("rev-two", "e2e-reviewer-two-token-0123456789abcdefg")
ACTOR_TOKEN = "e2e-actor-token-0123456789abcdefghijklm"
ROOT = Path(__file__).resolve().parent.parent


def chromium_path() -> str:
    path = os.environ.get("SHOPGUARD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail("Chromium is missing: run `apt-get install -y chromium` (Debian's package; the browser tests "
                    "drive it with Playwright and never download a browser)")
    return path


def pick_appeal(outputs: dict[str, list[dict]]) -> tuple[dict, dict]:
    """A violation whose overturn visibly changes its actor's standing, and that actor's latest standing.

    Prefers an actor whose points come from this one violation and reach a ladder step, so the overturn
    takes it back to good standing.
    """
    latest: dict[str, dict] = {}
    for s in outputs["standing.jsonl"]:
        if s["actor"] not in latest or s["ts"] >= latest[s["actor"]]["ts"]:
            latest[s["actor"]] = s
    enforced = [v for v in outputs["violations.jsonl"] if v["enforced"] and v["points"] > 0]
    by_actor: dict[str, list[dict]] = {}
    for v in enforced:
        by_actor.setdefault(v["actor"], []).append(v)
    first_step = load_policy().ladder[0].threshold
    candidates = sorted(
        ((len(vs) == 1 and latest[a]["active_points"] >= first_step, vs[0]["points"], a)
         for a, vs in by_actor.items() if a in latest), reverse=True)
    assert candidates, "the simulated replay produced no enforced violation with points"
    _, _, actor = candidates[0]
    violation = max(by_actor[actor], key=lambda v: v["points"])
    return violation, latest[actor]


@contextlib.contextmanager
def seller_and_reviewer(pw, tmp_path: Path, executable: str):
    """Two Chromium profiles with their own cookies: the seller's page and the reviewer's."""
    def browser(profile: str):
        return pw.chromium.launch_persistent_context(
            str(tmp_path / profile), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900})

    seller_ctx, reviewer_ctx = browser("profile-seller"), browser("profile-reviewer")
    try:
        yield seller_ctx.new_page(), reviewer_ctx.new_page()
    finally:
        seller_ctx.close()
        reviewer_ctx.close()


class Console:
    """`shopguard console` in its own process, on a free port."""

    def __init__(self, out: Path, events_out: Path, actor: str, log: Path) -> None:
        env = {**os.environ, "SHOPGUARD_WORKBENCH_REVIEWERS": ",".join("=".join(r) for r in (REVIEWER, REVIEWER_2)),
               "SHOPGUARD_WORKBENCH_ACTORS": f"{actor}={ACTOR_TOKEN}", "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli.console", "--out", str(out), "--port", "0",
             "--events-out", str(events_out)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=open(log, "wb"), text=True)
        self.url = self._wait_for_url()

    def _wait_for_url(self, timeout_s: float = 90.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
            match = re.search(r"shopguard console on (http://\S+?)/?\s", line)
            if match:
                return match.group(1)
        self.stop()
        raise AssertionError(f"the console did not start; its log:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sign_in(page, base: str, token: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#token", token)
    page.click("form.card button[type=submit]")
    page.wait_for_load_state()


def number(page, selector: str) -> int:
    return int(page.inner_text(selector).split()[0])


@pytest.mark.slow
def test_appeal_overturned_in_the_browser_changes_the_next_standing(tmp_path):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # the job over a simulated marketplace
    sim = tmp_path / "sim"
    write(SimConfig(seed=11, hours=2.0, scale=0.3), sim)
    out = tmp_path / "out"
    _, outputs = replay(sim / "events.jsonl", out)
    violation, before = pick_appeal(outputs)
    actor, vid = violation["actor"], violation["violation_id"]
    gov = tmp_path / "governance-events.jsonl"

    console = Console(out, gov, actor, tmp_path / "console.log")
    try:
        with sync_playwright() as pw, seller_and_reviewer(pw, tmp_path, executable) as (seller, reviewer):
            base = console.url

            # the seller sees its standing and appeals
            sign_in(seller, base, ACTOR_TOKEN)
            assert seller.url.endswith(f"/standing/{actor}")
            assert number(seller, "#active-points") == before["active_points"]
            assert number(seller, "#health") == before["health"]
            seller.screenshot(path=str(shots / "1-standing-before.png"), full_page=True)
            card = seller.locator(f"article[id='{vid}']")
            assert seller_explanation(violation) in card.inner_text()  # never another account's name
            card.locator("summary", has_text="Appeal this violation").click()
            card.locator("textarea").fill("These goods are genuine; the invoice is attached to my listing.")
            card.locator("button", has_text="Send appeal").click()
            seller.wait_for_load_state()
            assert "Your appeal was sent" in seller.inner_text(".flash")
            seller.screenshot(path=str(shots / "2-appeal-sent.png"), full_page=True)

            # the reviewer: from the queue to the appeals, claims the case, notes it, overturns it with a reason
            sign_in(reviewer, base, REVIEWER[1])
            assert reviewer.url.endswith("/queue")
            assert reviewer.inner_text("h1") == "Review queue"
            reviewer.screenshot(path=str(shots / "3-queue.png"), full_page=True)
            reviewer.click("nav >> text=Appeals")
            reviewer.wait_for_load_state()
            assert vid in reviewer.inner_text("#appeals")
            reviewer.screenshot(path=str(shots / "4-appeals.png"), full_page=True)
            reviewer.click(f"#appeals a:has-text('{actor}')")
            reviewer.wait_for_load_state()
            assert f"/actors/{actor}" in reviewer.url
            card = reviewer.locator(f"article[id='{vid}']")
            assert "invoice is attached" in card.inner_text()
            card.locator("button", has_text="Claim / assign").click()
            reviewer.wait_for_load_state()
            card = reviewer.locator(f"article[id='{vid}']")
            assert "In review" in card.inner_text() and REVIEWER[0] in card.inner_text()
            card.locator("form.note-form input[name=text]").fill("Invoice matches the brand's distributor.")
            card.locator("button", has_text="Add note").click()
            reviewer.wait_for_load_state()
            card = reviewer.locator(f"article[id='{vid}']")
            assert "Invoice matches the brand's distributor." in card.inner_text()
            reviewer.screenshot(path=str(shots / "5-actor.png"), full_page=True)
            reason = "The invoice proves the goods are genuine."
            card.locator("form.decide textarea").fill(reason)
            card.locator("form.decide button", has_text="Overturn").click()
            reviewer.wait_for_load_state()
            assert f"overturned by {REVIEWER[0]}" in reviewer.inner_text(".flash")
            reviewer.screenshot(path=str(shots / "6-overturned.png"), full_page=True)

            filed, decided = read_jsonl(gov)
            assert (filed["type"], decided["type"]) == ("appeal.filed", "appeal.decided")
            assert decided["reviewer_id"] == REVIEWER[0] and decided["decision"] == "overturned"
            assert decided["reason"] == reason

            # the job runs again over the events and the governance file, into the same folder
            combined = tmp_path / "events-and-governance.jsonl"
            combined.write_bytes((sim / "events.jsonl").read_bytes() + gov.read_bytes())
            _, again = replay(combined, out)
            assert not again.get("dead_letter.jsonl"), again.get("dead_letter.jsonl")
            expected = before["active_points"] - violation["points"]

            deadline = time.monotonic() + 30  # the console follows the new run within a second or two
            card = seller.locator(f"article[id='{vid}']")
            while True:
                seller.goto(f"{base}/standing/{actor}")
                if (card.count() and "overturned" in card.inner_text()
                        and number(seller, "#active-points") == expected) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            seller.screenshot(path=str(shots / "7-standing-after.png"), full_page=True)
            assert number(seller, "#active-points") == expected
            assert number(seller, "#health") > before["health"]
            assert "overturned" in card.inner_text() and "0 points" in card.inner_text()
            assert reason in card.inner_text()  # the seller reads the reviewer's reason
            policy = load_policy()
            if policy.step_for(expected) < policy.step_for(before["active_points"]):
                assert seller.inner_text("#level").lower() != before["level"].replace("_", " ")

            reviewer.goto(f"{base}/actors/{actor}")
            assert number(reviewer, "#active-points") == expected
            reviewer.screenshot(path=str(shots / "8-actor-after.png"), full_page=True)
    finally:
        console.stop()
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-standing-before.png", "2-appeal-sent.png", "3-queue.png", "4-appeals.png", "5-actor.png",
        "6-overturned.png", "7-standing-after.png", "8-actor-after.png"]
    print(f"\nscreenshots in {shots}")


# ---- each reviewer flow, on a small fixed marketplace ------------------------------------------------


@pytest.fixture(scope="module")
def flows(tmp_path_factory):
    """A console over six sellers: appeals on S1-S3, review cases for S4, S5 and C6; a reviewer's browser."""
    from playwright.sync_api import sync_playwright

    from tests.test_workbench_store import MIN, T0, ledger_outputs, review_line
    from workbench.publish import FilePublisher, appeal_filed

    executable = chromium_path()
    root = tmp_path_factory.mktemp("flows")
    out = root / "out"
    plan = [("seller:S1", "counterfeit_listing", 1), ("seller:S1", "listing_spam", 2),
            ("seller:S2", "fake_discount", 3), ("seller:S3", "price_gouging", 4), ("seller:S6", "listing_spam", 5),
            ("seller:S4", "fake_discount", 6)]
    violations = {v.actor + "/" + v.violation_type: v for v in ledger_outputs(out, plan)}
    (out / "review_queue.jsonl").write_bytes(b"".join(
        review_line(a, s, T0 + 7 * MIN) for a, s in (("seller:S4", 0.97), ("seller:S5", 0.91), ("creator:C6", 0.88))))
    gov = root / "governance-events.jsonl"
    publisher = FilePublisher(gov)
    for key in ("seller:S1/counterfeit_listing", "seller:S1/listing_spam", "seller:S2/fake_discount",
                "seller:S3/price_gouging"):
        v = violations[key]
        publisher.publish(appeal_filed(v.violation_id, v.actor, f"Please look again at {v.violation_type}.",
                                       ts=T0 + 8 * MIN))
    console = Console(out, gov, "seller:S1", root / "console.log")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(root / "profile"), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 900}, accept_downloads=True)
            try:
                page = ctx.new_page()
                sign_in(page, console.url, REVIEWER[1])
                yield {"page": page, "base": console.url, "gov": gov, "violations": violations, "pw": pw,
                       "ctx": ctx, "root": root}
            finally:
                ctx.close()
    finally:
        console.stop()


def shot(tmp_path: Path, page, name: str) -> None:
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert (folder / f"{name}.png").stat().st_size > 5000


def go(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state()


def submit(page, locator) -> None:
    locator.click()
    page.wait_for_load_state()


@pytest.mark.slow
def test_search_claim_and_note_from_the_queue(flows, tmp_path):
    page, base = flows["page"], flows["base"]
    go(page, f"{base}/queue")
    assert "seller:S4" in page.inner_text("#queue")
    shot(tmp_path, page, "queue")
    page.fill("form.search input[name=q]", "S4")
    submit(page, page.locator("form.search button"))
    assert "seller:S4" in page.inner_text("#found-actors")
    shot(tmp_path, page, "search")
    submit(page, page.locator("#found-actors a", has_text="seller:S4"))
    review = page.locator("#review-case")
    submit(page, review.locator("button", has_text="Claim / assign"))
    review = page.locator("#review-case")
    assert "In review" in review.inner_text() and REVIEWER[0] in review.inner_text()
    review.locator("form.note-form input[name=text]").fill("Same buyers as last week's brushing ring.")
    submit(page, review.locator("button", has_text="Add note"))
    assert "Same buyers as last week's brushing ring." in page.inner_text("#review-case")
    shot(tmp_path, page, "actor-case")
    go(page, f"{base}/queue?assignee={REVIEWER[0]}")
    assert "seller:S4" in page.inner_text("#queue") and "seller:S5" not in page.inner_text("#queue")


@pytest.mark.slow
def test_dismiss_and_escalate_review_cases(flows, tmp_path):
    page, base = flows["page"], flows["base"]
    for actor, button, status in (("seller:S5", "Dismiss", "Decided"), ("creator:C6", "Escalate", "Escalated")):
        go(page, f"{base}/actors/{actor}")
        page.fill("form.verdict input[name=reason]", "Checked the orders.")
        submit(page, page.locator("form.verdict button", has_text=button))
        assert status in page.inner_text("#review-case")
    go(page, f"{base}/queue?status=all")
    shot(tmp_path, page, "queue-statuses")
    verdicts = {e["actor"]: e["decision"] for e in read_jsonl(flows["gov"]) if e["type"] == "review.decided"}
    assert verdicts == {"seller:S5": "dismissed", "creator:C6": "escalated"}


@pytest.mark.slow
def test_overturn_a_violation_nobody_appealed(flows, tmp_path):
    page, base = flows["page"], flows["base"]
    v = flows["violations"]["seller:S6/listing_spam"]
    go(page, f"{base}/actors/seller:S6")
    card = page.locator(f"article[id='{v.violation_id}']")
    card.locator("summary", has_text="Overturn without an appeal").click()
    card.locator("details.overturn textarea").fill("The copies are sizes of one product.")
    submit(page, card.locator("button", has_text="Overturn this violation"))
    assert f"overturned by {REVIEWER[0]}" in page.inner_text(".flash")
    assert "(without an appeal)" in page.locator(f"article[id='{v.violation_id}']").inner_text()
    shot(tmp_path, page, "overturned-unappealed")
    [event] = [e for e in read_jsonl(flows["gov"]) if e["type"] == "violation.overturned"]
    assert event["violation_id"] == v.violation_id and event["reason"] == "The copies are sizes of one product."


@pytest.mark.slow
def test_bulk_decide_with_confirmation_then_the_history(flows, tmp_path):
    page, base = flows["page"], flows["base"]
    s2, s3 = flows["violations"]["seller:S2/fake_discount"], flows["violations"]["seller:S3/price_gouging"]
    go(page, f"{base}/appeals")
    shot(tmp_path, page, "appeals")
    for v in (s2, s3):
        page.locator("#appeals tr", has_text=v.violation_id).locator("input[type=checkbox]").check()
    page.select_option("select[name=decision]", "upheld")
    page.fill("fieldset.bulk textarea[name=reason]", "The evidence holds for both.")
    submit(page, page.locator("fieldset.bulk button"))
    assert page.inner_text("h1") == "Uphold 2 appeals?"
    assert not [e for e in read_jsonl(flows["gov"]) if e["type"] == "appeal.decided"]  # nothing before confirming
    shot(tmp_path, page, "bulk-confirm")
    submit(page, page.locator("#confirm-bulk"))
    assert "2 appeal(s) upheld" in page.inner_text(".flash")
    decided = {e["violation_id"]: e for e in read_jsonl(flows["gov"]) if e["type"] == "appeal.decided"}
    assert set(decided) == {s2.violation_id, s3.violation_id}
    assert {e["reason"] for e in decided.values()} == {"The evidence holds for both."}

    go(page, f"{base}/appeals?state=decided&decision=upheld")
    history = page.inner_text("#appeals")
    assert s2.violation_id in history and "The evidence holds for both." in history
    shot(tmp_path, page, "appeals-history")
    with page.expect_download() as download:
        page.click("text=Export CSV")
    rows = download.value.path().read_text().splitlines()
    assert rows[0].startswith("appeal_id,violation_id,actor") and len(rows) == 3


@pytest.mark.slow
def test_audit_log_and_charts(flows, tmp_path):
    page, base = flows["page"], flows["base"]
    go(page, f"{base}/audit")
    assert "Signed in" in page.inner_text("#audit")
    shot(tmp_path, page, "audit")
    go(page, f"{base}/charts")
    widths = page.eval_on_selector_all(".chart img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
    assert len(widths) == 4 and all(w and w > 100 for w in widths)  # each SVG loaded and drew
    shot(tmp_path, page, "charts")
    go(page, f"{base}/violations")
    shot(tmp_path, page, "violations")


@pytest.mark.slow
def test_sign_out_ends_the_session_in_another_browser_too(flows, tmp_path):
    base = flows["base"]
    other = flows["pw"].chromium.launch_persistent_context(
        str(flows["root"] / "profile-2"), executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
    try:
        page = other.new_page()
        sign_in(page, base, REVIEWER_2[1])
        saved = other.cookies()
        assert page.url.endswith("/queue")
        submit(page, page.locator("form.who button"))
        assert page.url.endswith("/login")
        other.add_cookies(saved)  # the cookie as it was before signing out
        go(page, f"{base}/queue")
        assert "/login" in page.url
        shot(tmp_path, page, "signed-out")
    finally:
        other.close()
