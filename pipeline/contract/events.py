"""Contract input events: one typed definition per event type, decoded from bytes.

Every rule of the wire contract (`CONTRACT.md`) is expressed in the types
below, so msgspec checks it while it decodes: required fields, field types,
`ts` as an integer, `price > 0`, actor references, ISO codes. Unknown extra
fields are ignored. Whatever fails becomes a `DeadLetter` with the raw text, a
sentence that names the field and what was wrong, where it came from and when.

>>> ev = decode(b'{"event_id": "e1", "type": "account.login", "ts": 5, '
...             b'"actor": "seller:S1", "device_id": "d", "ip": "1.2.3.4", "country": "US"}')
>>> ev.actor, ev.topic
('seller:S1', 'account-events')
>>> decode(b'{"event_id": "e2", "type": "account.login", "ts": 5, '
...        b'"actor": "buyer:B1", "device_id": "d", "ip": "1.2.3.4", "country": "US"}')
Traceback (most recent call last):
...
pipeline.contract.events.InvalidEvent: field `actor`: expected an actor reference `seller:<id>` or `creator:<id>`, got 'buyer:B1'
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, Union

import msgspec
import pycountry

# ---- field types: each contract rule once --------------------------------

EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Ts = int  # event time, ms since the Unix epoch; msgspec rejects strings and floats
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
ActorRef = Annotated[str, msgspec.Meta(pattern=r"^(seller|creator):[^\s:]{1,128}$")]
Price = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
ImageHash = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{16}$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]

# msgspec checks the shape; membership in the ISO lists is checked after decode.
ISO_4217 = frozenset(c.alpha_3 for c in pycountry.currencies)
ISO_3166_ALPHA2 = frozenset(c.alpha_2 for c in pycountry.countries)


class Event(msgspec.Struct, frozen=True, tag_field="type"):
    """Fields every contract event has (`type` is the tag)."""

    event_id: EventId
    ts: Ts
    topic: ClassVar[str]

    @property
    def type(self) -> str:
        return self.__struct_config__.tag


# ---- listings (topic listing-events) --------------------------------------


class ListingUpserted(Event, frozen=True):
    """The full new state of a listing (`listing.created`, `listing.updated`)."""

    seller_id: Id
    listing_id: Id
    title: str
    category: Id
    price: Price
    currency: Currency
    brand: str | None
    original_price: Price | None
    image_hash: ImageHash | None
    stock: Count | None = None
    topic: ClassVar[str] = "listing-events"


class ListingCreated(ListingUpserted, frozen=True, tag="listing.created"):
    pass


class ListingUpdated(ListingUpserted, frozen=True, tag="listing.updated"):
    pass


class ListingRemoved(Event, frozen=True, tag="listing.removed"):
    seller_id: Id
    listing_id: Id
    topic: ClassVar[str] = "listing-events"


# ---- LIVE streams (topic live-events) ---------------------------------------


class LiveEvent(Event, frozen=True):
    live_id: Id
    creator_id: Id
    topic: ClassVar[str] = "live-events"


class LiveStarted(LiveEvent, frozen=True, tag="live.started"):
    seller_id: Id | None
    title: str


class LiveStats(LiveEvent, frozen=True, tag="live.stats"):
    viewers: Count
    likes: Count
    comments: Count
    shares: Count
    new_followers: Count


class LiveTranscript(LiveEvent, frozen=True, tag="live.transcript"):
    text: str


class LiveComment(LiveEvent, frozen=True, tag="live.comment"):
    user_id: Id
    text: str
    by_host: bool


class LiveEnded(LiveEvent, frozen=True, tag="live.ended"):
    pass


# ---- orders (topic order-events) --------------------------------------------


class OrderPlaced(Event, frozen=True, tag="order.placed"):
    order_id: Id
    seller_id: Id
    buyer_id: Id
    listing_id: Id
    amount: Price
    currency: Currency
    creator_id: Id | None
    live_id: Id | None
    buyer_account_age_days: Count
    device_id: Id | None
    shipping_address_hash: Id | None
    payment_hash: Id | None
    topic: ClassVar[str] = "order-events"


class OrderRefunded(Event, frozen=True, tag="order.refunded"):
    order_id: Id
    seller_id: Id
    buyer_id: Id
    amount: Price
    reason: str | None
    topic: ClassVar[str] = "order-events"


# ---- account security (topic account-events) --------------------------------


class AccountLogin(Event, frozen=True, tag="account.login"):
    actor: ActorRef
    device_id: Id
    ip: Id
    country: Country
    topic: ClassVar[str] = "account-events"


class PayoutChanged(Event, frozen=True, tag="account.payout_changed"):
    actor: ActorRef
    payout_hash: Id
    topic: ClassVar[str] = "account-events"


# ---- governance feedback (topic governance-events) --------------------------


class AppealFiled(Event, frozen=True, tag="appeal.filed"):
    appeal_id: Id
    violation_id: Id
    actor: ActorRef
    reason: str
    topic: ClassVar[str] = "governance-events"


class AppealDecided(Event, frozen=True, tag="appeal.decided"):
    appeal_id: Id
    violation_id: Id
    actor: ActorRef
    decision: Literal["overturned", "upheld"]
    reviewer_id: Id
    topic: ClassVar[str] = "governance-events"


class EducationCompleted(Event, frozen=True, tag="education.completed"):
    actor: ActorRef
    module_id: Id
    topic: ClassVar[str] = "governance-events"


class PolicyChanged(Event, frozen=True, tag="policy.changed"):
    """A new enforcement policy, in force from event time `ts` on (a contract extension).

    The running job writes one when its policy file changes (and applies
    it); `policy` is the whole policy table, so replaying the governance
    topic applies every change at its event time again. The engine checks
    `policy` as it checks a policy file.
    """

    version: Id
    policy: dict
    source: str = ""  # where it came from (the policy file's path)
    previous_version: str = ""
    topic: ClassVar[str] = "governance-events"


EVENT_TYPES: tuple[type[Event], ...] = (
    ListingCreated, ListingUpdated, ListingRemoved,
    LiveStarted, LiveStats, LiveTranscript, LiveComment, LiveEnded,
    OrderPlaced, OrderRefunded,
    AccountLogin, PayoutChanged,
    AppealFiled, AppealDecided, EducationCompleted,
    PolicyChanged,
)
TYPE_NAMES: tuple[str, ...] = tuple(t.__struct_config__.tag for t in EVENT_TYPES)
TOPICS: tuple[str, ...] = tuple(dict.fromkeys(t.topic for t in EVENT_TYPES))
TOPIC_OF_TYPE: dict[str, str] = {t.__struct_config__.tag: t.topic for t in EVENT_TYPES}

AnyEvent = Union[EVENT_TYPES]  # type: ignore[valid-type]

_decoder = msgspec.json.Decoder(AnyEvent)
_loose_decoder = msgspec.json.Decoder()


# ---- errors: a sentence a person can act on ---------------------------------


DECODE_REASONS = frozenset({"invalid_json", "unknown_type", "missing_field", "wrong_type", "invalid_value",
                            "invalid_event"})


class InvalidEvent(ValueError):
    """An input that is not a valid contract event; `reason` is a short metric label."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_FIELD_HINTS = {
    "actor": "an actor reference `seller:<id>` or `creator:<id>`",
    "price": "a number > 0",
    "amount": "a number > 0",
    "original_price": "a number > 0 or null",
    "ts": "an integer (milliseconds since the Unix epoch, UTC)",
    "currency": "an ISO 4217 currency code such as `USD`",
    "country": "an ISO 3166 alpha-2 country code such as `US`",
    "image_hash": "16 hex characters or null",
    "event_id": "a string of 1 to 128 characters",
    "decision": "`overturned` or `upheld`",
}
_AT_FIELD = re.compile(r" - at `\$\.([A-Za-z_]+)`")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")


