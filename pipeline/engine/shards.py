"""The shard runtime: how every keyed step keeps event time and state, and its one Bytewax adapter.

Every stateful step of the dataflow is a *shard* of plain Python (`Shard`):
a batch of items in, records out, state that can be snapshotted. What the
shards share lives here, once:

- `EventClock`: a shard's event time. It drops redeliveries (event ids
  remembered for a horizon of event time), says which events are too late
  (older than the watermark minus the allowed lateness), and says when it is
  time to sweep idle state. Its watermark is the `EVENT_TIME_QUORUM`-th
  newest event time it has seen (`QuorumTime`), never the newest alone: one
  future-dated event (an attacker's) cannot make every later event of the
  shard "late", nor sweep away the shard's dedupe ids and state.
- `EntityStates`: per-entity state (a seller, a LIVE, a category...) kept in
  activity order, so idle entities are evicted from the front in O(1);
  `ExpiringStates` for state that carries its own expiry.
- `EventTimeOrder`: items held and applied in event-time order, for steps fed
  by many shards on other workers (the ledger, the models): a replay applies
  everything at the end of its input, a running job what arrived more than
  a hold ago, so the result does not depend on the worker count.
- `ShardLogic`: the only Bytewax adapter. It hands batches to the shard, asks
  it when to wake up, and snapshots it with one rule: pickled when recovery
  is on, nothing otherwise (nobody would read it).
"""

from __future__ import annotations

import heapq
import pickle
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple, Protocol

import bytewax.operators as op

from detectors.base import forget_before


NEVER = -(2**62)  # event time before any event

NEW, DUPLICATE, LATE = 0, 1, 2

# Event time moves only as far as this many events agree: a watermark (and the
# decode step's view of the stream's progress) is the 4th newest time seen.
EVENT_TIME_QUORUM = 4


@dataclass(slots=True)
class QuorumTime:
    """The `k`-th newest timestamp seen so far (NEVER until `k` are seen): fewer than `k` events cannot move it.

    >>> time = QuorumTime(k=2)
    >>> [time.observe(ts) for ts in (10, 5, 10**15, 20, 30)]
    [-4611686018427387904, 5, 10, 20, 30]
    """

    k: int = EVENT_TIME_QUORUM
    newest: list[int] = field(default_factory=list)  # a min-heap of the k newest timestamps

    def observe(self, ts: int) -> int:
        """Take one timestamp into account; returns the k-th newest."""
        newest = self.newest
        if len(newest) < self.k:
            heapq.heappush(newest, ts)
            return self.value
        if ts > newest[0]:
            heapq.heapreplace(newest, ts)
        return newest[0]

    @property
    def value(self) -> int:
        """The k-th newest timestamp seen (NEVER before `k` are seen)."""
        return self.newest[0] if len(self.newest) == self.k else NEVER


