"""Small helpers for detector unit tests: load a detector with the shipped config, feed events."""

from __future__ import annotations

from typing import Any, Iterable

from detectors.registry import registry
from pipeline.config import load


def shipped(name: str, **overrides: Any):
    """The detector `name` configured exactly as config/shopguard.toml ships it (plus overrides)."""
    config = load(None, {"detectors": {name: overrides}} if overrides else None)
    return registry()[name].build(getattr(config.detectors, name))


def feed(detector, events: Iterable[Any], states: dict | None = None) -> list:
    """Run events through a detector the way DetectShard does (state per entity); return signals."""
    states = {} if states is None else states
    found = []
    for event in events:
        entity = detector.entity(event)
        if entity is None:
            continue
        state, signals = detector.on_event(states.get(entity), event)
        if state is None:
            states.pop(entity, None)
        else:
            states[entity] = state
        found.extend(signals)
    return found
