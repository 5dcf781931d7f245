"""Governance events from the workbench to the job.

`appeal.filed`, `appeal.decided` (with the reviewer's reason),
`education.completed`, and the reviewer extensions of docs/CONTRACT.md:
`violation.overturned` and `review.decided`. Every event is built here
(`appeal_filed`, `appeal_decided`, `lesson_completed`, `violation_overturned`,
`review_decided`), checked against the wire contract with the job's own
decoder, and handed to a `Publisher`:

- `FilePublisher`: appends one NDJSON line per event to a governance events
  file (under an exclusive lock, one `write` per line, fsync'd), which the job
  reads: `cat events.jsonl governance.jsonl | shopguard replay - --out DIR`,
  or a file source that follows it.
- `KafkaPublisher`: produces to the governance topic (`governance-events`),
  keyed by actor, idempotent, and waits for the broker's acknowledgement.

Event time. The ledger applies governance events in event-time order with
the violations, so an event must be stamped with the job's clock, not the
reviewer's: `event_time(store_clock, floor, mode)` gives the newest event
time in the job's outputs ("data", right for replays and simulations whose
clock is not the wall clock) or the wall clock ("wall", for a live job),
never earlier than `floor` (the violation's `detected_at`, or the filing of
the appeal being decided).

Example
-------
>>> e = appeal_decided("ap-1", "v-1", "seller:S1", "overturned", "rev-ana", ts=5, reason="Genuine goods.")
>>> e["type"], e["decision"], e["reviewer_id"], e["event_id"].startswith("wb-")
('appeal.decided', 'overturned', 'rev-ana', True)
>>> event_time(store_clock=100, floor=120, mode="data")
120
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import msgspec

from pipeline.contract.events import (
    AppealDecided, AppealFiled, EducationCompleted, InvalidEvent, ReviewDecided, ViolationOverturned, decode,
)

GOVERNANCE_TOPIC = AppealFiled.topic
GOVERNANCE_EVENTS = (AppealFiled, AppealDecided, EducationCompleted, ViolationOverturned, ReviewDecided)
MAX_REASON_CHARS = 2000

_encoder = msgspec.json.Encoder()


class PublishError(RuntimeError):
    """The event could not be handed to the job; nothing was written."""


class Publisher(Protocol):
    """Where governance events go: the job's governance input."""

    name: str  # where, in words (a path or kafka:topic), shown on the pages and used as the events' origin

    def publish(self, event: dict[str, Any]) -> None:
        """Hand one contract event to the job; raises PublishError if it could not."""

    def close(self) -> None: ...


def checked(event: dict[str, Any]) -> Any:
    """The event decoded exactly as the job will decode it: never publish what the job would dead-letter."""
    try:
        decoded = decode(_encoder.encode(event))
    except InvalidEvent as err:
        raise PublishError(f"not a valid {event.get('type')} event: {err}") from None
    if not isinstance(decoded, GOVERNANCE_EVENTS):
        raise PublishError(f"{event.get('type')} is not a governance event")
    return decoded


def event_time(store_clock: int | None, floor: int | None, mode: str = "data") -> int:
    """When a governance event happens, in the job's event time (see the module docstring)."""
    now = int(time.time() * 1000) if mode == "wall" or store_clock is None else store_clock
    return max(now, floor or 0)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def appeal_filed(violation_id: str, actor: str, reason: str, *, ts: int) -> dict[str, Any]:
    return {"event_id": new_id("wb"), "type": "appeal.filed", "ts": ts, "appeal_id": new_id("ap"),
            "violation_id": violation_id, "actor": actor, "reason": reason[:MAX_REASON_CHARS]}


def appeal_decided(appeal_id: str, violation_id: str, actor: str, decision: str, reviewer_id: str, *,
                   ts: int, reason: str | None = None) -> dict[str, Any]:
    return {"event_id": new_id("wb"), "type": "appeal.decided", "ts": ts, "appeal_id": appeal_id,
            "violation_id": violation_id, "actor": actor, "decision": decision, "reviewer_id": reviewer_id,
            "reason": reason[:MAX_REASON_CHARS] if reason else None}


def violation_overturned(violation_id: str, actor: str, reviewer_id: str, reason: str, *, ts: int) -> dict[str, Any]:
    return {"event_id": new_id("wb"), "type": "violation.overturned", "ts": ts, "violation_id": violation_id,
            "actor": actor, "reviewer_id": reviewer_id, "reason": reason[:MAX_REASON_CHARS]}


def review_decided(actor: str, model: str, entry_ts: int, decision: str, reviewer_id: str, *, ts: int,
                   features: dict[str, float], reason: str | None = None) -> dict[str, Any]:
    return {"event_id": new_id("wb"), "type": "review.decided", "ts": ts, "actor": actor, "model": model,
            "entry_ts": entry_ts, "decision": decision, "reviewer_id": reviewer_id, "features": features,
            "reason": reason[:MAX_REASON_CHARS] if reason else None}


def lesson_completed(actor: str, module_id: str, *, ts: int) -> dict[str, Any]:
    return {"event_id": new_id("wb"), "type": "education.completed", "ts": ts, "actor": actor,
            "module_id": module_id}


class FilePublisher:
    """Appends events to an NDJSON governance file, one whole line per event, safe for several writers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def publish(self, event: dict[str, Any]) -> None:
        checked(event)
        line = _encoder.encode(event) + b"\n"
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise PublishError(f"cannot open {self.path}: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._finish_last_line(fd)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as err:
            raise PublishError(f"cannot write {self.path}: {err.strerror}") from None
        finally:
            os.close(fd)  # releases the lock

    def _finish_last_line(self, fd: int) -> None:
        """A file whose last line lacks its newline (edited by hand) would swallow our line: end it first."""
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")

    def close(self) -> None:
        pass


class KafkaPublisher:
    """Produces events to the governance topic, keyed by actor; `publish` returns once the broker has it."""

    def __init__(self, settings: dict[str, str], topic: str = GOVERNANCE_TOPIC, timeout_s: float = 30.0) -> None:
        from confluent_kafka import Producer

        self.topic, self.timeout_s = topic, timeout_s
        self.name = f"kafka:{topic}"
        self.producer = Producer({**settings, "acks": "all", "enable.idempotence": "true"})

    def publish(self, event: dict[str, Any]) -> None:
        decoded = checked(event)
        errors: list[Any] = []
        self.producer.produce(self.topic, value=_encoder.encode(event), key=decoded.actor.encode(),
                              on_delivery=lambda err, _msg: errors.append(err) if err is not None else None)
        if self.producer.flush(self.timeout_s) or errors:
            raise PublishError(f"Kafka did not take the event on {self.topic}: "
                               f"{errors[0] if errors else f'not delivered within {self.timeout_s:g} s'}")

    def close(self) -> None:
        self.producer.flush(self.timeout_s)
