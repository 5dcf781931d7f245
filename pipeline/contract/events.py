"""Contract input events: one typed definition per event type, decoded from bytes.

Every rule of the wire contract (`CONTRACT.md`) is expressed in the types
below, so msgspec checks it while it decodes: required fields, field types,
`ts` as an integer, `price > 0`, actor references, ISO codes. Unknown extra
fields are ignored. Whatever fails becomes a `DeadLetter` with the raw text, a
sentence that names the field and what was wrong, where it came from and when.

Every input may come from an attacker, so decoding is bounded (`InputLimits`):
nesting deeper than `max_depth` (a 10,000-deep object must not exhaust the
stack), free-text fields longer than `max_text_chars`, and event times outside
`[earliest_ts, latest_ts]` (a `ts` of 2**70 or one before 2000) are invalid
events like any other. A UTF-8 byte-order mark before the object is ignored.

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

import json
import re
from itertools import accumulate
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


class BrandRegistered(Event, frozen=True, tag="brand.registered"):
    """Extension: the platform's brand registry protects `brand` (and its `aliases`) from replicas."""

    brand: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    aliases: Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=128)]], msgspec.Meta(max_length=32)] = []
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
    reason: str | None = None  # extension: the reviewer's reason, shown to the seller or creator
    topic: ClassVar[str] = "governance-events"


class ViolationOverturned(Event, frozen=True, tag="violation.overturned"):
    """Extension: a reviewer overturns a violation nobody appealed; applied as an overturned appeal."""

    violation_id: Id
    actor: ActorRef
    reviewer_id: Id
    reason: str
    topic: ClassVar[str] = "governance-events"

    def as_decision(self) -> AppealDecided:
        """The same verdict as an overturned appeal (its appeal id is this event's id)."""
        return AppealDecided(event_id=self.event_id, ts=self.ts, appeal_id=self.event_id,
                             violation_id=self.violation_id, actor=self.actor, decision="overturned",
                             reviewer_id=self.reviewer_id, reason=self.reason)


class ReviewDecided(Event, frozen=True, tag="review.decided"):
    """Extension: a reviewer's verdict on a review-queue entry (`model`, `entry_ts` name the entry).

    `dismissed`: nothing wrong, the anomaly model may learn the entry's `features` as usual behaviour;
    `escalated`: confirmed as worth action. Carries no points.
    """

    actor: ActorRef
    model: Id
    entry_ts: Ts
    decision: Literal["dismissed", "escalated"]
    reviewer_id: Id
    features: dict[str, float] = msgspec.field(default_factory=dict)
    reason: str | None = None
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
    ListingCreated, ListingUpdated, ListingRemoved, BrandRegistered,
    LiveStarted, LiveStats, LiveTranscript, LiveComment, LiveEnded,
    OrderPlaced, OrderRefunded,
    AccountLogin, PayoutChanged,
    AppealFiled, AppealDecided, EducationCompleted,
    ViolationOverturned, ReviewDecided, PolicyChanged,  # extensions (docs/CONTRACT.md)
)
TYPE_NAMES: tuple[str, ...] = tuple(t.__struct_config__.tag for t in EVENT_TYPES)
TOPICS: tuple[str, ...] = tuple(dict.fromkeys(t.topic for t in EVENT_TYPES))
TOPIC_OF_TYPE: dict[str, str] = {t.__struct_config__.tag: t.topic for t in EVENT_TYPES}

AnyEvent = Union[EVENT_TYPES]  # type: ignore[valid-type]

_decoder = msgspec.json.Decoder(AnyEvent)
_loose_decoder = msgspec.json.Decoder()

# Free-text fields (no length in the contract), per event type: `max_text_chars` bounds them.
TEXT_FIELDS: dict[type, tuple[str, ...]] = {
    t: tuple(f.name for f in msgspec.structs.fields(t) if f.type in (str, str | None)) for t in EVENT_TYPES
}


