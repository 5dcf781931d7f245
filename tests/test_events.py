"""Decoding contract events: every type decodes; every kind of bad input is explained."""

from __future__ import annotations

import json

import pytest

from pipeline.contract.events import EVENT_TYPES, TYPE_NAMES, InvalidEvent, actor_of, decode


def _lines(path):
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def test_every_contract_event_type_decodes(sample_events):
    decoded = [decode(line) for line in _lines(sample_events)]
    # the shared sample holds the contract's base types; the reviewer extensions (docs/CONTRACT.md) are
    # decoded and replayed in tests/test_workbench_governance.py; `policy.changed` is written by the job itself
    extensions = {"violation.overturned", "review.decided", "brand.registered", "policy.changed"}
    assert {e.type for e in decoded} == set(TYPE_NAMES) - extensions
    assert len(EVENT_TYPES) == 19


def test_decoded_fields_keep_their_values(sample_events):
    order = next(decode(l) for l in _lines(sample_events) if b'"order.placed"' in l)
    assert (order.amount, order.buyer_account_age_days, order.live_id) == (19.0, 412, "V9")
    assert order.topic == "order-events" and actor_of(order) == "seller:S100"


def test_unknown_extra_fields_are_ignored():
    raw = json.dumps({"event_id": "e", "type": "live.ended", "ts": 1, "live_id": "V", "creator_id": "C",
                      "brand_new_field": {"nested": True}}).encode()
    assert decode(raw).live_id == "V"


@pytest.mark.parametrize(
    "line_no, reason, words",
    [
        (0, "invalid_json", "not valid JSON"),
        (1, "invalid_value", "field `price`"),
        (2, "wrong_type", "field `ts`"),
        (3, "unknown_type", "unknown event type 'live.teleport'"),
        (4, "invalid_value", "field `actor`"),
        (5, "missing_field", "missing required field `event_id`"),
    ],
)
def test_malformed_samples_are_explained(malformed_events, line_no, reason, words):
    with pytest.raises(InvalidEvent) as err:
        decode(_lines(malformed_events)[line_no])
    assert err.value.reason == reason
    assert words in str(err.value)


def _listing(**changes) -> bytes:
    body = {"event_id": "e", "type": "listing.created", "ts": 1, "seller_id": "S", "listing_id": "L",
            "title": "Mug", "category": "home", "price": 5.0, "currency": "USD", "brand": None,
            "original_price": None, "image_hash": "0123456789abcdef", "stock": 3}
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v != "<drop>"}).encode()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"price": 0}, "field `price`: expected a number > 0"),
        ({"currency": "usd"}, "field `currency`"),
        ({"currency": "XYZ"}, "'XYZ' is not an ISO 4217 currency code"),
        ({"ts": 1.5}, "field `ts`: expected an integer"),
        ({"ts": True}, "field `ts`"),
        ({"title": "<drop>"}, "missing required field `title`"),
        ({"image_hash": "nothex"}, "field `image_hash`"),
        ({"stock": -1}, "field `stock`"),
        ({"event_id": ""}, "field `event_id`"),
    ],
)
def test_contract_rules_are_enforced(changes, message):
    with pytest.raises(InvalidEvent, match=message.replace("(", r"\(")):
        decode(_listing(**changes))


def test_country_must_be_iso_3166():
    raw = b'{"event_id":"e","type":"account.login","ts":1,"actor":"creator:C1","device_id":"d","ip":"x","country":"ZZ"}'
    with pytest.raises(InvalidEvent, match="not an ISO 3166"):
        decode(raw)


def test_a_json_array_is_not_an_event():
    with pytest.raises(InvalidEvent):
        decode(b"[1, 2, 3]")