@dataclass(slots=True)
class EventClock:
    """One shard's event time: dedupe, watermark, lateness, and when to sweep.

    The watermark is the `quorum`-th newest event time seen (`QuorumTime`):

    >>> clock = EventClock(dedupe_horizon_ms=1_000, allowed_lateness_ms=100, quorum=2)
    >>> [clock.admit(i, ts) for i, ts in [("a", 0), ("a", 10), ("b", 500), ("c", 550), ("d", 350)]]
    [0, 1, 0, 0, 2]
    >>> clock.watermark, clock.sweep_due(), clock.sweep(), clock.sweep_due()
    (500, True, 500, False)
    >>> clock.admit("future", 10**15), clock.watermark  # one event alone does not move it
    (0, 550)
    """

    dedupe_horizon_ms: int
    allowed_lateness_ms: int
    sweep_every_ms: int = 60_000
    # OrderedDict: emptied from the front in O(1); a plain dict rescans the
    # deleted slots at its front on every `next(iter(...))` (quadratic).
    seen: OrderedDict[str, int] = field(default_factory=OrderedDict)
    watermark: int = NEVER
    swept_at: int = NEVER
    quorum: int = EVENT_TIME_QUORUM
    newest: QuorumTime | None = None

    def __post_init__(self) -> None:
        if self.newest is None:
            self.newest = QuorumTime(self.quorum)

    def admit(self, event_id: str, ts: int) -> int:
        """NEW, DUPLICATE (the id was seen within the horizon) or LATE (behind the lateness cut)."""
        # `seen_before` and `advance` written out: this runs for every event of every shard.
        seen = self.seen
        if event_id in seen:
            return DUPLICATE
        seen[event_id] = ts
        if ts > self.watermark:
            self.watermark = self.newest.observe(ts)
            return NEW
        return LATE if ts < self.watermark - self.allowed_lateness_ms else NEW

    def seen_before(self, event_id: str, ts: int) -> bool:
        """Whether `event_id` was seen within the horizon (and remember it if not)."""
        seen = self.seen
        if event_id in seen:
            return True
        seen[event_id] = ts
        return False

    def advance(self, ts: int) -> bool:
        """Move the watermark with an event at `ts`; True if that event is too late to use."""
        if ts > self.watermark:
            self.watermark = self.newest.observe(ts)
            return False
        return ts < self.watermark - self.allowed_lateness_ms

    def sweep_due(self) -> bool:
        return self.watermark - self.swept_at >= self.sweep_every_ms

    def sweep(self) -> int:
        """Forget event ids older than the dedupe horizon; returns the watermark swept at."""
        self.swept_at = self.watermark
        forget_before(self.seen, self.watermark - self.dedupe_horizon_ms)
        return self.watermark


@dataclass(slots=True)
class EntityStates:
    """One kind of state per entity, least recently active first."""

    states: dict[str, Any] = field(default_factory=dict)
    last_seen: OrderedDict[str, int] = field(default_factory=OrderedDict)  # O(1) eviction from the front

    def get(self, entity: str) -> Any:
        return self.states.get(entity)

    def put(self, entity: str, state: Any, ts: int) -> None:
        """Keep `state` (None forgets the entity), marking it active at `ts`."""
        if state is None:
            self.states.pop(entity, None)
            self.last_seen.pop(entity, None)
            return
        self.states[entity] = state
        last_seen = self.last_seen
        previous = last_seen.get(entity)
        if previous is None:
            last_seen[entity] = ts
            return
        last_seen.move_to_end(entity)  # iteration order is activity order (for eviction)
        if ts > previous:
            last_seen[entity] = ts

    def evict_idle(self, cutoff: int) -> None:
        """Forget entities last active before `cutoff`."""
        last_seen = self.last_seen
        while last_seen:
            entity = next(iter(last_seen))
            if last_seen[entity] >= cutoff:
                return
            del last_seen[entity]
            del self.states[entity]

    def __len__(self) -> int:
        return len(self.states)


@dataclass(slots=True)
class ExpiringStates:
    """Per-entity states that say themselves when they expire (`expires_at(state)`, event time)."""

    states: dict[str, Any] = field(default_factory=dict)

    def put(self, key: str, state: Any) -> None:
        if state is None:
            self.states.pop(key, None)
        else:
            self.states[key] = state

    def expire(self, now: int, expires_at: Callable[[Any], int]) -> None:
        # In place: callers may hold `states` across calls.
        for key in [k for k, s in self.states.items() if expires_at(s) < now]:
            del self.states[key]

    def __len__(self) -> int:
        return len(self.states)


# ---- applying items in event-time order --------------------------------------------------------


class Pending(NamedTuple):
    """An item waiting in an `EventTimeOrder`: applied by `(ts, rank, order)`."""

    ts: int
    rank: int  # ties at one event time: e.g. a violation before its appeal
    order: str  # a deterministic tie-break (an id)
    item: Any
    due: float  # wall-clock arrival (or retry) time that the hold counts from
    first_arrived: float


