"""What every detector shares: the `Signal` it emits and the shape it has.

A detector is a small object with a frozen config, explicit per-entity state
and one method, `on_event(state, event) -> (state, signals)`. It never imports
Bytewax: the dataflow keeps one state per entity (a live, a seller, a
listing...) and hands it back on the next event, so detectors are trivial to
unit-test and would run on any engine. Returning `None` as state forgets the
entity.

Detectors say *what is true* (a `Signal`); the policy decides what a signal
costs and the ledger what to do about it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, Sequence, TypeVar

S = TypeVar("S")

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Signal:
    """A finding: an actor broke a rule, with the evidence that shows it.

    `subject` names what the finding is about (a live, a listing, a cluster of
    duplicates); together with actor, type and `window_start` it makes the
    violation id, so the same evidence always yields the same violation.
    """

    actor: str
    violation_type: str
    detector: str
    subject: str
    detected_at: int
    window_start: int
    window_end: int
    confidence: float
    evidence: dict[str, Any]
    explanation: str


@dataclass(frozen=True, slots=True)
class Forward:
    """Evidence a detector hands to its own second stage, keyed by a shop (`seller_id`).

    Some evidence only means something next to another entity's state: what a
    creator says on a LIVE is judged against the listings of the shop the LIVE
    sells for. The first stage (keyed by creator) forwards the claim; the
    engine routes it to the shard of the `shops` stage that keeps that shop's
    listings, where the same detector reads it (see `joined_types`).
    """

    seller_id: str
    item: Any  # a struct with `event_id` and `ts`, of a type in the detector's `joined_types`


@dataclass(frozen=True, slots=True)
class Wake:
    """Call the detector's `on_wake(state, at)` for this entity once its shard's event time reaches `at`.

    An event-time timer: a detector that must wait for late evidence (a price
    change delivered after a claim about it) judges when the wait is over;
    at the end of a replay every pending wake fires.
    """

    at: int


class Detector(Protocol, Generic[S]):
    """The shape of a detector (structural: detectors need not inherit it).

    `detectors.registry.register` checks it when the class registers.
    """

    name: ClassVar[str]
    """Permanent detector id, written into every violation it finds (`word_v1`; never renamed)."""

    table: ClassVar[str]
    """Its configuration table: `[detectors.TABLE]` in config/shopguard.toml."""

    Config: ClassVar[type]
    """The frozen msgspec struct that table is converted into (`__init__` takes one)."""

    violation_types: ClassVar[tuple[str, ...]]
    """The catalog types it can issue; the policy must price each one."""

    event_types: ClassVar[frozenset[type]]
    """The event classes this detector reads; others never reach it."""

    idle_eviction_ms: int | None
    """How long an entity's state outlives its last event (None: the job's `idle_eviction_seconds`)."""

    def entity(self, event: Any) -> str | None:
        """The key of the state this event updates (None: nothing to do)."""
        ...

    def on_event(self, state: S | None, event: Any) -> tuple[S | None, Sequence[Signal]]:
        """Update one entity's state with one event; return new state and signals.

        The returned sequence may also hold `Forward` and `Wake` requests.
        """
        ...

    # Optional, checked at registration when present:
    #   joined_types: frozenset[type]   event types it reads in the second, `shops` stage (keyed by seller)
    #   shared_types: frozenset[type]   event types that update its shard-wide state through
    #                                   `on_shared(shared, event) -> shared`; its `on_event` then takes
    #                                   `shared=` (e.g. the brand registry every category is judged by)
    #   on_wake(state, at) -> (state, outputs)   for the `Wake` requests it makes


@dataclass(slots=True)
class CoolDown:
    """Remembers when a finding was last issued, so it is issued once per cool-down.

    >>> c = CoolDown(60_000)
    >>> c.ready("spam", 0), c.ready("spam", 30_000), c.ready("spam", 61_000)
    (True, False, True)
    """

    period_ms: int
    last: dict[str, int] = field(default_factory=dict)

    def ready(self, finding: str, ts: int) -> bool:
        """True (and remember `ts`) if `finding` was not issued within the period."""
        previous = self.last.get(finding)
        if previous is not None and ts - previous < self.period_ms:
            return False
        self.last[finding] = ts
        return True


def clamp01(x: float) -> float:
    """Confidence lives in 0..1."""
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def network_of(ip: str) -> str:
    """The network part of an address (IPv4 /16, IPv6 /32): a new phone at home keeps it, a stranger does not.

    Coarser than the address: a home or mobile connection is re-addressed
    within its provider's block, a proxy elsewhere is not.

    >>> network_of("24.1.2.3"), network_of("2001:db8:1:2::7")
    ('24.1', '2001:db8')
    """
    return ".".join(ip.split(".", 2)[:2]) if "." in ip else ":".join(ip.split(":", 2)[:2])


# ---- recency-ordered dicts: key -> last-seen ts, least recent first -------------------
# Used for bounded memories (known devices, recent commenters, seen ids). Give
# them an OrderedDict when they are large or churn: emptying a plain dict from
# the front rescans its deleted slots on every `next(iter(...))`.


def remember_recent(seen: dict[str, int], key: str, ts: int, limit: int) -> bool:
    """Remember `key` as seen at `ts`, keeping at most `limit` keys; True if it was new.

    >>> seen = {}
    >>> [remember_recent(seen, k, t, 2) for k, t in [("a", 1), ("b", 2), ("a", 3), ("c", 4)]]
    [True, True, False, True]
    >>> list(seen)
    ['a', 'c']
    """
    previous = seen.pop(key, None)
    seen[key] = ts if previous is None or ts > previous else previous
    while len(seen) > limit:
        del seen[next(iter(seen))]
    return previous is None


def forget_before(seen: dict[str, int], cutoff: int) -> None:
    """Forget keys last seen before `cutoff` (only the front is checked: the dict is in recency order).

    An OrderedDict is trimmed with one `popitem` per key forgotten (the first key kept is put back in
    front) instead of three lookups each.

    >>> seen = {"a": 1, "b": 5}
    >>> forget_before(seen, 3); seen
    {'b': 5}
    >>> ordered = OrderedDict(a=1, b=5, c=2)
    >>> forget_before(ordered, 3); list(ordered.items())
    [('b', 5), ('c', 2)]
    """
    if isinstance(seen, OrderedDict):
        while seen:
            key, ts = seen.popitem(last=False)
            if ts >= cutoff:
                seen[key] = ts
                seen.move_to_end(key, last=False)
                return
        return
    while seen:
        oldest = next(iter(seen))
        if seen[oldest] >= cutoff:
            return
        del seen[oldest]