def _explain(err: msgspec.ValidationError, raw: bytes) -> InvalidEvent:
    """Turn msgspec's message into one that names the field and what was wrong."""
    text = str(err)
    missing = _MISSING.search(text)
    if missing:
        return InvalidEvent(f"missing required field `{missing.group(1)}`", "missing_field")
    at = _AT_FIELD.search(text)
    field = at.group(1) if at else None
    if field == "type":
        got = _field_value(raw, "type")
        return InvalidEvent(
            f"unknown event type {got!r}: expected one of {', '.join(TYPE_NAMES)}", "unknown_type"
        )
    if field is None:
        return InvalidEvent(f"not a contract event: {text}", "invalid_event")
    got = _field_value(raw, field)
    hint = _FIELD_HINTS.get(field)
    detail = f"expected {hint}" if hint else text.split(" - at ")[0].replace("Expected", "expected")
    reason = "wrong_type" if ", got `" in text else "invalid_value"
    return InvalidEvent(f"field `{field}`: {detail}, got {got!r}", reason)


def _field_value(raw: bytes, field: str):
    try:
        obj = _loose_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    return obj.get(field) if isinstance(obj, dict) else None


def decode(raw: bytes) -> Event:
    """Decode one contract event from JSON bytes, or raise `InvalidEvent`."""
    try:
        event = _decoder.decode(raw)
    except msgspec.ValidationError as err:
        raise _explain(err, raw) from None
    except msgspec.DecodeError as err:
        raise InvalidEvent(f"not valid JSON ({err}); send one JSON object per line", "invalid_json") from None
    _check_codes(event)
    return event


def _check_codes(event: Event) -> None:
    currency = getattr(event, "currency", None)
    if currency is not None and currency not in ISO_4217:
        raise InvalidEvent(f"field `currency`: {currency!r} is not an ISO 4217 currency code", "invalid_value")
    country = getattr(event, "country", None)
    if country is not None and country not in ISO_3166_ALPHA2:
        raise InvalidEvent(f"field `country`: {country!r} is not an ISO 3166 alpha-2 country code", "invalid_value")


# ---- who an event is about --------------------------------------------------


def actor_of(event: Event) -> str | None:
    """The actor reference an event is about, if it has one.

    >>> actor_of(decode(b'{"event_id":"e","type":"live.ended","ts":1,"live_id":"V","creator_id":"C7"}'))
    'creator:C7'
    """
    actor = getattr(event, "actor", None)
    if actor is not None:
        return actor
    if isinstance(event, LiveEvent):
        return f"creator:{event.creator_id}"
    seller = getattr(event, "seller_id", None)
    return f"seller:{seller}" if seller is not None else None
