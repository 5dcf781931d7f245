"""The detect and feature steps: events to per-entity plain-Python logic, one shard at a time.

The dataflow partitions events by a routing key (`pipeline.contract.routing`)
into shards. A `DetectShard` is one shard of the detect step; for every event it

1. drops redeliveries and counts events older than the allowed lateness
   (its `EventClock`),
2. hands the event to each detector that reads its type, with the state of
   the entity the detector keys it by,
3. turns the detectors' signals into violations through the policy.

A detector that raises on an event does not stop the job: the event becomes a
dead letter with reason `detector_error` (and `shopguard_detector_errors_total`
counts it), the other detectors still use it, and the detector keeps its
state (wiping a category's learned levels because one event broke a detector
would hand attackers a way to blind it). `FeatureShard` does the same for the
online models' per-actor features.

Idle entity state is evicted in event time, so memory follows the number of
active sellers, creators and LIVEs, not the length of the stream.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import msgspec

from detectors.base import Forward, Signal
from detectors.models.features import ActorFeatures, FeatureUpdate, actor_key
from detectors.registry import Registration
from pipeline.contract.events import Event, LiveComment, LiveStats
from pipeline.contract.records import DeadLetter, Violation
from pipeline.contract.routing import FAMILY_OF, shard_of, shop_key
from pipeline.enforce.policy import Policy, violation_from
from pipeline.engine.shards import DUPLICATE, NEW, EntityStates, EventClock, PlainShard
from sinks.metrics import Metrics

log = logging.getLogger("shopguard.detect")
_LOGGED: set[str] = set()  # detectors whose first error this process has logged (shards share it)


def feature_key(event: Event, shards: int) -> str:
    """Key of the feature step that owns this event's actor: `features/<shard>`.

    >>> from pipeline.contract.events import decode
    >>> feature_key(decode(b'{"event_id":"e","type":"live.ended","ts":1,"live_id":"V","creator_id":"C7"}'), 64)
    'features/11'
    """
    return feature_key_of_actor(actor_key(event), shards)


def feature_key_of_actor(actor: str, shards: int) -> str:
    """`feature_key` of the events of `actor`."""
    return f"features/{shard_of(actor, shards)}"


class DetectorErrors:
    """Turns an exception a detector raised on one event into a dead letter, logged once per detector."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def dead_letter(self, detector: str, event: Event, err: Exception) -> DeadLetter:
        self.metrics.detector_errors_child(detector).inc()
        self.metrics.dead_letters_child("detector_error").inc()
        if detector not in _LOGGED:  # a poison event repeated a million times must not flood the log
            _LOGGED.add(detector)
            log.error("detector %s raised on event %s (further errors of it are counted, not logged)",
                      detector, event.event_id, exc_info=err)
        return DeadLetter(
            raw=msgspec.json.encode(event).decode(),
            error=(f"detector {detector} raised {type(err).__name__} ({err}) on this event; the other detectors "
                   f"used it and the job kept running: report it to the detector's owners with this record"),
            source=f"{event.topic}/{event.type}/{event.event_id}",
            ts=event.ts,
            reason="detector_error",
        )

    def wake_error(self, detector: str, entity: str, at: int, err: Exception) -> DeadLetter:
        """A detector that raised when woken: its pending judgement is a dead letter instead."""
        self.metrics.detector_errors_child(detector).inc()
        self.metrics.dead_letters_child("detector_error").inc()
        return DeadLetter(
            raw=f"wake of {entity} at {at}",
            error=(f"detector {detector} raised {type(err).__name__} ({err}) when woken for {entity}; "
                   f"the job kept running: report it to the detector's owners with this record"),
            source=f"internal/wake/{detector}/{entity}",
            ts=at,
            reason="detector_error",
        )


class _Reader(NamedTuple):
    """One detector as a detect shard calls it for an event type: its bound methods looked up once."""

    detector: Any
    entity: Any  # detector.entity
    on_event: Any  # detector.on_event
    states: EntityStates  # its per-entity states in this shard
    takes_shared: bool  # on_event also takes the detector's shard-wide state


