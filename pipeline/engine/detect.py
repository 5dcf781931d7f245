"""The detect step: one shard of one detector family, in plain Python.

The dataflow partitions events by a routing key (see `routing.py`) into a
fixed number of shards; each shard is one `DetectShard`. For every event it

1. drops redeliveries (event ids remembered for an event-time horizon),
2. counts events older than the allowed lateness and keeps them out of windows,
3. hands the event to each detector that reads its type, with the state of
   the entity the detector keys it by, and
4. turns the detectors' signals into violations through the policy.

Idle entity state is evicted in event time, so memory follows the number of
active sellers, creators and LIVEs, not the length of the stream.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

from detectors.base import Signal, forget_before
from pipeline.contract.events import Event
from pipeline.enforce.policy import Policy, violation_from
from pipeline.contract.records import Violation
from sinks.metrics import Metrics


@dataclass(slots=True)
class Deduper:
    """Event ids seen within `horizon_ms` of event time, oldest first.

    >>> d = Deduper(horizon_ms=1000)
    >>> d.seen_before("a", 0), d.seen_before("a", 10), d.seen_before("b", 5000)
    (False, True, False)
    >>> d.forget_older_than(5000 - d.horizon_ms)  # the shard sweeps as event time advances
    >>> d.seen_before("a", 5001)
    False
    """

    horizon_ms: int
    # OrderedDict: emptied from the front in O(1); a plain dict rescans the
    # deleted slots at its front on every `next(iter(...))` (quadratic).
    ids: OrderedDict[str, int] = field(default_factory=OrderedDict)

    def seen_before(self, event_id: str, ts: int) -> bool:
        if event_id in self.ids:
            return True
        self.ids[event_id] = ts
        return False

    def forget_older_than(self, cutoff: int) -> None:
        forget_before(self.ids, cutoff)


@dataclass(slots=True)
class EntityStates:
    """One detector's state per entity, least recently active first."""

    states: dict[str, Any] = field(default_factory=dict)
    last_seen: OrderedDict[str, int] = field(default_factory=OrderedDict)  # O(1) eviction from the front

    def get(self, entity: str) -> Any:
        return self.states.get(entity)

    def put(self, entity: str, state: Any, ts: int) -> None:
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
class ShardState:
    """Everything a shard keeps between events; pickled into recovery snapshots."""

    dedupe: Deduper
    detector_states: dict[str, EntityStates]
    watermark: int = -(2**62)
    swept_at: int = -(2**62)


class DetectShard:
    """Dedupe, lateness, dispatch to detectors and policy, for one shard.

    `detectors` are the instances of this family; `resume` is a `ShardState`
    from a snapshot, or None for a new shard.
    """

    SWEEP_EVERY_MS = 60_000

    def __init__(
        self,
        detectors: Iterable[Any],
        policy: Policy,
        metrics: Metrics,
        *,
        allowed_lateness_ms: int,
        dedupe_horizon_ms: int,
        idle_eviction_ms: int,
        resume: ShardState | None = None,
    ) -> None:
        self.detectors = list(detectors)
        self.policy = policy
        self.metrics = metrics
        self.allowed_lateness_ms = allowed_lateness_ms
        self.idle_eviction_ms = idle_eviction_ms
        self.state = resume or ShardState(
            dedupe=Deduper(dedupe_horizon_ms),
            detector_states={d.name: EntityStates() for d in self.detectors},
        )
        for d in self.detectors:  # a detector added since the snapshot starts empty
            self.state.detector_states.setdefault(d.name, EntityStates())
        # event type -> (detector, its entity states) for each detector that reads it
        self._readers: dict[type, list[tuple[Any, EntityStates]]] = {}
        for d in self.detectors:
            for event_type in d.event_types:
                self._readers.setdefault(event_type, []).append((d, self.state.detector_states[d.name]))

    def process(self, events: Iterable[Event]) -> list[Violation]:
        """Run a batch of events (arrival order) through the shard."""
        violations: list[Violation] = []
        st = self.state
        seen_before, readers, lateness = st.dedupe.seen_before, self._readers, self.allowed_lateness_ms
        for event in events:
            ts = event.ts
            if seen_before(event.event_id, ts):
                self.metrics.duplicates_child(event.topic).inc()
                continue
            if ts > st.watermark:
                st.watermark = ts
            elif ts < st.watermark - lateness:
                self.metrics.late_child(event.topic).inc()
                continue
            for detector, states in readers.get(type(event), ()):
                entity = detector.entity(event)
                if entity is None:
                    continue
                new_state, signals = detector.on_event(states.states.get(entity), event)
                states.put(entity, new_state, ts)
                if signals:
                    violations.extend(self._violation(s) for s in signals)
        if st.watermark - st.swept_at >= self.SWEEP_EVERY_MS:
            self._sweep()
        return violations

    def _violation(self, signal: Signal) -> Violation:
        violation = violation_from(signal, self.policy)
        self.metrics.violations_child(violation.violation_type, violation.detector, violation.enforced).inc()
        return violation

    def _sweep(self) -> None:
        st = self.state
        st.swept_at = st.watermark
        st.dedupe.forget_older_than(st.watermark - st.dedupe.horizon_ms)
        for detector in self.detectors:
            # A detector may need a longer memory than the job default (e.g. an
            # actor's known devices, which matter for months).
            idle_ms = getattr(detector, "idle_eviction_ms", self.idle_eviction_ms)
            st.detector_states[detector.name].evict_idle(st.watermark - idle_ms)

    def keys_held(self) -> int:
        """Entities in state (for the state-size metric)."""
        return sum(len(s) for s in self.state.detector_states.values())