@dataclass(slots=True)
class EventTimeOrder:
    """Items held until they can be applied in event-time order.

    >>> order = EventTimeOrder()
    >>> order.hold(20, 0, "b", "second", arrived=1.0); order.hold(10, 0, "a", "first", arrived=2.0)
    >>> [p.item for p in order.take(arrived_before=1.5)], [p.item for p in order.take(None)]
    (['second'], ['first'])
    """

    pending: list[Pending] = field(default_factory=list)
    folds: dict[Any, int] | None = None  # fold key -> index in `pending` (`hold_folded`)

    def hold(self, ts: int, rank: int, order: str, item: Any, arrived: float) -> None:
        self.pending.append(Pending(ts, rank, order, item, arrived, arrived))

    def hold_folded(self, key: Any, rank: int, item: Any, arrived: float) -> None:
        """Hold `item`, or fold it into the held item of the same `key` (`item.folded`).

        For a bounded input whose items are all taken at its end (a replay): one held
        item per key instead of one per event keeps the memory of a long replay flat.
        The folded item sits at the earliest `(ts, event_id)` of its parts, so the
        order is the same whatever order they arrived in.

        >>> from pipeline.enforce.incentives import Activity
        >>> order = EventTimeOrder()
        >>> for n, ts in enumerate((30, 10, 20)):
        ...     order.hold_folded("S1", 4, Activity(event_id=f"o{n}", ts=ts, actor="S1", kind="order"), 0.0)
        >>> [(p.ts, p.order, p.item.count) for p in order.take(None)]
        [(10, 'o1', 3)]
        """
        if getattr(self, "folds", None) is None:  # (absent from snapshots taken before folding)
            self.folds = {}
        at = self.folds.get(key)
        if at is None:
            self.folds[key] = len(self.pending)
            self.hold(item.ts, rank, item.event_id, item, arrived)
            return
        held = self.pending[at]
        merged = held.item.folded(item)
        self.pending[at] = held._replace(ts=merged.ts, order=merged.event_id, item=merged)

    def rearm(self, now: float) -> None:
        """Hold everything again from `now` (after a restart: the input read again comes in meanwhile)."""
        self.pending = [p._replace(due=now) for p in self.pending]

    def retry(self, p: Pending, due: float) -> None:
        """Hold an item again (it could not be applied yet), keeping when it first arrived."""
        self.pending.append(p._replace(due=due))

    def take(self, arrived_before: float | None) -> list[Pending]:
        """Items that arrived before the time given (all if None), in event-time order."""
        self.folds = None  # positions change from here
        if arrived_before is None:
            ready, self.pending = self.pending, []
        else:
            ready = [p for p in self.pending if p.due < arrived_before]
            self.pending = [p for p in self.pending if p.due >= arrived_before]
        ready.sort(key=lambda p: (p.ts, p.rank, p.order))
        return ready

    def take_older(self, than_ts: int) -> list[Pending]:
        """Items of event time before `than_ts`, in event-time order.

        >>> order = EventTimeOrder()
        >>> for ts in (30, 10, 20): order.hold(ts, 0, "a", ts, arrived=0.0)
        >>> [p.item for p in order.take_older(25)], len(order)
        ([10, 20], 1)
        """
        ready = [p for p in self.pending if p.ts < than_ts]
        if ready:
            self.folds = None
            self.pending = [p for p in self.pending if p.ts >= than_ts]
            ready.sort(key=lambda p: (p.ts, p.rank, p.order))
        return ready

    def oldest(self) -> float | None:
        """Wall-clock arrival of the oldest held item."""
        return min((p.due for p in self.pending), default=None)

    def __len__(self) -> int:
        return len(self.pending)


# ---- the shard protocol and the one Bytewax adapter -------------------------------------------------


class Shard(Protocol):
    """What every keyed step is: plain Python that Bytewax drives through `ShardLogic`.

    `now` is the wall clock in seconds (only holds and retries use it; event
    time comes from the items). `snapshot()` is picklable state from which the
    step's builder rebuilds the shard after a restart.
    """

    def on_batch(self, items: list[Any], now: float) -> list[Any]: ...

    def on_notify(self, now: float) -> list[Any]: ...

    def on_eof(self) -> list[Any]: ...

    def wake_at(self) -> float | None: ...

    def snapshot(self) -> Any: ...

    def keys_held(self) -> int: ...


