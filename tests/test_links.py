"""The ban-evasion steps' shard state: expiry in event time, in place, and across snapshots."""

from __future__ import annotations

import pickle

from pipeline.engine.links import _ExpiringShard
from pipeline.engine.shards import EVENT_TIME_QUORUM

HOUR = 3_600_000


def advance(shard: _ExpiringShard, ts: int) -> None:
    """Event time moves when a quorum of events agrees (shards.EventClock)."""
    for _ in range(EVENT_TIME_QUORUM):
        shard.advance(ts)


def until(state):
    return state["until"]


def test_expired_states_are_dropped_in_place_so_held_references_stay_valid():
    shard = _ExpiringShard(until, None)
    held = shard.state.states.states
    held["old"] = {"until": 1 * HOUR}
    held["new"] = {"until": 10 * HOUR}
    advance(shard, 5 * HOUR)
    held["later"] = {"until": 20 * HOUR}  # written through the reference taken before the sweep
    assert set(shard.state.states.states) == {"new", "later"}


def test_state_survives_a_snapshot():
    shard = _ExpiringShard(until, None)
    shard.state.states.put("a", {"until": 9 * HOUR})
    advance(shard, 2 * HOUR)
    restored = _ExpiringShard(until, pickle.loads(pickle.dumps(shard.snapshot())))
    assert restored.state.states.states == shard.state.states.states
    assert (restored.state.clock.watermark, restored.state.clock.swept_at) == (2 * HOUR, shard.state.clock.swept_at)
