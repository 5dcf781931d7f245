"""Appeals, reviewer decisions and lessons for the violations a `shopguard run` issues on the simulator.

Violation ids exist only once the job issues them, so this cannot be part of
the simulated file: the simulator source of `shopguard run` (with file
outputs) follows the run's own `violations.jsonl` and feeds governance events
back into the stream it is producing. Per violation, from
`random.Random(f"{seed}:feedback:{violation_id}")` (the same decisions on any
run that issues the same violation):

- the actor appeals (`appeal.filed`) 2-45 minutes of event time after the
  violation, often when the violation is wrong (an actor the simulator did not
  label for that type: 90%), rarely when it is right (20%); shadow-mode
  violations are not appealed;
- a reviewer decides (`appeal.decided`, `reviewer_id` from a small team)
  10-120 minutes later: overturned 95% of the time when the violation was
  wrong, 5% when it was right;
- half of the actors take the violation's lesson (`education.completed`,
  `module_id` = the violation's `education.module_id`) 5-180 minutes later.

Every event time is after the violation's `detected_at` and after the newest
event the stream has produced, so nothing arrives late; events that would fall
after the end of the simulated span are not sent. Event ids are derived from
the violation id (`fb-<kind>-<violation_id>`), so a resumed run repeats
nothing. Replay of a file (`shopguard replay`, `simulate`) is unaffected:
files never contain feedback.

>>> v = {"violation_id": "v-1", "actor": "seller:S1", "violation_type": "listing_spam", "detected_at": 1_000,
...      "enforced": True, "education": {"module_id": "edu-spam"}}
>>> events = governance_for(v, now_ts=5_000, seed=6, truth=set())
>>> [e["type"] for e in events], all(e["ts"] > 5_000 for e in events)
(['appeal.filed', 'appeal.decided', 'education.completed'], True)
>>> events[1]["decision"], events[2]["module_id"]
('overturned', 'edu-spam')
"""

from __future__ import annotations

import heapq
import os
import random
from dataclasses import dataclass
from pathlib import Path

import msgspec

from simulator.timeline import MINUTE

REVIEWERS = ("rev-ana", "rev-ben", "rev-chen", "rev-dara", "rev-eli")
APPEAL_REASONS = (
    "I did nothing wrong, please look again", "these goods are genuine, I have the invoice",
    "it was a mistake, I have fixed the listing", "my account was used by someone else",
    "the price was correct, please check the history", "I did not know this rule",
)


@dataclass(frozen=True)
class FeedbackRates:
    """How often and how soon actors appeal, reviewers overturn and actors take lessons."""

    appeal_when_wrong: float = 0.9
    appeal_when_right: float = 0.3
    overturn_when_wrong: float = 0.95
    overturn_when_right: float = 0.1
    lesson: float = 0.5
    appeal_minutes: tuple[int, int] = (2, 45)
    decision_minutes: tuple[int, int] = (10, 120)
    lesson_minutes: tuple[int, int] = (5, 180)


def governance_for(violation: dict, now_ts: int, seed: int, truth: set[tuple[str, str]],
                   rates: FeedbackRates = FeedbackRates()) -> list[dict]:
    """The governance events one violation brings, in event-time order, all after `now_ts` and `detected_at`.

    `truth` holds the simulator's labels as (actor, violation_type): a violation not in it is wrong.
    """
    vid, actor = violation["violation_id"], violation["actor"]
    rng = random.Random(f"{seed}:feedback:{vid}")
    start = max(now_ts, violation["detected_at"]) + 1
    right = (actor, violation["violation_type"]) in truth
    events = []
    if violation.get("enforced", True) and rng.random() < (rates.appeal_when_right if right else rates.appeal_when_wrong):
        filed = start + rng.randint(*rates.appeal_minutes) * MINUTE
        overturn = rng.random() < (rates.overturn_when_right if right else rates.overturn_when_wrong)
        common = {"appeal_id": f"ap-{vid}", "violation_id": vid, "actor": actor}
        events.append({"event_id": f"fb-filed-{vid}", "type": "appeal.filed", "ts": filed, **common,
                       "reason": rng.choice(APPEAL_REASONS)})
        events.append({"event_id": f"fb-decided-{vid}", "type": "appeal.decided",
                       "ts": filed + rng.randint(*rates.decision_minutes) * MINUTE, **common,
                       "decision": "overturned" if overturn else "upheld", "reviewer_id": rng.choice(REVIEWERS)})
    module = (violation.get("education") or {}).get("module_id")
    if module and rng.random() < rates.lesson:
        events.append({"event_id": f"fb-lesson-{vid}", "type": "education.completed",
                       "ts": start + rng.randint(*rates.lesson_minutes) * MINUTE, "actor": actor, "module_id": module})
    return sorted(events, key=lambda e: e["ts"])


class FeedbackState(msgspec.Struct, frozen=True):
    """What a resumed run needs: how far the violations file was read, and what is still to be sent."""

    offset: int = 0
    pending: list[dict] = []


class Feedback:
    """Follows a run's `violations.jsonl` and hands out the governance events that are due."""

    def __init__(self, violations: Path, seed: int, truth: set[tuple[str, str]], end_ts: int, *,
                 rates: FeedbackRates = FeedbackRates(), state: FeedbackState | None = None) -> None:
        self._path, self._seed, self._truth, self._end_ts, self._rates = Path(violations), seed, truth, end_ts, rates
        state = state or FeedbackState()
        self._offset = state.offset
        self._pending: list[tuple[int, str, dict]] = [(e["ts"], e["event_id"], e) for e in state.pending]
        heapq.heapify(self._pending)
        self._decode = msgspec.json.Decoder().decode

    def follow(self, now_ts: int) -> None:
        """Read the violations written since the last call (whole lines only) and plan their feedback."""
        for line in self._new_lines():
            for event in governance_for(self._decode(line), now_ts, self._seed, self._truth, self._rates):
                if event["ts"] < self._end_ts:
                    heapq.heappush(self._pending, (event["ts"], event["event_id"], event))

    def due(self, now_ts: int) -> list[dict]:
        """The planned events with event time up to `now_ts`, oldest first."""
        out = []
        while self._pending and self._pending[0][0] <= now_ts:
            out.append(heapq.heappop(self._pending)[2])
        return out

    def snapshot(self) -> FeedbackState:
        return FeedbackState(self._offset, [entry[2] for entry in sorted(self._pending)])

    def _new_lines(self) -> list[bytes]:
        try:
            size = os.path.getsize(self._path)
        except FileNotFoundError:
            return []
        self._offset = min(self._offset, size)  # a resumed run truncated the file back
        if size == self._offset:
            return []
        with open(self._path, "rb") as f:
            f.seek(self._offset)
            data = f.read(size - self._offset)
        complete = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        self._offset += complete
        return [line for line in data[:complete].split(b"\n") if line.strip()]