@dataclass(slots=True)
class DetectState:
    """Everything a detect shard keeps; pickled into recovery snapshots."""

    clock: EventClock
    detector_states: dict[str, EntityStates] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # detector name -> its shard-wide state
    # (at, sequence, detector name, entity): `Wake` requests, fired when the clock reaches `at`
    wakes: list[tuple[int, int, str, str]] = field(default_factory=list)
    wake_seq: int = 0


class DetectShard(PlainShard):
    """Dedupe, lateness, dispatch to detectors and policy, for one shard of a detect stage.

    Items are `(read_ms, events)` groups from `decode_and_route` (events in
    arrival order). `detectors` are instances of every registered detector;
    each sees only the event types it reads in this stage: `event_types` in
    the `detect` stage, `joined_types` in the `shops` stage (which also takes
    the `Forward`ed items of the first). Besides violations and dead letters
    the shard emits `(shop key, (read_ms, [item]))` groups for `Forward`s.
    `count_skipped` False: duplicates and late events were counted upstream.
    A `Wake` due at `at` fires once the shard's event time passes `at +
    wake_delay_ms` (late evidence has arrived by then); the detector still
    judges as of `at`.
    """

    def __init__(self, detectors: Iterable[tuple[Registration, Any]], policy: Policy, metrics: Metrics, *,
                 allowed_lateness_ms: int, dedupe_horizon_ms: int, idle_eviction_ms: int, shards: int,
                 stage: str = "detect", count_skipped: bool = True, wake_delay_ms: int = 0,
                 resume: DetectState | None = None) -> None:
        detectors = list(detectors)
        self.detectors = {d.name: d for _, d in detectors}
        self.policy = policy
        self.metrics = metrics
        self.errors = DetectorErrors(metrics)
        self.idle_eviction_ms = idle_eviction_ms
        self.shards = shards
        self.stage = stage
        self.count_skipped = count_skipped
        self.wake_delay_ms = wake_delay_ms
        self.state = resume or DetectState(EventClock(dedupe_horizon_ms, allowed_lateness_ms))
        states = self.state.detector_states
        for name in self.detectors:  # a detector added since the snapshot starts empty
            states.setdefault(name, EntityStates())
        self._shared: dict[type, list[Any]] = {}  # event type -> detectors whose shard-wide state it updates
        takes_shared: set[str] = set()  # detectors whose on_event reads their shard-wide state
        for entry, d in detectors:
            for event_type in entry.shared_types:
                self._shared.setdefault(event_type, []).append(d)
                takes_shared.add(d.name)
        # event type -> a `_Reader` for each detector that reads it in this stage
        self._readers: dict[type, list[_Reader]] = {}
        for entry, d in detectors:
            reader = _Reader(d, d.entity, d.on_event, states[d.name], d.name in takes_shared)
            for event_type in (d.event_types if stage == "detect" else entry.joined_types):
                self._readers.setdefault(event_type, []).append(reader)
        self.step: str | None = None  # the state-size metric's label, from the first event's family

    def on_batch(self, groups: list[tuple[int, list[Event]]], now: float) -> list[Any]:
        out: list[Any] = []
        for read_ms, events in groups:
            self.process(events, out, read_ms)
        if self.step is None:
            self.step = f"detect_{FAMILY_OF.get(type(groups[0][1][0]), self.stage)}s"
        for read_ms, events in groups:  # per event: from its record being read to its detection done
            self.metrics.observe_latency(now - read_ms / 1000.0, len(events))
        return out

    def process(self, events: Iterable[Event], out: list[Any], read_ms: int = 0) -> None:
        """Run events (arrival order) through the shard, appending what they cause to `out`."""
        clock, readers, shared, metrics = self.state.clock, self._readers, self._shared, self.metrics
        for event in events:
            admitted = clock.admit(event.event_id, event.ts)
            if admitted != NEW:
                if self.count_skipped:
                    (metrics.duplicates_child if admitted == DUPLICATE else metrics.late_child)(event.topic).inc()
                continue
            kind = type(event)
            if kind in shared:
                self._update_shared(shared[kind], event, out)
                continue
            for detector, entity_of, on_event, states, takes_shared in readers.get(kind, ()):
                entity = entity_of(event)
                if entity is None:
                    continue
                try:
                    if takes_shared:
                        new_state, found = on_event(states.states.get(entity), event,
                                                    shared=self.state.shared.get(detector.name))
                    else:
                        new_state, found = on_event(states.states.get(entity), event)
                except Exception as err:  # contained: see the module docstring
                    out.append(self.errors.dead_letter(detector.name, event, err))
                    continue
                states.put(entity, new_state, event.ts)
                if found:
                    self._handle(detector, entity, found, out, read_ms)
        # A wake is due at `at` but fires once late evidence of up to `wake_delay_ms` has had time to arrive.
        ready_until = clock.watermark - self.wake_delay_ms
        if self.state.wakes and self.state.wakes[0][0] <= ready_until:
            self._wake_until(ready_until, out, read_ms)
        if clock.sweep_due():
            self._sweep()

    def _update_shared(self, detectors: list[Any], event: Event, out: list[Any]) -> None:
        for detector in detectors:
            try:
                self.state.shared[detector.name] = detector.on_shared(self.state.shared.get(detector.name), event)
            except Exception as err:
                out.append(self.errors.dead_letter(detector.name, event, err))

    def _handle(self, detector: Any, entity: str, found: Any, out: list[Any], read_ms: int) -> None:
        """Signals become violations; `Forward`s go to the shops stage; `Wake`s are remembered."""
        for item in found:
            kind = type(item)
            if kind is Signal:
                out.append(self._violation(item))
            elif kind is Forward:
                out.append((shop_key(item.seller_id, self.shards), (read_ms, [item.item])))
            else:  # Wake
                st = self.state
                st.wake_seq += 1
                heapq.heappush(st.wakes, (item.at, st.wake_seq, detector.name, entity))

    def _wake_until(self, until: int | None, out: list[Any], read_ms: int) -> None:
        """Fire every `Wake` due at or before `until` (all of them if None: the end of the input)."""
        wakes = self.state.wakes
        while wakes and (until is None or wakes[0][0] <= until):
            at, _, name, entity = heapq.heappop(wakes)
            detector, states = self.detectors[name], self.state.detector_states[name]
            state = states.get(entity)
            if state is None:
                continue  # evicted or forgotten since: nothing left to judge
            try:
                new_state, found = detector.on_wake(state, at)
            except Exception as err:
                out.append(self.errors.wake_error(name, entity, at, err))
                continue
            states.put(entity, new_state, at)
            if found:
                self._handle(detector, entity, found, out, read_ms)

    def on_eof(self) -> list[Any]:
        out: list[Any] = []
        self._wake_until(None, out, 0)
        return out

    def _violation(self, signal: Signal) -> Violation:
        violation = violation_from(signal, self.policy)
        self.metrics.violations_child(violation.violation_type, violation.detector, violation.enforced).inc()
        return violation

    def _sweep(self) -> None:
        watermark = self.state.clock.sweep()
        for detector in self.detectors.values():
            # A detector may need a longer memory than the job default (e.g. an
            # actor's known devices, which matter for months).
            idle_ms = detector.idle_eviction_ms or self.idle_eviction_ms
            self.state.detector_states[detector.name].evict_idle(watermark - idle_ms)

    def keys_held(self) -> int:
        """Entities in state (for the state-size metric)."""
        return sum(len(s) for s in self.state.detector_states.values())


