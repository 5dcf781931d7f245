"""order_brushing: rings of new buyer accounts sharing devices, cards or addresses; of aged ones sharing devices or cards."""

from __future__ import annotations

import pickle
import random

import pytest

from pipeline.contract.events import OrderPlaced, OrderRefunded
from tests.detector_helpers import feed, shipped, through_the_flow

T0 = 1_793_491_200_000
MINUTE = 60_000
HOUR = 60 * MINUTE

_ids = iter(range(10**9))


def order(minute, buyer, *, seller="S1", age=1, device=None, payment=None, address=None, listing="L1",
          amount=2.99, order_id=None):
    n = next(_ids)
    return OrderPlaced(
        event_id=f"e{n}", ts=T0 + int(minute * MINUTE), order_id=order_id or f"O{n}", seller_id=seller,
        buyer_id=buyer, listing_id=listing, amount=amount, currency="USD", creator_id=None, live_id=None,
        buyer_account_age_days=age, device_id=device, shipping_address_hash=address, payment_hash=payment,
    )


def refund(o: OrderPlaced, minute):
    return OrderRefunded(event_id=f"r{next(_ids)}", ts=T0 + int(minute * MINUTE), order_id=o.order_id,
                         seller_id=o.seller_id, buyer_id=o.buyer_id, amount=o.amount, reason=None)


def ordinary_flow(seller="S1", hours=3, per_hour=8, seed=1, start=0):
    """Orders from old accounts, each with its own device, card and address."""
    rng = random.Random(seed)
    out = []
    for i in range(hours * per_hour):
        b = f"{seller}-old{rng.randrange(10**6)}"
        out.append(order(start + i * 60 / per_hour, b, seller=seller, age=rng.randint(90, 2000), device=f"d-{b}",
                         payment=f"p-{b}", address=f"a-{b}", listing=f"L{rng.randint(1, 20)}",
                         amount=round(rng.uniform(15, 80), 2)))
    return out


def ring(start_minute, n_orders, *, seller="S1", accounts=5, devices=2, every=1.5, listing="L9"):
    """A brushing ring: fresh accounts on a couple of devices, one card and one address, one cheap listing."""
    return [order(start_minute + k * every, f"{seller}-fake{k % accounts}", seller=seller, age=k % 3,
                  device=f"dev-ring-{k % accounts % devices}", payment="pay-ring", address=f"addr-ring-{k % 2}",
                  listing=listing, amount=1.99)
            for k in range(n_orders)]


def test_a_ring_of_new_accounts_is_found_at_the_sixth_order_with_its_evidence():
    det = shipped("order_brushing")
    fakes = ring(200, 20)
    found = feed(det, ordinary_flow(hours=3) + fakes[:1] + [refund(fakes[0], 203)] + fakes[1:])
    assert len(found) == 1
    s = found[0]
    assert (s.actor, s.violation_type) == ("seller:S1", "order_brushing")
    assert s.detected_at == fakes[5].ts and s.window_start == fakes[0].ts
    ev = s.evidence
    assert ev["orders"] == 6 and ev["buyers"] == 5 and ev["new_account_share"] == 1.0
    assert ev["order_ids"] == [o.order_id for o in fakes[:6]]
    assert ev["listings"] == {"L9": 6} and ev["refunds_so_far"] == 1
    assert {x["kind"] for x in ev["shared_identifiers"]} == {"device", "payment", "address"}
    payment = next(x for x in ev["shared_identifiers"] if x["kind"] == "payment")
    assert payment == {"kind": "payment", "hash": "pay-ring", "orders": 6, "buyers": 5}
    assert ev["median_amount"] < ev["seller_typical_amount"]
    assert ev["baseline_orders_per_hour"] > 0 and ev["baseline_new_account_share"] == 0.0
    assert 0.6 <= s.confidence <= 1.0
    assert "6 orders" in s.explanation and "5 new buyer accounts" in s.explanation


def aged_ring(start_minute, n_orders, *, seller="S1", accounts=6, devices=2, every=1.5, listing="L9"):
    """Bought aged accounts (months to years old) on a couple of phones and one card, each its own address."""
    return [order(start_minute + k * every, f"{seller}-aged{k % accounts}", seller=seller,
                  age=200 + 90 * (k % accounts), device=f"dev-aged-{k % accounts % devices}", payment="pay-aged",
                  address=f"addr-aged-{k % accounts}", listing=listing, amount=1.99)
            for k in range(n_orders)]


