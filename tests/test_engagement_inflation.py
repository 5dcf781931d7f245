"""engagement_inflation: bought viewers, likes or followers against the LIVE's own baseline."""

from __future__ import annotations

import pickle
import random

from pipeline.contract.events import LiveComment, LiveEnded, LiveStats
from tests.detector_helpers import feed, shipped

T0 = 1_793_491_200_000


def stats(i, viewers, likes=None, comments=None, shares=2, followers=1, live="V1", creator="C1", jitter=0):
    likes = max(1, viewers // 10) if likes is None else likes
    comments = max(1, viewers // 40) if comments is None else comments
    return LiveStats(event_id=f"{live}-s{i}", ts=T0 + i * 10_000 + jitter, live_id=live, creator_id=creator,
                     viewers=viewers, likes=likes, comments=comments, shares=shares, new_followers=followers)


def comments_from(i, users, live="V1"):
    return [LiveComment(event_id=f"{live}-c{i}-{u}", ts=T0 + i * 10_000 + 1 + k, live_id=live, creator_id="C1",
                        user_id=f"U{u}", text="nice", by_host=False) for k, u in enumerate(users)]


def steady_then(viewer_series, engagement_follows: bool):
    """Stats every 10 s with viewer comments from distinct users; engagement follows viewers or not."""
    events, base = [], viewer_series[0]
    for i, v in enumerate(viewer_series):
        engaged = v if engagement_follows else base
        events.append(stats(i, v, likes=engaged // 10, comments=engaged // 40))
        events.extend(comments_from(i, range(i * 5, i * 5 + max(1, engaged // 60))))
    return events


def test_bought_viewers_are_found_two_intervals_after_the_jump():
    det = shipped("engagement_inflation")
    series = [400] * 30 + [4000] * 10
    found = feed(det, steady_then(series, engagement_follows=False))
    assert len(found) == 1
    v = found[0]
    assert (v.actor, v.violation_type, v.evidence["kind"]) == ("creator:C1", "engagement_inflation", "viewers")
    assert v.detected_at == T0 + 31 * 10_000  # jump at interval 30, sustained at 31
    assert v.evidence["viewer_ratio"] >= 9 and v.evidence["engagement_ratio"] < 2
    assert 0.5 < v.confidence <= 1 and "LIVE V1" in v.explanation


def test_an_organic_viral_ramp_stays_clean():
    det = shipped("engagement_inflation")
    ramp = [400] * 20 + [int(400 * 1.15 ** k) for k in range(20)] + [6000] * 20  # 15x over 3+ minutes
    assert feed(det, steady_then(ramp, engagement_follows=True)) == []


def test_a_single_glitchy_interval_is_not_enough():
    det = shipped("engagement_inflation")
    series = [400] * 30 + [4000] + [400] * 10
    assert feed(det, steady_then(series, engagement_follows=False)) == []


def test_a_small_live_does_not_trip_on_noise():
    det = shipped("engagement_inflation")
    series = [10] * 30 + [60] * 10  # 6x, but only 50 more viewers
    assert feed(det, steady_then(series, engagement_follows=False)) == []


def test_bought_followers_without_comments_are_found():
    det = shipped("engagement_inflation")
    events = [stats(i, 500, likes=50, comments=12, followers=2) for i in range(30)]
    events += [stats(30 + i, 520, likes=50, comments=12, followers=150) for i in range(5)]
    found = feed(det, events)
    assert [v.evidence["kind"] for v in found] == ["followers"]


def test_one_violation_per_live_and_kind_within_the_cooldown():
    det = shipped("engagement_inflation")
    series = [400] * 30 + [4000] * 10 + [400] * 40 + [4000] * 10
    assert len(feed(det, steady_then(series, engagement_follows=False))) == 1


def test_late_intervals_join_the_baseline_without_breaking_detection():
    det = shipped("engagement_inflation")
    events = steady_then([400] * 30 + [4000] * 10, engagement_follows=False)
    rng = random.Random(3)
    shuffled = events[:]
    for i in range(0, 250, 7):  # swap a few neighbours within the baseline: out of order by ~10 s
        j = min(i + rng.randint(1, 4), 250)
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
    assert len(feed(det, shuffled)) == 1


def test_state_is_dropped_when_the_live_ends_and_survives_pickling():
    det = shipped("engagement_inflation")
    states: dict = {}
    feed(det, steady_then([400] * 20, engagement_follows=True), states)
    restored = pickle.loads(pickle.dumps(states))
    assert restored.keys() == {"V1"} and len(restored["V1"].intervals) == len(states["V1"].intervals)
    feed(det, [LiveEnded(event_id="end", ts=T0 + 999_999, live_id="V1", creator_id="C1")], states)
    assert states == {}


def test_state_per_live_stays_bounded_over_a_long_live():
    det = shipped("engagement_inflation")
    states: dict = {}
    feed(det, steady_then([400] * 2000, engagement_follows=True), states)  # 5.5 hours of stats
    assert len(states["V1"].intervals) <= 35
    assert len(states["V1"].commenters) <= 1000


def test_bought_followers_on_a_small_live_are_found():
    # ~150 viewers, almost no follows, then ~10 follows every 10 s with nobody commenting more:
    # in two minutes that would be most of the audience.
    det = shipped("engagement_inflation")
    events = [stats(i, 150, likes=3, comments=2, followers=i % 7 == 0) for i in range(40)]
    events += [stats(40 + i, 150, likes=3, comments=2, followers=10) for i in range(6)]
    found = feed(det, events)
    assert [v.evidence["kind"] for v in found] == ["followers"]


def test_a_follow_wave_that_comments_follow_is_clean():
    # a shout-out brings new followers and new chat together: organic
    det = shipped("engagement_inflation")
    events = [stats(i, 150, likes=3, comments=2, followers=0) for i in range(40)]
    events += [stats(40 + i, 170, likes=8, comments=12, followers=10) for i in range(6)]
    assert feed(det, events) == []
