"""LIVE detectors: engagement that was bought, not earned.

`EngagementInflation` judges each `live.stats` interval against the same
LIVE's own recent baseline. Bought viewers, likes or followers arrive as a
jump that real engagement does not follow: viewers x5 while likes, comments,
shares and distinct commenters stay where they were. An organic viral ramp
brings engagement and new commenters along with the viewers, so it stays
clean. A finding must hold for `sustain_intervals` consecutive intervals
before it is issued, so a single glitchy stats event is never enough.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import OrderedDict
from dataclasses import dataclass, field
from operator import attrgetter
from statistics import median
from typing import ClassVar

import msgspec

from detectors.registry import register
from detectors.base import CoolDown, Signal, clamp01
from pipeline.contract.events import LiveComment, LiveEnded, LiveStats


class EngagementInflationConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of `EngagementInflation` (table `[detectors.engagement_inflation]`).

    Parameters
    ----------
    baseline_seconds
        How far back the LIVE's own baseline reaches.
    recent_gap_seconds
        The newest intervals left out of the baseline, so a jump that takes two
        intervals is not half inside its own baseline.
    min_baseline_intervals
        Stats intervals the baseline needs before anything is judged.
    viewer_jump_ratio, like_jump_ratio, follower_jump_ratio
        How many times the baseline a metric must jump to.
    min_added_viewers, min_added_likes, min_added_followers
        Absolute floors, so tiny LIVEs do not trip on noise.
    min_added_likes_per_viewer, min_added_followers_per_viewer
        Floors relative to the audience: a jump must also add this many likes
        or followers per current viewer in one interval, so the bar rises
        with the LIVE's size instead of being one number for all.
    engagement_follow_fraction
        Real audiences bring engagement along: the jump counts as unfollowed
        when engagement grew less than this fraction of the viewer jump.
    quiet_ratio
        Other signals count as "not following" below this many times baseline.
    commenter_window_seconds
        Window in which distinct commenters are counted.
    sustain_intervals
        Consecutive anomalous intervals needed before a violation.
    cooldown_seconds
        One violation per LIVE and kind of inflation within this period.
    """

    baseline_seconds: float
    recent_gap_seconds: float
    min_baseline_intervals: int
    viewer_jump_ratio: float
    min_added_viewers: int
    engagement_follow_fraction: float
    like_jump_ratio: float
    min_added_likes: int
    min_added_likes_per_viewer: float
    follower_jump_ratio: float
    min_added_followers: int
    min_added_followers_per_viewer: float
    quiet_ratio: float
    commenter_window_seconds: float
    sustain_intervals: int
    cooldown_seconds: float


@dataclass(slots=True)
class _Interval:
    ts: int
    viewers: int
    likes: int
    comments: int
    shares: int
    followers: int

    def __lt__(self, other: "_Interval") -> bool:
        return self.ts < other.ts

    @property
    def engagement(self) -> int:
        return self.likes + self.comments + self.shares


_TS, _VIEWERS, _LIKES, _FOLLOWERS = (attrgetter(name) for name in ("ts", "viewers", "likes", "followers"))


@dataclass(slots=True)
class LiveState:
    """What one LIVE remembers: recent intervals, recent commenters, streaks."""

    creator: str
    intervals: list[_Interval] = field(default_factory=list)
    # user -> last ts, oldest first; OrderedDict so dropping the oldest is O(1)
    commenters: OrderedDict[str, int] = field(default_factory=OrderedDict)
    streaks: dict[str, int] = field(default_factory=dict)  # kind -> consecutive anomalous intervals
    cooldown: CoolDown = field(default_factory=lambda: CoolDown(0))


@dataclass(slots=True)
class _Baseline:
    start: int
    intervals: int
    viewers: float
    likes: float
    engagement: float
    comments: float
    followers: float
    commenters_per_window: float