def test_a_ring_of_aged_accounts_on_shared_phones_and_a_card_is_found_at_the_sixth_order_with_its_evidence():
    det = shipped("order_brushing")
    fakes = aged_ring(200, 20, accounts=6)
    found = feed(det, ordinary_flow(hours=3) + fakes)
    assert len(found) == 1
    s = found[0]
    assert (s.actor, s.violation_type) == ("seller:S1", "order_brushing")
    assert s.detected_at == fakes[5].ts and s.window_start == fakes[0].ts
    ev = s.evidence
    assert ev["orders"] == 6 and ev["buyers"] == 6 and ev["buyers"] >= ev["thresholds"]["min_buyers_any_age"]
    assert ev["new_account_buyers"] == 0 and ev["new_account_share"] == 0.0
    assert ev["linked_through"] == ["device", "payment"]
    assert {x["kind"] for x in ev["shared_identifiers"]} == {"device", "payment"}  # addresses are each their own
    card = next(x for x in ev["shared_identifiers"] if x["kind"] == "payment")
    assert card == {"kind": "payment", "hash": "pay-aged", "orders": 6, "buyers": 6}
    assert ev["order_ids"] == [o.order_id for o in fakes[:6]]
    assert 0.5 <= s.confidence <= 1.0
    assert "6 orders" in s.explanation and "6 buyer accounts, none of them new" in s.explanation
    assert "same device or payment details" in s.explanation


def test_a_household_of_old_accounts_sharing_a_laptop_and_a_card_is_clean():
    det = shipped("order_brushing")
    need = det.config.min_buyers_any_age
    family = [order(10 + 2 * i, f"member{i % (need - 1)}", age=900, device="family-laptop", payment="family-card",
                    address="home") for i in range(12)]  # one account fewer than a ring, a dozen orders
    assert feed(det, ordinary_flow(hours=1) + family) == []


def test_old_accounts_tied_only_by_an_address_are_no_ring_however_many():
    """A mailroom or a parcel locker ties strangers by address; old accounts need a shared device or card."""
    det = shipped("order_brushing")
    locker = [order(10 + i, f"neighbour{i}", age=300 + i, address="parcel-locker-7", device=f"d{i}",
                    payment=f"p{i // 2}") for i in range(20)]  # couples share a card: pairs, not a ring
    assert feed(det, locker) == []


def test_aged_accounts_are_judged_against_the_sellers_own_linked_flow():
    """A shop whose old-account buyers routinely share lab computers needs a much bigger aged ring."""
    def lab_shop(seller):
        out = []
        for k in range(60):  # ten hours of students on shared lab computers, three to a machine, 6 per hour
            for member in range(3):
                out.append(order(k * 10 + member, f"{seller}-student{k}-{member}", seller=seller, age=500,
                                 device=f"lab-pc{k}", payment=f"p{k}-{member}", address=f"a{k}-{member}"))
        return out

    fakes = aged_ring(610, 8, seller="S1")
    assert feed(shipped("order_brushing"), lab_shop("S1") + fakes) == []
    assert len(feed(shipped("order_brushing"), aged_ring(610, 8, seller="S2"))) == 1


def test_a_first_order_promo_of_new_accounts_with_their_own_details_is_clean():
    det = shipped("order_brushing")
    promo = [order(60 + i * 0.8, f"newbie{i}", age=0, device=f"d-new{i}", payment=f"p-new{i}", address=f"a-new{i}",
                   listing="L2", amount=9.99) for i in range(50)]
    assert feed(det, ordinary_flow(hours=2) + promo) == []


def test_a_genuine_flash_sale_of_old_accounts_stays_clean():
    det = shipped("order_brushing")
    flow = ordinary_flow(hours=3, per_hour=6)
    rng = random.Random(5)
    sale = []
    for i in range(150):  # 150 orders in 20 minutes, 20x the usual rate, distinct people
        b = f"shopper{i}"
        sale.append(order(200 + i * 20 / 150, b, age=rng.randint(60, 3000), device=f"d-{b}", payment=f"p-{b}",
                          address=f"a-{b}", listing="L3", amount=12.5))
    assert feed(det, flow + sale) == []


def test_a_household_sharing_an_address_is_clean():
    det = shipped("order_brushing")
    family = [order(10 + i, f"kid{i % 3}", age=5, device="family-laptop", address="home", payment=f"card{i % 3}")
              for i in range(9)]  # three new accounts, nine orders: a family, not a ring
    assert feed(det, ordinary_flow(hours=1) + family) == []


def test_old_accounts_shipping_to_one_office_are_clean():
    det = shipped("order_brushing")
    office = [order(10 + i, f"colleague{i}", age=400 + i, address="office-mailroom", device=f"d{i}",
                    payment=f"p{i}") for i in range(12)]
    assert feed(det, office) == []


def test_identifiers_that_are_null_never_link_accounts():
    det = shipped("order_brushing")
    anonymous = [order(10 + i, f"new{i}", age=0) for i in range(20)]
    assert feed(det, anonymous) == []


