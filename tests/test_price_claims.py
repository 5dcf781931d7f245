"""misleading_price_claim: a price a creator says on a LIVE that the listing it names does not charge.

TikTok Shop's own example: a $9.99 product may be promoted as "less than $10",
never as "$9". The detector has two stages (stage 1 keyed by LIVE forwards
each spoken `PriceClaim` to the shop the LIVE sells for; stage 2 keyed by shop
judges it after a hold, once late price changes are in). `Stages` drives it
the way the engine does; the last tests run the real dataflow.
"""

from __future__ import annotations

import heapq
from typing import Any, Iterable

import pytest

from detectors.base import Forward, Signal, Wake
from detectors.price_talk import NOW, UNDER, WAS, amounts
from pipeline.contract.events import LiveComment, LiveEnded, LiveStarted, LiveTranscript
from tests.detector_helpers import shipped
from tests.pricing_helpers import DAY, T0, upsert, write_ndjson

SEC = 1000
VASE = "Ceramic Vase - Sage"


class Stages:
    """misleading_price_claim as the engine drives it: LIVE events keyed by LIVE; listing events and the
    forwarded claims keyed by shop; a `Wake` fired once the shop stage's event time reaches it, the rest at
    the end of the input."""

    def __init__(self, **overrides: Any) -> None:
        self.detector = shipped("misleading_price_claim", **overrides)
        self.states: dict[str, Any] = {}
        self.wakes: list[tuple[int, int, str]] = []
        self.shop_time = 0
        self.found: list[Signal] = []

    def feed(self, events: Iterable[Any]) -> list[Signal]:
        for event in events:
            if type(event) in self.detector.joined_types:
                self._run(event, shop_stage=True)
            else:
                for forward in self._run(event, shop_stage=False):
                    self._run(forward.item, shop_stage=True)
        return self.found

    def finish(self) -> list[Signal]:
        self._wake_until(None)
        return self.found

    def _run(self, item: Any, shop_stage: bool) -> list[Forward]:
        key = self.detector.entity(item)
        if key is None:
            return []
        state, out = self.detector.on_event(self.states.get(key), item)
        if state is None:
            self.states.pop(key, None)
        else:
            self.states[key] = state
        forwards = [o for o in out if type(o) is Forward]
        for o in out:
            if type(o) is Wake:
                heapq.heappush(self.wakes, (o.at, len(self.wakes), key))
        self.found += [o for o in out if type(o) is Signal]
        if shop_stage:
            self.shop_time = max(self.shop_time, item.ts)
            self._wake_until(self.shop_time)
        return forwards

    def _wake_until(self, until: int | None) -> None:
        while self.wakes and (until is None or self.wakes[0][0] <= until):
            at, _, key = heapq.heappop(self.wakes)
            self.states[key], signals = self.detector.on_wake(self.states[key], at)
            self.found += signals


def claims_found(events: Iterable[Any], **overrides: Any) -> list[Signal]:
    """The violations the detector issues for `events`, once every claim's hold has passed."""
    stages = Stages(**overrides)
    stages.feed(events)
    return stages.finish()


def at(second: float) -> int:
    return T0 + int(second * SEC)


def live_started(second: float = 0, live: str = "V1", creator: str = "C1", seller: str = "S1"):
    return LiveStarted(event_id=f"{live}-start", ts=at(second), live_id=live, creator_id=creator, seller_id=seller,
                       title="Home finds")


def said(text: str, second: float, live: str = "V1", creator: str = "C1"):
    return LiveTranscript(event_id=f"{live}-t{second}", ts=at(second), live_id=live, creator_id=creator, text=text)


def commented(text: str, second: float, by_host: bool, live: str = "V1", creator: str = "C1"):
    return LiveComment(event_id=f"{live}-c{second}-{by_host}", ts=at(second), live_id=live, creator_id=creator,
                       user_id="C1" if by_host else "U7", text=text, by_host=by_host)


def shop(price: float = 9.99, *, title: str = VASE, listing: str = "L1", seller: str = "S1",
         since: float = -7 * DAY) -> list:
    """A shop's listing, charging `price` since `since` minutes before the LIVE (and an unrelated listing)."""
    return [upsert(listing, price, minute=since, seller=seller, title=title, created=True),
            upsert(f"{listing}-other", 40.0, minute=since, seller=seller, title="Linen Throw Blanket - Oat",
                   created=True)]


def on_live(*sentences: str, price: float = 9.99) -> list:
    """The shop, a LIVE for it, and the creator saying `sentences` a minute apart."""
    return shop(price) + [live_started()] + [said(s, 60 * (i + 1)) for i, s in enumerate(sentences)]


# ---- what is found ------------------------------------------------------------------------------