@register
class EngagementInflation:
    """Bought viewers, likes or followers on a LIVE.

    Examples
    --------
    >>> cfg = EngagementInflationConfig(baseline_seconds=300, recent_gap_seconds=25,
    ...     min_baseline_intervals=6, viewer_jump_ratio=3, min_added_viewers=100,
    ...     engagement_follow_fraction=0.3, like_jump_ratio=6, min_added_likes=15,
    ...     min_added_likes_per_viewer=0.1, follower_jump_ratio=8, min_added_followers=5,
    ...     min_added_followers_per_viewer=0.02, quiet_ratio=1.5,
    ...     commenter_window_seconds=120, sustain_intervals=2, cooldown_seconds=3600)
    >>> det = EngagementInflation(cfg)
    >>> def stats(i, viewers):
    ...     return LiveStats(event_id=f"s{i}", ts=i * 10_000, live_id="V1", creator_id="C1",
    ...                      viewers=viewers, likes=20, comments=5, shares=1, new_followers=1)
    >>> state, found = None, []
    >>> for i, v in enumerate([200] * 12 + [2000] * 3):
    ...     state, signals = det.on_event(state, stats(i, v))
    ...     found += signals
    >>> [(s.actor, s.violation_type, s.detected_at, s.evidence["kind"]) for s in found]
    [('creator:C1', 'engagement_inflation', 130000, 'viewers')]
    """

    name: ClassVar[str] = "engagement_inflation_v1"
    violation_type: ClassVar[str] = "engagement_inflation"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "engagement_inflation"
    Config: ClassVar[type] = EngagementInflationConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
    event_types: ClassVar[frozenset[type]] = frozenset({LiveStats, LiveComment, LiveEnded})

    def __init__(self, config: EngagementInflationConfig) -> None:
        self.config = config
        self._baseline_ms = int(config.baseline_seconds * 1000)
        self._gap_ms = int(config.recent_gap_seconds * 1000)
        self._commenter_ms = int(config.commenter_window_seconds * 1000)
        self._cooldown_ms = int(config.cooldown_seconds * 1000)

    def entity(self, event) -> str:
        return event.live_id

    def on_event(self, state: LiveState | None, event) -> tuple[LiveState | None, list[Signal]]:
        kind = type(event)  # the event classes are final: `is` instead of isinstance chains
        if kind is LiveEnded:
            return None, []  # the LIVE is over: nothing left to judge
        if state is None:
            state = LiveState(creator=f"creator:{event.creator_id}", cooldown=CoolDown(self._cooldown_ms))
        if kind is LiveComment:
            if not event.by_host:
                self._remember_commenter(state, event)
            return state, []
        return state, self._on_stats(state, event)

    # -- comments ---------------------------------------------------------

    def _remember_commenter(self, state: LiveState, event: LiveComment) -> None:
        commenters, ts = state.commenters, event.ts
        commenters.pop(event.user_id, None)
        commenters[event.user_id] = ts
        horizon = ts - self._baseline_ms - self._commenter_ms
        while commenters:
            oldest_user = next(iter(commenters))
            if commenters[oldest_user] >= horizon:
                break
            del commenters[oldest_user]

    def _distinct_commenters(self, state: LiveState, start: int, end: int) -> int:
        return sum(1 for ts in state.commenters.values() if start < ts <= end)

    # -- stats --------------------------------------------------------------

    def _on_stats(self, state: LiveState, event: LiveStats) -> list[Signal]:
        current = _Interval(event.ts, event.viewers, event.likes, event.comments, event.shares, event.new_followers)
        newest = not state.intervals or event.ts >= state.intervals[-1].ts
        insort(state.intervals, current, key=_TS)  # by ts as `_Interval.__lt__`, without a Python call per step
        self._trim(state, event.ts)
        if not newest:
            return []  # a late interval joins the history; judging happens on the newest
        window = self._baseline_window(state, event.ts)
        if window is None or not self._could_be_a_jump(current, window):
            state.streaks = {}
            return []
        baseline = self._baseline(state, window)
        anomalies = dict(self._anomalies(state, current, baseline))
        # A streak counts consecutive anomalous intervals; a normal one resets it.
        state.streaks = {kind: state.streaks.get(kind, 0) + 1 for kind in anomalies}
        return [
            self._signal(state, event, kind, evidence, baseline)
            for kind, evidence in anomalies.items()
            if state.streaks[kind] >= self.config.sustain_intervals
            and state.cooldown.ready(f"{event.live_id}:{kind}", event.ts)
        ]

    def _trim(self, state: LiveState, now: int) -> None:
        drop = bisect_left(state.intervals, now - self._baseline_ms - self._gap_ms, key=_TS)
        if drop:
            del state.intervals[:drop]

    def _baseline_window(self, state: LiveState, now: int) -> list[_Interval] | None:
        lo = bisect_left(state.intervals, now - self._baseline_ms, key=_TS)
        hi = bisect_left(state.intervals, now - self._gap_ms, key=_TS)
        return state.intervals[lo:hi] if hi - lo >= self.config.min_baseline_intervals else None

    def _could_be_a_jump(self, cur: _Interval, window: list[_Interval]) -> bool:
        """Cheap pre-check: a median is at least the minimum, so a metric below
        ratio x its window minimum cannot be a jump. Most intervals stop here."""
        cfg = self.config
        return (
            cur.viewers >= cfg.viewer_jump_ratio * min(map(_VIEWERS, window))
            or cur.likes + 1 >= cfg.like_jump_ratio * (min(map(_LIKES, window)) + 1)
            or cur.followers + 1 >= cfg.follower_jump_ratio * (min(map(_FOLLOWERS, window)) + 1)
        )

    def _baseline(self, state: LiveState, window: list[_Interval]) -> _Baseline:
        span = max(1, window[-1].ts - window[0].ts)
        commenters = self._distinct_commenters(state, window[0].ts, window[-1].ts)
        return _Baseline(
            start=window[0].ts,
            intervals=len(window),
            viewers=median(iv.viewers for iv in window),
            likes=median(iv.likes for iv in window),
            engagement=median(iv.engagement for iv in window),
            comments=median(iv.comments for iv in window),
            followers=median(iv.followers for iv in window),
            commenters_per_window=commenters * self._commenter_ms / span,
        )

    def _anomalies(self, state: LiveState, cur: _Interval, base: _Baseline):
        """Each kind of unfollowed jump present in this interval, with its evidence."""
        cfg = self.config
        engagement_ratio = (cur.engagement + 1) / (base.engagement + 1)
        comments_ratio = (cur.comments + 1) / (base.comments + 1)
        viewer_ratio = cur.viewers / max(base.viewers, 1.0)
        recent_commenters = self._distinct_commenters(state, cur.ts - self._commenter_ms, cur.ts)
        commenters_ratio = (recent_commenters + 1) / (base.commenters_per_window + 1)
        common = {
            "baseline_viewers": base.viewers, "observed_viewers": cur.viewers,
            "viewer_ratio": round(viewer_ratio, 2),
            "baseline_engagement_per_interval": base.engagement, "observed_engagement": cur.engagement,
            "engagement_ratio": round(engagement_ratio, 2),
            "baseline_distinct_commenters": round(base.commenters_per_window, 1),
            "recent_distinct_commenters": recent_commenters,
            "baseline_intervals": base.intervals,
        }
        followed = max(cfg.quiet_ratio, viewer_ratio * cfg.engagement_follow_fraction)
        if (
            viewer_ratio >= cfg.viewer_jump_ratio
            and cur.viewers - base.viewers >= cfg.min_added_viewers
            and engagement_ratio < followed
            and commenters_ratio < followed
        ):
            yield "viewers", {**common, "threshold_viewer_ratio": cfg.viewer_jump_ratio,
                              "threshold_engagement_ratio": round(followed, 2)}
        like_ratio = (cur.likes + 1) / (base.likes + 1)
        if (
            like_ratio >= cfg.like_jump_ratio
            and cur.likes - base.likes >= max(cfg.min_added_likes, cfg.min_added_likes_per_viewer * cur.viewers)
            and viewer_ratio < cfg.quiet_ratio
            and comments_ratio < cfg.quiet_ratio
        ):
            yield "likes", {**common, "baseline_likes": base.likes, "observed_likes": cur.likes,
                            "like_ratio": round(like_ratio, 2), "threshold_like_ratio": cfg.like_jump_ratio}
        follower_ratio = (cur.followers + 1) / (base.followers + 1)
        if (
            follower_ratio >= cfg.follower_jump_ratio
            and cur.followers - base.followers >= max(
                cfg.min_added_followers, cfg.min_added_followers_per_viewer * cur.viewers)
            and comments_ratio < cfg.quiet_ratio
            and viewer_ratio < cfg.viewer_jump_ratio
        ):
            yield "followers", {**common, "baseline_new_followers": base.followers,
                                "observed_new_followers": cur.followers,
                                "follower_ratio": round(follower_ratio, 2),
                                "threshold_follower_ratio": cfg.follower_jump_ratio}

    def _signal(self, state: LiveState, event: LiveStats, kind: str, evidence: dict, base: _Baseline) -> Signal:
        ratio = evidence.get(f"{kind[:-1]}_ratio", evidence["viewer_ratio"])
        # Stronger the further the metric jumped while engagement stayed flat.
        confidence = clamp01(0.55 + 0.12 * math.log2(max(ratio, 1.0) / max(evidence["engagement_ratio"], 1.0)))
        what = {"viewers": "viewers", "likes": "likes", "followers": "new followers"}[kind]
        return Signal(
            actor=state.creator,
            violation_type=self.violation_type,
            detector=self.name,
            subject=f"{event.live_id}:{kind}",
            detected_at=event.ts,
            window_start=base.start,
            window_end=event.ts,
            confidence=confidence,
            evidence={"live_id": event.live_id, "kind": kind, **evidence},
            explanation=(
                f"On LIVE {event.live_id} your {what} jumped to {ratio:.1f}x their recent level "
                f"while real engagement from viewers did not follow, which is how bought {what} look."
            ),
        )