class InputLimits(msgspec.Struct, frozen=True):
    """What one input may cost: nesting depth, free-text length, and the plausible range of `ts`.

    The defaults are far beyond any real event (the job's `[input]` table
    sets them); `earliest_ts` is 2000-01-01 and `latest_ts` 2100-01-01 (UTC).
    """

    max_depth: int = 64
    max_text_chars: int = 65_536
    earliest_ts: int = 946_684_800_000
    latest_ts: int = 4_102_444_800_000


DEFAULT_LIMITS = InputLimits()


# ---- errors: a sentence a person can act on ---------------------------------


DECODE_REASONS = frozenset({"invalid_json", "unknown_type", "missing_field", "wrong_type", "invalid_value",
                            "invalid_event", "duplicate_type", "too_deep", "field_too_long", "line_too_long",
                            "ts_out_of_range", "ts_in_future"})


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
    "decision": "`overturned` or `upheld` (`dismissed` or `escalated` for review.decided)",
}
_AT_FIELD = re.compile(r" - at `\$\.([A-Za-z_]+)`")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_INVALID_VALUE = re.compile(r"^Invalid value (.*) - at `")


def _explain(err: msgspec.ValidationError, raw: bytes) -> InvalidEvent:
    """Turn msgspec's message into one that names the field and what was wrong."""
    text = str(err)
    missing = _MISSING.search(text)
    if missing:
        return InvalidEvent(f"missing required field `{missing.group(1)}`", "missing_field")
    at = _AT_FIELD.search(text)
    field = at.group(1) if at else None
    if field == "type":
        return _explain_type(text, raw)
    if field is None:
        return InvalidEvent(f"not a contract event: {text}", "invalid_event")
    got = _field_value(raw, field)
    hint = _FIELD_HINTS.get(field)
    detail = f"expected {hint}" if hint else text.split(" - at ")[0].replace("Expected", "expected")
    reason = "wrong_type" if ", got `" in text else "invalid_value"
    return InvalidEvent(f"field `{field}`: {detail}, got {got!r}", reason)


def _explain_type(text: str, raw: bytes) -> InvalidEvent:
    """The `type` is wrong: name the value msgspec refused, or every `type` when the key is repeated."""
    given = _top_level_values(raw, "type")
    if len(given) > 1:
        return InvalidEvent(f"the key `type` is given {len(given)} times ({', '.join(map(repr, given))}); "
                            "send exactly one `type` per event", "duplicate_type")
    refused = _INVALID_VALUE.search(text)
    got = refused.group(1) if refused else repr(given[0] if given else None)
    return InvalidEvent(f"unknown event type {got}: expected one of {', '.join(TYPE_NAMES)}", "unknown_type")


def _top_level_values(raw: bytes, key: str) -> list:
    """Every value of `key` in the top-level object, repeats included (a dict keeps only the last)."""
    pairs: list = []

    def keep(p: list) -> dict:  # the outermost object is hooked last: its pairs are what stays
        pairs[:] = p
        return dict(p)

    try:
        json.loads(raw, object_pairs_hook=keep)
    except (ValueError, RecursionError):
        return []
    return [value for k, value in pairs if k == key]


def _field_value(raw: bytes, field: str):
    try:
        obj = _loose_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    return obj.get(field) if isinstance(obj, dict) else None


BOM = b"\xef\xbb\xbf"


