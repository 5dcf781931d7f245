"""Which keyed step, and which shard of it, an event goes to.

Every stateful step is keyed by `family/shard`. The key is a pure function of
the event, so a replay routes identically on any number of workers, and each
shard sees its events in arrival order. Shards are bounded (`shards` per
family, crc32 of the routing field): listing upserts by category, because
pricing detectors learn each category's going rate; everything else by the
actor it is about. A `brand.registered` event goes to every listing shard
(each keeps the registry its pricing detectors judge by), and listing events
also go to the `shop` shard of their seller when a detector joins them with
other evidence about that shop (a LIVE's spoken prices).
"""

from __future__ import annotations

import zlib

from pipeline.contract.events import (
    AccountLogin, AppealDecided, AppealFiled, BrandRegistered, EducationCompleted, Event, ListingCreated,
    ListingRemoved, ListingUpdated, LiveComment, LiveEnded, LiveStarted, LiveStats, LiveTranscript, OrderPlaced,
    OrderRefunded, PayoutChanged, PolicyChanged, ReviewDecided, ViolationOverturned,
)

# event class -> family of the step that owns it
FAMILY_OF: dict[type, str] = {
    ListingCreated: "listing", ListingUpdated: "listing", BrandRegistered: "listing",
    ListingRemoved: "seller", OrderPlaced: "seller", OrderRefunded: "seller",
    LiveStarted: "creator", LiveStats: "creator", LiveTranscript: "creator", LiveComment: "creator",
    LiveEnded: "creator",
    AccountLogin: "actor", PayoutChanged: "actor",
    AppealFiled: "ledger", AppealDecided: "ledger", EducationCompleted: "ledger",
    ViolationOverturned: "ledger", ReviewDecided: "ledger",
    PolicyChanged: "policy",  # to every ledger shard and the models (`engine.dataflow.policy_updates`)
}
GOVERNANCE_TYPES = frozenset(t for t, family in FAMILY_OF.items() if family == "ledger")
# family -> the event field its shard is chosen by (the rest are routed by `actor`)
ROUTE_FIELD = {"listing": "category", "seller": "seller_id", "creator": "creator_id", "actor": "actor"}
SHOP = "shop"  # the family of the second detect stage, keyed by seller


def shard_of(key: str, shards: int) -> int:
    """A stable shard number (crc32, unlike `hash()`, is the same in every process).

    >>> shard_of("seller:S1", 64) == shard_of("seller:S1", 64)
    True
    """
    return zlib.crc32(key.encode()) % shards


def route_keys(event: Event, shards: int) -> tuple[str, ...]:
    """`family/shard` of every detect shard that reads this event (the first is its owner).

    >>> from pipeline.contract.events import decode
    >>> route_keys(decode(b'{"event_id":"e","type":"live.ended","ts":1,"live_id":"V","creator_id":"C7"}'), 64)
    ('creator/54',)
    >>> len(route_keys(decode(b'{"event_id":"b","type":"brand.registered","ts":1,"brand":"Luma"}'), 64))
    64
    """
    if type(event) is BrandRegistered:
        return tuple(f"listing/{i}" for i in range(shards))
    family = FAMILY_OF[type(event)]
    return (f"{family}/{shard_of(getattr(event, ROUTE_FIELD.get(family, 'actor')), shards)}",)


def shop_key(seller_id: str, shards: int) -> str:
    """Shard of the second detect stage that keeps one shop's listings and what is said about them."""
    return f"{SHOP}/{shard_of(seller_id, shards)}"


def ledger_key(actor: str, shards: int) -> str:
    """Shard of the ledger step that keeps `actor`'s standing."""
    return f"ledger/{shard_of(actor, shards)}"


def ledger_keys(shards: int) -> list[str]:
    """Every shard of the ledger step (what a policy change must reach)."""
    return [f"ledger/{n}" for n in range(shards)]


class KeyMemo(dict):
    """`key_of(value)` remembered per value: the decode step routes every event, and ids repeat.

    Bounded: emptied when it holds `limit` values (a stream of endless new ids costs a recomputation,
    never memory).

    >>> keys = KeyMemo(lambda seller: shop_key(seller, 64))
    >>> keys["S1"] == shop_key("S1", 64), len(keys)
    (True, 1)
    """

    def __init__(self, key_of, limit: int = 65_536) -> None:
        super().__init__()
        self.key_of = key_of
        self.limit = limit

    def __missing__(self, value):
        if len(self) >= self.limit:
            self.clear()
        key = self[value] = self.key_of(value)
        return key


class Router:
    """`route_keys` and `shop_key`, memoised per routing value (the decode step's hot path).

    >>> from pipeline.contract.events import decode
    >>> router = Router(64)
    >>> event = decode(b'{"event_id":"e","type":"live.ended","ts":1,"live_id":"V","creator_id":"C7"}')
    >>> router.route_keys(event) == route_keys(event, 64), router.shop_key("S1") == shop_key("S1", 64)
    (True, True)
    """

    def __init__(self, shards: int) -> None:
        self.shards = shards
        # event class -> (the field it is routed by, that family's memo)
        by_family = {family: KeyMemo(lambda value, family=family: (f"{family}/{shard_of(value, shards)}",))
                     for family in ROUTE_FIELD}
        self._routes = {kind: (ROUTE_FIELD[family], by_family[family])
                        for kind, family in FAMILY_OF.items() if family in by_family and kind is not BrandRegistered}
        self._shops = KeyMemo(lambda seller_id: shop_key(seller_id, shards))

    def route_keys(self, event: Event) -> tuple[str, ...]:
        route = self._routes.get(type(event))
        if route is None:
            return route_keys(event, self.shards)  # a brand registration: every listing shard
        return route[1][getattr(event, route[0])]

    def shop_key(self, seller_id: str) -> str:
        return self._shops[seller_id]