def test_a_ring_spread_thinner_than_the_window_is_clean():
    det = shipped("order_brushing")
    slow = ring(0, 12, every=40)  # one order every 40 minutes: at most 4 in a 2-hour window
    assert feed(det, slow) == []


def test_the_ring_is_judged_against_the_sellers_own_linked_flow():
    """A shop whose buyers routinely share identifiers in pairs needs a much bigger ring."""
    def campus_shop(seller):
        pairs = []
        for k in range(60):  # ten hours of new-account pairs sharing a dorm address, 6 per hour
            for member in range(2):
                pairs.append(order(k * 10 + member, f"{seller}-student{k}-{member}", seller=seller, age=3,
                                   address=f"dorm{k}", device=f"d{k}-{member}", payment=f"p{k}-{member}"))
        return pairs

    det = shipped("order_brushing")
    fakes = ring(610, 8, seller="S1")
    assert feed(det, campus_shop("S1") + fakes) == []
    fresh = shipped("order_brushing")
    assert len(feed(fresh, ring(610, 8, seller="S2"))) == 1


def test_late_and_shuffled_orders_give_the_same_finding():
    det = shipped("order_brushing")
    fakes = ring(100, 10)
    shuffled = fakes[:]
    random.Random(3).shuffle(shuffled)  # within 15 minutes, like late delivery
    found = feed(det, ordinary_flow(hours=2) + shuffled)
    assert len(found) == 1
    ev = found[0].evidence
    assert found[0].window_start >= fakes[0].ts and ev["orders"] >= 6 and ev["buyers"] >= 4


def test_an_order_delivered_twice_counts_once():
    det = shipped("order_brushing")
    fakes = ring(100, 6)
    again = [OrderPlaced(**{**{f: getattr(o, f) for f in o.__struct_fields__}, "event_id": o.event_id + "-again"})
             for o in fakes[:5]]
    states: dict = {}
    assert feed(det, fakes[:5] + again, states) == []
    assert len(feed(det, fakes[5:], states)) == 1  # the sixth distinct order completes the ring


def test_one_violation_per_cooldown_and_again_after_it():
    det = shipped("order_brushing")
    first = ring(0, 40, every=1)
    later = ring(25 * 60, 10, accounts=5, listing="L10")  # 25 hours later: past the one-day cool-down
    found = feed(det, first + later)
    assert len(found) == 2
    assert found[1].detected_at - found[0].detected_at > 24 * HOUR


def test_refunds_of_orders_it_never_saw_are_ignored():
    det = shipped("order_brushing")
    ghost = order(0, "B1")
    assert feed(det, [refund(ghost, 5)]) == []


def test_state_stays_bounded_over_a_long_busy_stream():
    det = shipped("order_brushing", max_window_orders=300)
    states: dict = {}
    feed(det, ordinary_flow(hours=48, per_hour=200, seed=9), states)
    state = states["S1"]
    assert len(state.orders) <= 300
    assert len(state.by_identifier) <= 3 * 300
    assert len(state.cooldown.last) <= 1


def test_state_over_many_sellers_is_one_small_entry_each():
    det = shipped("order_brushing")
    states: dict = {}
    for s in range(2_000):
        feed(det, [order(s * 0.01, f"B{s}", seller=f"S{s}", device=f"d{s}")], states)
    assert len(states) == 2_000
    assert all(len(st.orders) == 1 for st in states.values())


@pytest.mark.parametrize("make_ring", [ring, aged_ring])
def test_state_survives_pickling_mid_ring(make_ring):
    det = shipped("order_brushing")
    fakes = make_ring(100, 10)
    states: dict = {}
    feed(det, ordinary_flow(hours=2) + fakes[:4], states)
    restored = pickle.loads(pickle.dumps(states))
    found = feed(det, fakes[4:], restored)
    assert len(found) == 1 and found[0].detected_at == fakes[5].ts


def test_brushing_runs_through_the_real_flow(tmp_path):
    events = ordinary_flow(hours=2, seller="S7") + ring(130, 8, seller="S7")
    out = through_the_flow(events, tmp_path)
    brushing = [v for v in out["violations.jsonl"] if v["violation_type"] == "order_brushing"]
    assert [(v["actor"], v["points"], v["policy_id"]) for v in brushing] == [("seller:S7", 12, "SG-ORD-001")]


def test_an_aged_ring_runs_through_the_real_flow(tmp_path):
    events = ordinary_flow(hours=2, seller="S8") + aged_ring(130, 10, seller="S8")
    out = through_the_flow(events, tmp_path)
    brushing = [v for v in out["violations.jsonl"] if v["violation_type"] == "order_brushing"]
    assert [(v["actor"], v["points"], v["evidence"]["linked_through"]) for v in brushing] == [
        ("seller:S8", 12, ["device", "payment"])]

