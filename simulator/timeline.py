"""Time: the event-time scheduler, the delivery stage and real-time pacing.

`Timeline` is a small discrete-event scheduler. Every actor behaviour is a
*script*: a generator that runs at the time it was woken, emits events with
`ts >= now` (future ones too, e.g. a refund in two hours) and then yields the
time it wants to wake next. One heap holds both pending events and sleeping
scripts, so the timeline comes out in event-time order while only the near
future is in memory: memory depends on how many actors there are, not on how
many hours are simulated.

Scripts may read and change shared state (a listing's price) only for the
present moment; everything they emit for later is final when emitted. Since
scripts run strictly in wake-time order, everybody sees a consistent world.

>>> tl = Timeline(start_ts=0, end_ts=100, id_prefix="t-")
>>> def ticker(tl, every):
...     while True:
...         tl.emit({"event_id": "", "type": "tick", "ts": tl.now})
...         yield tl.now + every
>>> tl.spawn(ticker(tl, 40), at=10)
>>> [(e["event_id"], e["ts"]) for e in tl.run()]
[('t-0', 10), ('t-1', 50), ('t-2', 90)]

`deliver` turns the event-time stream into the arrival order of a real
message bus: a share of events arrives late (up to a bound), a share is
delivered twice. `paced` replays any stream at a multiple of real time.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable, Generator, Iterable, Iterator

Script = Generator[int, None, None]

EXTRA = "n"  # marks the ids of extra events (Timeline.emit)

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


class Timeline:
    """Event-time scheduler of actor scripts; `run()` yields events in ts order."""

    def __init__(self, start_ts: int, end_ts: int, id_prefix: str) -> None:
        self.now = start_ts
        self.end_ts = end_ts
        self._id_prefix = id_prefix
        self._heap: list[tuple[int, int, object]] = []
        self._seq = itertools.count()

    def emit(self, event: dict, extra: bool = False) -> None:
        """Schedule one event (a contract dict whose `event_id` is filled in on the way out).

        An `extra` event (of an actor cast by a scenario added later) is numbered apart
        (`<prefix>n<k>`), so the other events keep the ids they always had.
        """
        ts = event["ts"]
        if ts < self.now:
            raise ValueError(f"script emitted an event in the past: ts={ts} < now={self.now}: {event}")
        if extra:
            event["event_id"] = EXTRA
        heapq.heappush(self._heap, (ts, next(self._seq), event))

    def spawn(self, script: Script, at: int) -> None:
        """Start `script` at event time `at` (its body runs then)."""
        heapq.heappush(self._heap, (max(at, self.now), next(self._seq), script))

    def run(self) -> Iterator[dict]:
        """Run every script until `end_ts`; yield events in event-time order with fresh ids."""
        heap, pop, push, seq = self._heap, heapq.heappop, heapq.heappush, self._seq
        prefix, end_ts = self._id_prefix, self.end_ts
        emitted = extras = 0
        while heap:
            ts, _, item = pop(heap)
            if ts >= end_ts:
                break
            if item.__class__ is dict:
                if item["event_id"]:
                    item["event_id"] = f"{prefix}{EXTRA}{extras}"
                    extras += 1
                else:
                    item["event_id"] = f"{prefix}{emitted}"
                    emitted += 1
                yield item
                continue
            self.now = ts
            wake = next(item, None)
            if wake is not None:
                push(heap, (wake if wake > ts else ts, next(seq), item))
        heap.clear()


def once(action: Callable[[], object]) -> Script:
    """A script that does one thing when it is woken."""
    action()
    yield from ()


def deliver(events: Iterable[dict], rng: random.Random, late_fraction: float,
            max_delay_ms: int, redelivery_fraction: float, *, extra_rng: random.Random | None = None,
            extra_prefix: str | None = None) -> Iterator[dict]:
    """Reorder an event-time stream into arrival order.

    A late event arrives 1 ms..`max_delay_ms` after its ts; every other event
    arrives at its ts. A redelivered event arrives a second time (an identical
    copy) up to 30 s after the first, but never later than `max_delay_ms` after
    its ts, so no arrival is ever later than the lateness bound. Events whose id
    starts with `extra_prefix` draw from `extra_rng`, so adding them leaves the
    others' arrival order as it was.

    >>> stream = [{"event_id": str(i), "ts": i * 1000} for i in range(50)]
    >>> out = list(deliver(stream, random.Random(1), 0.2, 5000, 0.1))
    >>> len(out) > 50, sorted({e["event_id"] for e in out}, key=int) == [str(i) for i in range(50)]
    (True, True)
    """
    pending: list[tuple[int, int, dict]] = []  # (arrival ts, seq, event)
    seq = itertools.count()
    main_rng = rng
    for event in events:
        ts = event["ts"]
        while pending and pending[0][0] <= ts:
            yield heapq.heappop(pending)[2]
        rng = extra_rng if extra_prefix is not None and event["event_id"].startswith(extra_prefix) else main_rng
        chance = rng.random
        copy = dict(event) if chance() < redelivery_fraction else None
        if chance() < late_fraction:
            arrival = ts + rng.randint(1, max_delay_ms)
            heapq.heappush(pending, (arrival, next(seq), event))
        else:
            arrival = ts
            yield event
        if copy is not None:
            again = min(arrival + rng.randint(200, 30_000), ts + max_delay_ms)
            heapq.heappush(pending, (max(again, arrival), next(seq), copy))
    while pending:
        yield heapq.heappop(pending)[2]


def paced(events: Iterable[dict], speedup: float, *, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Iterator[dict]:
    """Yield events so that event time runs `speedup` times faster than the wall clock.

    The first event anchors both clocks; a late event (older ts) is never held.

    >>> now = [0.0]
    >>> def fake_sleep(seconds):
    ...     now[0] += seconds
    >>> events = [{"ts": 0}, {"ts": 10_000}, {"ts": 5_000}, {"ts": 30_000}]
    >>> out = [(e["ts"], now[0]) for e in paced(events, 10.0, clock=lambda: now[0], sleep=fake_sleep)]
    >>> out
    [(0, 0.0), (10000, 1.0), (5000, 1.0), (30000, 3.0)]
    """
    if not speedup > 0:
        raise ValueError(f"speedup must be > 0, got {speedup!r}")
    wall_start: float | None = None
    ts_start = 0
    for event in events:
        if wall_start is None:
            wall_start, ts_start = clock(), event["ts"]
        else:
            due = wall_start + (event["ts"] - ts_start) / 1000.0 / speedup
            wait = due - clock()
            if wait > 0:
                sleep(wait)
        yield event