def test_nine_dollars_for_a_9_99_listing_is_found_with_the_listing_and_both_prices():
    found = claims_found(on_live("this ceramic vase is only $9 today"))
    assert [(v.actor, v.violation_type) for v in found] == [("creator:C1", "misleading_price_claim")]
    v = found[0]
    e = v.evidence
    assert (e["listing_id"], e["listing_title"], e["stated_price"], e["listing_price"]) == ("L1", VASE, 9.0, 9.99)
    assert (e["kind"], e["live_id"], e["said_in"], e["said_at"]) == ("below_listing_price", "V1", "live.transcript",
                                                                    at(60))
    assert "only $9" in e["text"] and v.window_start == at(60) and v.detected_at >= at(60)
    assert "9.00" in v.explanation and "9.99" in v.explanation


@pytest.mark.parametrize("sentence, price, kind", [
    ("the ceramic vase, under $10!", 12.0, "listing_not_under_bound"),
    ("this ceramic vase was $30 before", 9.99, "former_price_never_charged"),
    ("the sage ceramic vase for just 5 dollars", 9.99, "below_listing_price"),
], ids=["under-10-for-12", "former-price-never-charged", "far-below"])
def test_a_price_the_listing_does_not_charge_is_found(sentence, price, kind):
    found = claims_found(on_live(sentence, price=price))
    assert [(v.actor, v.evidence["kind"], v.evidence["listing_id"], v.evidence["listing_price"]) for v in found] == [
        ("creator:C1", kind, "L1", price)]


# ---- what is clean ------------------------------------------------------------------------------


@pytest.mark.parametrize("sentence", [
    "the ceramic vase, under $10!",  # true of 9.99: TikTok Shop's own allowed phrasing
    "this ceramic vase is only $9.99",  # the exact price
    "the ceramic vase is about $10",  # rounding up
    "sage ceramic vase, 9,99 € in the EU shop",  # another currency than the listing's: not comparable
    "the linen throw blanket is only $40",  # true of the other listing it names
    "only $9 for the scented candles in my other shop",  # names no listing of this shop
])
def test_honest_price_talk_is_clean(sentence):
    assert claims_found(on_live(sentence)) == []


def test_a_former_price_the_listing_really_charged_is_clean():
    events = shop(14.99) + [upsert("L1", 9.99, minute=-DAY, was=14.99, title=VASE), live_started(),
                            said("this ceramic vase was $14.99, now only $9.99", 60)]
    assert claims_found(events) == []


def test_a_saving_said_on_a_live_is_not_a_price():
    events = shop(25.0) + [upsert("L1", 20.0, minute=-DAY, was=25.0, title=VASE), live_started(),
                           said("save $5 on the ceramic vase today", 60), said("$5 off the sage ceramic vase!", 120)]
    assert claims_found(events) == []


def test_viewers_comments_are_never_the_creator_claim():
    viewer = shop() + [live_started(), commented("omg ceramic vase only $5??", 60, by_host=False)]
    assert claims_found(viewer) == []
    host = shop() + [live_started(), commented("ceramic vase only $5 for you all", 60, by_host=True)]
    assert [(v.actor, v.evidence["said_in"]) for v in claims_found(host)] == [("creator:C1", "live.comment")]


# ---- timing: late price changes, late starts ----------------------------------------------------


def test_a_price_change_delivered_late_within_the_hold_is_taken_into_account():
    cut = upsert("L1", 9.0, minute=1, title=VASE)  # the price was cut 60 s before the claim...
    events = shop(9.99) + [live_started(), said("this ceramic vase is only $9 today", 120), cut]  # ...arrives after it
    assert claims_found(events) == []


def test_a_claim_said_before_the_live_start_reached_the_job_is_still_judged():
    events = shop() + [said("this ceramic vase is only $9 today", 60), live_started(second=0)]
    assert [(v.actor, v.evidence["listing_id"]) for v in claims_found(events)] == [("creator:C1", "L1")]


def test_a_claim_is_judged_once_per_creator_and_listing_per_cool_down():
    found = claims_found(on_live("this ceramic vase is only $9 today", "ceramic vase, only $9!", "sage vase only $9"))
    assert len(found) == 1


def test_a_live_that_ended_keeps_nothing():
    stages = Stages()
    stages.feed(on_live("this ceramic vase is only $9 today") + [LiveEnded(event_id="end", ts=at(600), live_id="V1",
                                                                            creator_id="C1")])
    assert "V1" not in stages.states and len(stages.finish()) == 1


# ---- the real flow ------------------------------------------------------------------------------


