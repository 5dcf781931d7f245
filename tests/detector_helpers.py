"""Small helpers for detector unit tests: load a detector with the shipped config, feed events, run the flow."""

from __future__ import annotations

import json
from pathlib import Path
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


def through_the_flow(events: Iterable[Any], tmp_path: Path) -> dict[str, list[dict]]:
    """Replay contract events through the real job (as `shopguard replay` would); its outputs by file name."""
    from tests.conftest import replay

    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(wire(e)) + "\n" for e in events))
    return replay(path, tmp_path / "out")[1]


def wire(event) -> dict:
    """An event as it travels on the wire: its fields plus its `type`."""
    return {"type": event.type, **{f: getattr(event, f) for f in event.__struct_fields__}}