class PlainShard:
    """Base of shards that only react to their input: no timers, nothing held back at the end.

    A subclass keeps everything it snapshots in `self.state`.
    """

    state: Any

    def on_notify(self, now: float) -> list[Any]:
        return []

    def on_eof(self) -> list[Any]:
        return []

    def wake_at(self) -> float | None:
        return None

    def snapshot(self) -> Any:
        return self.state


class EventTimeOrderedShard:
    """Base of shards that hold what they receive and apply it in event-time order.

    `hold_seconds` None (a replay: bounded input) applies everything at the end
    of the input; otherwise items are applied once they have waited that long
    (wall clock). Subclasses `receive` items (holding them in `self.order`, or
    answering at once) and `apply` each one when its turn comes. After a
    restart, what the snapshot held waits a full hold again (`orders`): the
    input after the snapshot, read again, arrives meanwhile and is ordered
    with it, as it was before the crash.
    """

    def __init__(self, hold_seconds: float | None, order: EventTimeOrder) -> None:
        self.hold_seconds = hold_seconds
        self.order = order
        self._rearmed = False  # the first call holds a snapshot's items again (there are none on a fresh start)

    def orders(self) -> list[EventTimeOrder]:
        """Every order this shard holds items in."""
        return [self.order]

    def receive(self, items: list[Any], now: float) -> list[Any]:
        raise NotImplementedError

    def apply(self, pending: Pending, final: bool) -> list[Any]:
        raise NotImplementedError

    def _rearm_after_restart(self, now: float) -> None:
        if not self._rearmed:
            self._rearmed = True
            for order in self.orders():
                order.rearm(now)

    def on_batch(self, items: list[Any], now: float) -> list[Any]:
        self._rearm_after_restart(now)
        out = self.receive(items, now)
        if self.hold_seconds is not None:
            out += self.release(now - self.hold_seconds)
        return out

    def on_notify(self, now: float) -> list[Any]:
        self._rearm_after_restart(now)
        return self.release(now - self.hold_seconds) if self.hold_seconds is not None else []

    def on_eof(self) -> list[Any]:
        return self.release(None)

    def wake_at(self) -> float | None:
        if self.hold_seconds is None:  # a replay applies everything at the end: no need to scan what is held
            return None
        oldest = self.order.oldest()
        return None if oldest is None else oldest + self.hold_seconds

    def release(self, arrived_before: float | None) -> list[Any]:
        """Apply held items that arrived before the time given (all if None), in event-time order."""
        out: list[Any] = []
        for pending in self.order.take(arrived_before):
            out.extend(self.apply(pending, final=arrived_before is None))
        return out


class ShardLogic(op.StatefulBatchLogic):
    """The one Bytewax adapter: a `Shard` as the logic of a `stateful_batch` step.

    `recovery` False: snapshots are never read, so none is pickled (each epoch
    would pickle every shard for nothing). `keys_gauge(shard)` reports the
    state size after each batch.
    """

    def __init__(self, shard: Shard, *, recovery: bool, keys_gauge: Callable[[Shard], None] | None = None) -> None:
        self.shard = shard
        self.recovery = recovery
        self.keys_gauge = keys_gauge

    def on_batch(self, items: list[Any]):
        out = self.shard.on_batch(items, time.time())
        if self.keys_gauge is not None:
            self.keys_gauge(self.shard)
        return out, self.RETAIN

    def on_notify(self):
        return self.shard.on_notify(time.time()), self.RETAIN

    def on_eof(self):
        return self.shard.on_eof(), self.RETAIN

    def notify_at(self) -> datetime | None:
        at = self.shard.wake_at()
        return None if at is None else datetime.fromtimestamp(at, tz=timezone.utc)

    def snapshot(self) -> bytes:
        if not self.recovery:
            return b""
        return pickle.dumps(self.shard.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)


def resumed(snapshot: bytes | None) -> Any:
    """The state a `ShardLogic` snapshot holds (None for a new shard or an empty snapshot)."""
    return pickle.loads(snapshot) if snapshot else None