def two_shops_on_live() -> list:
    """Two shops, a LIVE each; one creator says "$9" for 9.99, the other "under $10" for 12; both also say
    honest things, a viewer says a wrong price, and a price cut arrives late. The listings are created
    minutes before the LIVE: a claim may reach the shops stage before them, and must not make them late."""
    events = shop(9.99, since=-2) + shop(12.0, title="Stoneware Mug - Blue", listing="M1", seller="S2", since=-2)
    events += [live_started(0), live_started(0, live="V2", creator="C2", seller="S2")]
    events += [
        said("this ceramic vase is only $9 today", 60),
        said("the ceramic vase, under $10!", 90),
        commented("ceramic vase only $5??", 100, by_host=False),
        said("this stoneware mug, under $10 for you", 60, live="V2", creator="C2"),
        said("the blue stoneware mug is $12", 80, live="V2", creator="C2"),
        said("the linen throw blanket, now $30", 110, live="V2", creator="C2"),
        upsert("M1-other", 30.0, minute=1.5, seller="S2", title="Linen Throw Blanket - Oat"),  # cut at 90 s
        # restocks move each shop's event time past the holds: claims are judged before the input ends
        upsert("L1", 9.99, minute=200 / 60, stock=3, title=VASE),
        upsert("M1", 12.0, minute=200 / 60, seller="S2", stock=3, title="Stoneware Mug - Blue"),
    ]
    return events


@pytest.mark.parametrize("workers", [1, 2])
def test_the_dataflow_finds_each_misleading_claim_once(tmp_path, workers):
    from tests.conftest import replay

    _, out = replay(write_ndjson(tmp_path / "events.jsonl", two_shops_on_live()), tmp_path / "out",
                    workers=workers)
    found = sorted((v["actor"], v["evidence"]["listing_id"], v["evidence"]["kind"], v["evidence"]["stated_price"],
                    v["evidence"]["listing_price"])
                   for v in out["violations.jsonl"] if v["violation_type"] == "misleading_price_claim")
    assert found == [("creator:C1", "L1", "below_listing_price", 9.0, 9.99),
                     ("creator:C2", "M1", "listing_not_under_bound", 10.0, 12.0)]


# ---- prices as people say them ------------------------------------------------------------------


@pytest.mark.parametrize("sentence, expected", [
    ("only $9 today", [(9.0, "$", NOW)]),
    ("under $10!", [(10.0, "$", UNDER)]),
    ("less than 10 dollars", [(10.0, "USD", UNDER)]),
    ("was $49.99, now 19,99 €", [(49.99, "$", WAS), (19.99, "EUR", NOW)]),
    ("it was $30 now $20", [(30.0, "$", WAS), (20.0, "$", NOW)]),
    ("normally £15.50", [(15.5, "GBP", WAS)]),
    ("it retails at $1,299", [(1299.0, "$", WAS)]),
    ("rrp $30, yours for $20", [(30.0, "$", WAS), (20.0, "$", NOW)]),
    ("just 8.50", [(8.5, None, NOW)]),
    ("just 1.200 ¥", [(1200.0, "JPY", NOW)]),
    ("price is 9,99 EUR", [(9.99, "EUR", NOW)]),
    ("12 bucks", [(12.0, "USD", NOW)]),
    ("we have 3 left at $20 each", [(20.0, "$", NOW)]),
    # a bare "$" is the local dollar sign (pesos in Buenos Aires); a prefix names the dollar
    ("only $26.999 here, or US$ 19 abroad", [(26999.0, "$", NOW), (19.0, "USD", NOW)]),
    ("just U$S 19, C$25 or A$ 30", [(19.0, "USD", NOW), (25.0, "CAD", NOW), (30.0, "AUD", NOW)]),
    ("2 colours, size 10, 3 left", []),
    ("the vase is gorgeous", []),
])
def test_amounts_reads_the_prices_a_sentence_states(sentence, expected):
    assert [(a.value, a.currency, a.kind) for a in amounts(sentence)] == expected


@pytest.mark.parametrize("sentence, expected", [
    ("Antes costaba $25.000, hoy a solo $19.999", [(25000.0, "$", WAS), (19999.0, "$", NOW)]),
    ("Estaba a 1.500 pesos, ahora sólo 999", [(1500.0, "$", WAS), (999.0, None, NOW)]),
    ("precio de lista 12.000, te lo dejo en 9.500", [(12000.0, None, WAS), (9500.0, None, NOW)]),
    ("menos de 20 euros", [(20.0, "EUR", UNDER)]),
    ("por debajo de $10", [(10.0, "$", UNDER)]),
    ("son 50 dólares", [(50.0, "USD", NOW)]),
    ("ahorrás $500 en el combo", []),  # a saving, not a price
    ("$300 de descuento", []),
    ("quedan 3 talles, 38 39 40", []),  # bare numbers without a price cue
])
def test_amounts_reads_prices_said_in_spanish(sentence, expected):
    assert [(a.value, a.currency, a.kind) for a in amounts(sentence)] == expected
