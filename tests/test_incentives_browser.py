"""Incentives in a real browser (issue 19): a seller loses its badge to a violation, the standing page says
what is missing and when it comes back, and the badge returns after a reviewer overturns the violation.

End to end, like `tests/test_workbench_browser.py`: the job replays a small marketplace (a seller with
steady orders, then a burst of near-duplicate listings: `listing_spam`); `shopguard console` serves the
outputs in its own process; Debian's Chromium, driven by Playwright, signs in as the seller and as a
reviewer; the reviewer overturns the violation; the job runs again over the events plus the governance
file the console wrote; the seller's page shows the badge back. Screenshots land in `screenshots/`.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import read_jsonl, replay
from tests.test_incentives import order_events
from tests.test_ledger import DAY_MS, T0, spam_burst, write_events
from tests.test_workbench_browser import ACTOR_TOKEN, REVIEWER, Console, chromium_path, seller_and_reviewer, sign_in

ACTOR = "seller:S1"


def marketplace() -> list[dict]:
    """S1 sells four times a day for 16 days and spams on day 10; S2 only sells (a badge kept)."""
    events = []
    for day in range(16):
        for seller in ("S1", "S2"):
            events += [{**e, "event_id": f"{e['event_id']}-d{day}", "order_id": f"{e['order_id']}-d{day}"}
                       for e in order_events(seller, 4, T0 + day * DAY_MS + 9 * 3_600_000)]
    return events + spam_burst("S1", 0, T0 + 10 * DAY_MS + 20 * 3_600_000)


def program_card(page):
    return page.locator("#program-trusted_seller")


@pytest.mark.slow
def test_a_seller_loses_the_badge_learns_how_to_regain_it_and_gets_it_back_after_an_overturn(tmp_path):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    events = write_events(tmp_path / "events.jsonl", marketplace())
    out = tmp_path / "out"
    _, outputs = replay(events, out)
    [spam] = [v for v in outputs["violations.jsonl"] if v["actor"] == ACTOR]
    assert spam["violation_type"] == "listing_spam" and spam["enforced"]
    badge = [(r["change"], r.get("violation_id")) for r in outputs["incentives.jsonl"]
             if r["actor"] == ACTOR and r["program"] == "trusted_seller"]
    assert badge == [("granted", None), ("revoked", spam["violation_id"])]
    gov = tmp_path / "governance-events.jsonl"

    console = Console(out, gov, ACTOR, tmp_path / "console.log")
    try:
        with sync_playwright() as pw, seller_and_reviewer(pw, tmp_path, executable) as (seller, reviewer):
            base = console.url

            # the seller: the badge is gone, the page says what is missing and when it can be back
            sign_in(seller, base, ACTOR_TOKEN)
            assert seller.url.endswith(f"/standing/{ACTOR}")
            card = program_card(seller)
            text = card.inner_text()
            assert "Trusted seller badge: not now" in text
            assert "no enforced violation in the last 14 days" in text  # what the program asks for
            assert "listing_spam violation on" in text and "14 clean days needed after it" in text
            regain = time.strftime("%Y-%m-%d", time.gmtime((spam["detected_at"] + 14 * DAY_MS) / 1000))
            assert f"You can have it back on {regain}" in card.locator(".regain").inner_text()
            assert "revoked" in seller.inner_text("#reward-changes")
            assert "Search boost: not now" in seller.inner_text("#program-search_boost")
            seller.screenshot(path=str(shots / "1-badge-lost.png"), full_page=True)

            # the reviewer sees the same on the actor's page, and overturns the violation
            sign_in(reviewer, base, REVIEWER[1])
            reviewer.goto(f"{base}/actors/{ACTOR}")
            reviewer.wait_for_load_state()
            assert "Trusted seller badge: not now" in program_card(reviewer).inner_text()
            assert f"You can have it back on {regain}" in program_card(reviewer).inner_text()
            reviewer.screenshot(path=str(shots / "2-reviewer-actor.png"), full_page=True)
            violation = reviewer.locator(f"article[id='{spam['violation_id']}']")
            violation.locator("summary", has_text="Overturn without an appeal").click()
            violation.locator("details.overturn textarea").fill("The listings are different sizes of one item.")
            violation.locator("button", has_text="Overturn this violation").click()
            reviewer.wait_for_load_state()
            assert f"overturned by {REVIEWER[0]}" in reviewer.inner_text(".flash")
            [overturn] = [e for e in read_jsonl(gov) if e["type"] == "violation.overturned"]

            # the job runs again over the events and the governance file, into the same folder
            combined = tmp_path / "events-and-governance.jsonl"
            combined.write_bytes(events.read_bytes() + gov.read_bytes())
            _, again = replay(combined, out)
            assert not again.get("dead_letter.jsonl"), again.get("dead_letter.jsonl")
            restored = [r for r in again["incentives.jsonl"] if r["actor"] == ACTOR and r["change"] == "restored"]
            assert {r["program"] for r in restored} >= {"trusted_seller"}
            assert all(r["appeal_id"] == overturn["event_id"] for r in restored)

            deadline = time.monotonic() + 30  # the console follows the new run within a second or two
            while True:
                seller.goto(f"{base}/standing/{ACTOR}")
                if "you have it" in program_card(seller).inner_text() or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            text = program_card(seller).inner_text()
            assert "Trusted seller badge: you have it" in text and "What is missing" not in text
            assert "restored" in seller.inner_text("#reward-changes")
            seller.screenshot(path=str(shots / "3-badge-back.png"), full_page=True)
            reviewer.goto(f"{base}/actors/{ACTOR}")
            assert "Trusted seller badge: you have it" in program_card(reviewer).inner_text()
    finally:
        console.stop()
    assert sorted(p.name for p in shots.iterdir()) == ["1-badge-lost.png", "2-reviewer-actor.png",
                                                       "3-badge-back.png"]
    print(f"\nscreenshots in {shots}")
