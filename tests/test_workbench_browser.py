"""The workbench in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

End to end, as people use it: the job replays a simulated marketplace; the
console (`shopguard console`, a separate process) serves its outputs; a
seller signs in and appeals a violation; a reviewer opens the queue, the
appeals, the seller's history and overturns the appeal; the job runs again
over the events plus the governance file the console wrote; and the seller's
page shows the new standing. Screenshots of every page are kept in the
test's temporary folder (`screenshots/`).

Needs Debian's Chromium: `apt-get install -y chromium`. Without it the test
fails and says so; it is never skipped. Playwright's own browser download
(`playwright install`) is not used.
"""

from __future__ import annotations

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

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REVIEWER = ("rev-e2e", "e2e-reviewer-token-0123456789")
ACTOR_TOKEN = "e2e-actor-token-0123456789ab"
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


class Console:
    """`shopguard console` in its own process, on a free port."""

    def __init__(self, out: Path, events_out: Path, actor: str, log: Path) -> None:
        env = {**os.environ, "SHOPGUARD_WORKBENCH_REVIEWERS": "=".join(REVIEWER),
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
        with sync_playwright() as pw:
            def browser(profile: str):
                return pw.chromium.launch_persistent_context(
                    str(tmp_path / profile), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
                    viewport={"width": 1280, "height": 900})

            seller_ctx, reviewer_ctx = browser("profile-seller"), browser("profile-reviewer")
            try:
                seller, reviewer = seller_ctx.new_page(), reviewer_ctx.new_page()
                base = console.url

                # the seller sees its standing and appeals
                sign_in(seller, base, ACTOR_TOKEN)
                assert seller.url.endswith(f"/standing/{actor}")
                assert number(seller, "#active-points") == before["active_points"]
                assert number(seller, "#health") == before["health"]
                seller.screenshot(path=str(shots / "1-standing-before.png"), full_page=True)
                card = seller.locator(f"article[id='{vid}']")
                assert violation["explanation"] in card.inner_text()
                card.locator("summary", has_text="Appeal this violation").click()
                card.locator("textarea").fill("These goods are genuine; the invoice is attached to my listing.")
                card.locator("button", has_text="Send appeal").click()
                seller.wait_for_load_state()
                assert "Your appeal was sent" in seller.inner_text(".flash")
                seller.screenshot(path=str(shots / "2-appeal-sent.png"), full_page=True)

                # the reviewer: queue, appeals, the actor's history, overturn
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
                reviewer.screenshot(path=str(shots / "5-actor.png"), full_page=True)
                card.locator("button", has_text="Overturn").click()
                reviewer.wait_for_load_state()
                assert f"overturned by {REVIEWER[0]}" in reviewer.inner_text(".flash")
                reviewer.screenshot(path=str(shots / "6-overturned.png"), full_page=True)

                filed, decided = read_jsonl(gov)
                assert (filed["type"], decided["type"]) == ("appeal.filed", "appeal.decided")
                assert decided["reviewer_id"] == REVIEWER[0] and decided["decision"] == "overturned"

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
                policy = load_policy()
                if policy.step_for(expected) < policy.step_for(before["active_points"]):
                    assert seller.inner_text("#level").lower() != before["level"].replace("_", " ")

                reviewer.goto(f"{base}/actors/{actor}")
                assert number(reviewer, "#active-points") == expected
                reviewer.screenshot(path=str(shots / "8-actor-after.png"), full_page=True)
            finally:
                seller_ctx.close()
                reviewer_ctx.close()
    finally:
        console.stop()
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-standing-before.png", "2-appeal-sent.png", "3-queue.png", "4-appeals.png", "5-actor.png",
        "6-overturned.png", "7-standing-after.png", "8-actor-after.png"]
    print(f"\nscreenshots in {shots}")