def decode(raw: bytes, limits: InputLimits | None = None) -> Event:
    """Decode one contract event from JSON bytes, or raise `InvalidEvent`.

    Without `limits` only the contract's own rules apply (and no nesting can
    exhaust the stack); the job passes its `[input]` limits.

    >>> deep = b'{"event_id":"e","type":"live.ended","ts":1,"live_id":"V","creator_id":"C","x":' + b"[" * 10_000
    >>> decode(deep + b"]" * 10_000 + b"}")
    Traceback (most recent call last):
    ...
    pipeline.contract.events.InvalidEvent: nested deeper than 64 levels; send flat JSON objects (the contract's events nest at most 2 levels)
    >>> decode(b'{"event_id":"e","type":"live.ended","ts":5,"live_id":"V","creator_id":"C"}', DEFAULT_LIMITS)
    Traceback (most recent call last):
    ...
    pipeline.contract.events.InvalidEvent: field `ts`: 5 is not a plausible event time (milliseconds since the Unix epoch between 946684800000 and 4102444800000, [input] earliest_event_time and latest_event_time); send the time the event happened
    """
    max_depth = (limits or DEFAULT_LIMITS).max_depth
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    try:
        event = _decoder.decode(raw)
    except RecursionError:  # deeper than the interpreter's stack allows: deeper than any limit
        raise _too_deep(max_depth) from None
    except msgspec.ValidationError as err:
        raise _explain(err, raw) from None
    except msgspec.DecodeError as err:
        raise InvalidEvent(f"not valid JSON ({err}); send one JSON object per line", "invalid_json") from None
    codes, texts = _CHECKED_FIELDS[type(event)]
    if codes:
        _check_codes(event, codes)
    if limits is not None:
        # Two C-speed counts first: only a record with that many brackets can nest too deep.
        if raw.count(b"[") + raw.count(b"{") > max_depth and nesting_depth(raw, max_depth) > max_depth:
            raise _too_deep(max_depth)
        if texts:
            _check_texts(event, texts, limits.max_text_chars)
        if not limits.earliest_ts <= event.ts <= limits.latest_ts:
            _check_time(event.ts, limits)
    return event


def _too_deep(max_depth: int) -> InvalidEvent:
    return InvalidEvent(f"nested deeper than {max_depth} levels; send flat JSON objects "
                        "(the contract's events nest at most 2 levels)", "too_deep")


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_DEPTH_STEP = [0] * 256
for _c in b"[{":
    _DEPTH_STEP[_c] = 1
for _c in b"]}":
    _DEPTH_STEP[_c] = -1


def nesting_depth(raw: bytes, at_most: int) -> int:
    """How deep the arrays and objects of valid JSON `raw` nest (exact above `at_most`; linear time).

    >>> nesting_depth(b'{"a": [1, {"b": "[[[["}]}', 0), nesting_depth(b'{"a": 1}', 64)
    (3, 0)
    """
    if raw.count(b"[") + raw.count(b"{") <= at_most:  # cannot be deeper: two C-speed counts
        return 0
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)  # brackets inside strings do not nest
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _check_texts(event: Event, names: tuple[str, ...], max_chars: int) -> None:
    for name in names:
        value = getattr(event, name)
        if value is not None and len(value) > max_chars:
            raise InvalidEvent(f"field `{name}`: {len(value):,} characters, more than the limit of {max_chars:,} "
                               "([input] max_text_chars); send shorter texts", "field_too_long")


def _check_time(ts: int, limits: InputLimits) -> None:
    if not limits.earliest_ts <= ts <= limits.latest_ts:
        raise InvalidEvent(f"field `ts`: {ts} is not a plausible event time (milliseconds since the Unix epoch "
                           f"between {limits.earliest_ts} and {limits.latest_ts}, [input] earliest_event_time and "
                           "latest_event_time); send the time the event happened", "ts_out_of_range")


_CODE_LISTS = {"currency": (ISO_4217, "an ISO 4217 currency code"),
               "country": (ISO_3166_ALPHA2, "an ISO 3166 alpha-2 country code")}


def _check_codes(event: Event, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(event, name)
        known, what = _CODE_LISTS[name]
        if value is not None and value not in known:
            raise InvalidEvent(f"field `{name}`: {value!r} is not {what}", "invalid_value")


# event type -> (its fields checked against an ISO list, its free-text fields): looked up once per event
# instead of probing every event for every such field.
_CHECKED_FIELDS: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {
    t: (tuple(name for name in _CODE_LISTS if name in t.__struct_fields__), TEXT_FIELDS[t]) for t in EVENT_TYPES
}


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