BatchId = tuple[str, int]  # (input reader, the batch's number from 1)


class FeatureBatch(NamedTuple):
    """One feature shard's events of one input batch."""

    key: str
    value: tuple[BatchId, list[Event]]  # (batch, events): Bytewax keys a step's items by (key, value) pairs


class ShardUpdates(NamedTuple):
    """What one `FeatureBatch` made: its feature updates (perhaps none), so the models step knows it is in."""

    batch: BatchId
    updates: list[FeatureUpdate]


class FeatureManifest(NamedTuple):
    """Input batch `batch` sent events to `shards` feature shards; `progress`: the stream's progress after it.

    The models step scores the updates of a batch once every shard has answered for it and for every batch
    before it (`ModelsShard`), so their order never depends on which worker answered first.
    """

    batch: BatchId
    shards: int
    progress: int


@dataclass(slots=True)
class FeatureState:
    """Everything a feature shard keeps; pickled into recovery snapshots."""

    clock: EventClock
    actors: EntityStates = field(default_factory=EntityStates)


class FeatureShard(PlainShard):
    """One shard of the feature step: per-actor `ActorFeatures` state with dedupe, lateness and eviction.

    Events of every detector family come here too (listings, orders, LIVE,
    account events); governance events do not. Duplicates and late events are
    already counted by the detect step, so this shard only skips them.

    >>> from detectors.models.config import shipped_models_config
    >>> from pipeline.contract.events import AccountLogin
    >>> shard = FeatureShard(ActorFeatures(shipped_models_config().features), Metrics(),
    ...                      allowed_lateness_ms=300_000, dedupe_horizon_ms=7_200_000)
    >>> login = AccountLogin(event_id="e1", ts=0, actor="seller:S1", device_id="d1", ip="1.2.3.4", country="US")
    >>> [u.features["login_novelty"] for u in shard.on_batch([[login, login]], now=0.0)], shard.keys_held()
    ([0.0], 1)
    """

    def __init__(self, features: ActorFeatures, metrics: Metrics, *, allowed_lateness_ms: int, dedupe_horizon_ms: int,
                 resume: FeatureState | None = None) -> None:
        self.features = features
        self.errors = DetectorErrors(metrics)
        self.state = resume or FeatureState(EventClock(dedupe_horizon_ms, allowed_lateness_ms))

    def on_batch(self, batches: list[list[Event]], now: float) -> list[FeatureUpdate | DeadLetter]:
        out: list[FeatureUpdate | DeadLetter] = []
        for events in batches:
            self.process(events, out)
        return out

    def process(self, events: Iterable[Event], out: list[FeatureUpdate | DeadLetter]) -> None:
        """Run events (arrival order); append the feature updates they trigger to `out`."""
        st, features = self.state, self.features
        clock, reads, actors = st.clock, features.RESCORE, st.actors
        states, remember_commenter = actors.states, features.remember_commenter
        for event in events:
            kind = type(event)
            if kind is LiveComment:
                # Half the stream, and it only adds to a set of commenters: a redelivery changes
                # nothing, so no dedupe; the creator's stats keep its state active.
                state = states.get(f"creator:{event.creator_id}")
                if state is not None:
                    remember_commenter(state, event)
                    continue
            elif kind not in reads:
                continue
            # A redelivered stats interval is dropped by the LIVE itself (same ts as one it has).
            if kind is not LiveStats and clock.seen_before(event.event_id, event.ts):
                continue
            if clock.advance(event.ts):
                continue  # late
            actor = actor_key(event)
            try:
                state, update = features.on_event(states.get(actor), event)
            except Exception as err:  # contained, as in DetectShard
                out.append(self.errors.dead_letter("actor_features", event, err))
                continue
            actors.put(actor, state, event.ts)
            if update is not None:
                out.append(update)
        if clock.sweep_due():
            actors.evict_idle(clock.sweep() - features.idle_eviction_ms)

    def keys_held(self) -> int:
        return len(self.state.actors)


class NumberedFeatureShard(FeatureShard):
    """The feature step as the dataflow runs it: the updates of each input batch in one `ShardUpdates`.

    >>> from detectors.models.config import shipped_models_config
    >>> from pipeline.contract.events import AccountLogin
    >>> shard = NumberedFeatureShard(ActorFeatures(shipped_models_config().features), Metrics(),
    ...                              allowed_lateness_ms=300_000, dedupe_horizon_ms=7_200_000)
    >>> login = AccountLogin(event_id="e1", ts=0, actor="seller:S1", device_id="d1", ip="1.2.3.4", country="US")
    >>> [(done.batch, len(done.updates)) for done in shard.on_batch([(("r", 1), [login]), (("r", 2), [login])], 0.0)]
    [(('r', 1), 1), (('r', 2), 0)]
    """

    def on_batch(self, batches: list[tuple[BatchId, list[Event]]], now: float) -> list[ShardUpdates | DeadLetter]:
        out: list[ShardUpdates | DeadLetter] = []
        for batch, events in batches:
            made = super().on_batch([events], now)
            out += [m for m in made if type(m) is DeadLetter]
            out.append(ShardUpdates(batch, [m for m in made if type(m) is not DeadLetter]))
        return out
