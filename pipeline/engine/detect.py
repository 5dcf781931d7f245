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

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import msgspec

from detectors.base import Signal
from detectors.models.features import ActorFeatures, FeatureUpdate, actor_key
from pipeline.contract.events import Event, LiveComment, LiveStats
from pipeline.contract.records import DeadLetter, Violation
from pipeline.contract.routing import FAMILY_OF, shard_of
from pipeline.enforce.policy import Policy, violation_from
from pipeline.engine.shards import DUPLICATE, LATE, EntityStates, EventClock, PlainShard
from sinks.metrics import Metrics

log = logging.getLogger("shopguard.detect")


def feature_key(event: Event, shards: int) -> str:
    """Key of the feature step that owns this event's actor: `features/<shard>`.

    >>> from pipeline.contract.events import decode
    >>> feature_key(decode(b'{"event_id":"e","type":"live.ended","ts":1,"live_id":"V","creator_id":"C7"}'), 64)
    'features/11'
    """
    return f"features/{shard_of(actor_key(event), shards)}"


class DetectorErrors:
    """Turns an exception a detector raised on one event into a dead letter, logged once per detector."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.logged: set[str] = set()

    def dead_letter(self, detector: str, event: Event, err: Exception) -> DeadLetter:
        self.metrics.detector_errors_child(detector).inc()
        self.metrics.dead_letters_child("detector_error").inc()
        if detector not in self.logged:  # a poison event repeated a million times must not flood the log
            self.logged.add(detector)
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


@dataclass(slots=True)
class DetectState:
    """Everything a detect shard keeps; pickled into recovery snapshots."""

    clock: EventClock
    detector_states: dict[str, EntityStates] = field(default_factory=dict)


class DetectShard(PlainShard):
    """Dedupe, lateness, dispatch to detectors and policy, for one shard of the detect step.

    Items are `(read_ms, events)` groups from `decode_and_route` (events in
    arrival order). `detectors` are instances of every registered detector;
    each sees only the event types it reads.
    """

    def __init__(self, detectors: Iterable[Any], policy: Policy, metrics: Metrics, *, allowed_lateness_ms: int,
                 dedupe_horizon_ms: int, idle_eviction_ms: int, resume: DetectState | None = None) -> None:
        self.detectors = list(detectors)
        self.policy = policy
        self.metrics = metrics
        self.errors = DetectorErrors(metrics)
        self.idle_eviction_ms = idle_eviction_ms
        self.state = resume or DetectState(EventClock(dedupe_horizon_ms, allowed_lateness_ms))
        states = self.state.detector_states
        for d in self.detectors:  # a detector added since the snapshot starts empty
            states.setdefault(d.name, EntityStates())
        # event type -> (detector, its entity states) for each detector that reads it
        self._readers: dict[type, list[tuple[Any, EntityStates]]] = {}
        for d in self.detectors:
            for event_type in d.event_types:
                self._readers.setdefault(event_type, []).append((d, states[d.name]))
        self.step: str | None = None  # the state-size metric's label, from the first event's family

    def on_batch(self, groups: list[tuple[int, list[Event]]], now: float) -> list[Violation | DeadLetter]:
        out: list[Violation | DeadLetter] = []
        for _read, events in groups:
            self.process(events, out)
        if self.step is None:
            self.step = f"detect_{FAMILY_OF[type(groups[0][1][0])]}s"
        # Latency: from the oldest record of these groups being read to their detection done.
        self.metrics.processing_latency.observe(max(0.0, now - min(read for read, _ in groups) / 1000.0))
        return out

    def process(self, events: Iterable[Event], out: list[Violation | DeadLetter]) -> None:
        """Run events (arrival order) through the shard, appending violations and dead letters to `out`."""
        clock, readers, metrics = self.state.clock, self._readers, self.metrics
        for event in events:
            admitted = clock.admit(event.event_id, event.ts)
            if admitted == DUPLICATE:
                metrics.duplicates_child(event.topic).inc()
                continue
            if admitted == LATE:
                metrics.late_child(event.topic).inc()
                continue
            for detector, states in readers.get(type(event), ()):
                entity = detector.entity(event)
                if entity is None:
                    continue
                try:
                    new_state, signals = detector.on_event(states.states.get(entity), event)
                except Exception as err:  # contained: see the module docstring
                    out.append(self.errors.dead_letter(detector.name, event, err))
                    continue
                states.put(entity, new_state, event.ts)
                if signals:
                    out.extend(self._violation(s) for s in signals)
        if clock.sweep_due():
            self._sweep()

    def _violation(self, signal: Signal) -> Violation:
        violation = violation_from(signal, self.policy)
        self.metrics.violations_child(violation.violation_type, violation.detector, violation.enforced).inc()
        return violation

    def _sweep(self) -> None:
        watermark = self.state.clock.sweep()
        for detector in self.detectors:
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
