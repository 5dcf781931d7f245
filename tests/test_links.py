"""The ban-evasion steps' shard state: expiry in event time, in place, and across snapshots."""

from __future__ import annotations

from pipeline.enforce.links import _Expiring

HOUR = 3_600_000


def test_expired_states_are_dropped_in_place_so_held_references_stay_valid():
    shard = _Expiring(lambda state: state["until"], None)
    held = shard.states
    held["old"] = {"until": 1 * HOUR}
    held["new"] = {"until": 10 * HOUR}
    shard.advance(5 * HOUR)
    held["later"] = {"until": 20 * HOUR}  # written through the reference taken before the sweep
    assert set(shard.states) == {"new", "later"}


def test_state_survives_a_snapshot():
    shard = _Expiring(lambda state: state["until"], None)
    shard.states["a"] = {"until": 9 * HOUR}
    shard.advance(2 * HOUR)
    restored = _Expiring(lambda state: state["until"], shard.snapshot())
    assert (restored.states, restored.watermark, restored.swept_at) == (shard.states, 2 * HOUR, shard.swept_at)
