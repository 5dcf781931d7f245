"""The workbench store: the job's outputs in an embedded SQLite database, kept up to date.

The console must answer in milliseconds for hundreds of thousands of
violations, which reading JSONL cannot do. The store follows the outputs of
the wire contract (violations, actions, review queue, standing, dead letters)
plus the governance events (appeals filed and decided, lessons completed) into
one SQLite file (WAL: the pages read while the follower writes) with indexes
on actor, type and time.

Where it reads from (a `Feed`):

- `FileFeed`: the JSONL files of an output folder and governance NDJSON
  files. Each file is tailed from a saved byte offset, only up to its last
  newline (a job still writing never shows half a line). A file that was
  truncated or rewritten (a new `replay` into the same folder: it is shorter
  than the read position, or its first 4 KiB or the 4 KiB before the read
  position changed) is read again from the start, and what the store had
  from it is dropped first.
- `KafkaFeed`: the job's output topics and the governance topic, from saved
  offsets per topic-partition.

The same file holds the workbench's own records, in `wb_*` tables that
no rebuild touches: sign-in tokens (salted digests), sessions, the sign-in
throttle, cases and their notes, and the audit log (`auth.py`, `cases.py`).
One verdict per violation is enforced here, by a unique index over
`appeal.decided` and `violation.overturned` rows.

Rows and the position they were read up to are committed in one
transaction, so a store that stops anywhere resumes without losing or
doubling a line. `rebuild()` drops everything and reads the outputs again;
`sync()` reads what is new; `Follower` calls `sync()` in a background thread
while the job runs.

Example
-------
>>> import tempfile, json
>>> from pathlib import Path
>>> out = Path(tempfile.mkdtemp())
>>> v = {"violation_id": "v-1", "actor": "seller:S1", "violation_type": "listing_spam", "policy_id": "P",
...      "severity": "low", "points": 2, "detector": "listing_spam_v1", "confidence": 0.7, "detected_at": 1000,
...      "window_start": 900, "window_end": 1000, "evidence": {"duplicates": 5}, "explanation": "Too many copies.",
...      "education": {"module_id": "m", "title": "T", "url": "https://x.example/m"}, "enforced": True}
>>> _ = (out / "violations.jsonl").write_text(json.dumps(v) + "\\n" + '{"violation_id": "v-2", "act')
>>> store = Store(out / "wb.sqlite", FileFeed(out))
>>> store.sync()["violations"]
1
>>> [r["violation_id"] for r in store.violations(actor="seller:S1")]
['v-1']
>>> store.close()
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import msgspec

from pipeline.contract.events import (
    AppealDecided, AppealFiled, EducationCompleted, InvalidEvent, ReviewDecided, ViolationOverturned, decode,
)
from pipeline.contract.records import Action, DeadLetter, Incentive, ReviewEntry, Standing, Violation

log = logging.getLogger("shopguard.workbench.store")

SCHEMA_VERSION = 4  # 4: incentives, and the rewards of each standing
# Output kinds, by the file name they have in an output folder.
OUTPUT_KINDS: dict[str, str] = {
    "violations": "violations.jsonl",
    "actions": "actions.jsonl",
    "review_queue": "review_queue.jsonl",
    "standing": "standing.jsonl",
    "dead_letter": "dead_letter.jsonl",
    "incentives": "incentives.jsonl",
}
GOVERNANCE = "governance"
GOVERNANCE_EVENTS = (AppealFiled, AppealDecided, EducationCompleted, ViolationOverturned, ReviewDecided)
GOVERNANCE_TYPES = tuple(f'"{t.__struct_config__.tag}"'.encode() for t in GOVERNANCE_EVENTS)
VERDICT_TYPES = ("appeal.decided", "violation.overturned")  # what decides a violation: one per violation
OWNED_PREFIX = "wb_"  # the workbench's own tables (sessions, cases, audit): never dropped by a rebuild
CHUNK_BYTES = 8 << 20  # read a file this much at a time (one transaction each)
HEAD_BYTES = 4096  # the start of a file, and the bytes before the read position, identify what was read
PAGE_LIMIT = 500  # the most rows any one list of a page shows
COUNT_CAP = 10_000  # counts of filtered violations stop here ("10,000+")
FACETS = ("violation_type", "detector", "severity")  # the violation filters with a fixed set of values

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY, kind TEXT NOT NULL, position INTEGER NOT NULL,
    head_len INTEGER NOT NULL DEFAULT 0, head_hash TEXT NOT NULL DEFAULT '', tail_hash TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS violations (
    id INTEGER PRIMARY KEY, violation_id TEXT NOT NULL UNIQUE, actor TEXT NOT NULL,
    violation_type TEXT NOT NULL, policy_id TEXT NOT NULL, severity TEXT NOT NULL, points INTEGER NOT NULL,
    detector TEXT NOT NULL, confidence REAL NOT NULL, detected_at INTEGER NOT NULL,
    window_start INTEGER NOT NULL, window_end INTEGER NOT NULL, enforced INTEGER NOT NULL,
    module_id TEXT NOT NULL);
-- the wide part of a violation, apart: scans and index builds over `violations` stay fast
CREATE TABLE IF NOT EXISTS violation_text (
    id INTEGER PRIMARY KEY, explanation TEXT NOT NULL, lesson_title TEXT NOT NULL, lesson_url TEXT NOT NULL,
    evidence TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS facets (kind TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (kind, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY, action_id TEXT NOT NULL UNIQUE, actor TEXT NOT NULL, action TEXT NOT NULL,
    active_points INTEGER NOT NULL, violation_ids TEXT NOT NULL, ts INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS review (
    id INTEGER PRIMARY KEY, actor TEXT NOT NULL, score REAL NOT NULL, model TEXT NOT NULL,
    features TEXT NOT NULL, ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
    actor TEXT PRIMARY KEY, score REAL NOT NULL, model TEXT NOT NULL, features TEXT NOT NULL,
    ts INTEGER NOT NULL, entries INTEGER NOT NULL, last_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS standing (
    id INTEGER PRIMARY KEY, actor TEXT NOT NULL, active_points INTEGER NOT NULL, level TEXT NOT NULL,
    health INTEGER NOT NULL, restrictions TEXT NOT NULL, ts INTEGER NOT NULL, under_appeal TEXT NOT NULL,
    rewards TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS standing_now (
    actor TEXT PRIMARY KEY, active_points INTEGER NOT NULL, level TEXT NOT NULL, health INTEGER NOT NULL,
    restrictions TEXT NOT NULL, ts INTEGER NOT NULL, under_appeal TEXT NOT NULL, seq INTEGER NOT NULL,
    rewards TEXT NOT NULL DEFAULT '{}');
-- incentive programs granted, revoked and restored (incentives.jsonl)
CREATE TABLE IF NOT EXISTS incentives (
    id INTEGER PRIMARY KEY, incentive_id TEXT NOT NULL UNIQUE, actor TEXT NOT NULL, program TEXT NOT NULL,
    change TEXT NOT NULL, reason TEXT NOT NULL, ts INTEGER NOT NULL, violation_id TEXT NOT NULL,
    appeal_id TEXT NOT NULL, shadow INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY, raw TEXT NOT NULL, error TEXT NOT NULL, source TEXT NOT NULL, ts INTEGER NOT NULL,
    reason TEXT NOT NULL, actor TEXT, appeal_id TEXT, violation_id TEXT);
CREATE TABLE IF NOT EXISTS governance (
    event_id TEXT PRIMARY KEY, type TEXT NOT NULL, ts INTEGER NOT NULL, actor TEXT NOT NULL,
    appeal_id TEXT, violation_id TEXT, decision TEXT, reviewer_id TEXT, reason TEXT, module_id TEXT,
    origin TEXT NOT NULL, model TEXT, entry_ts INTEGER);
-- listing and LIVE ids named in a violation's evidence: search and evidence links
CREATE TABLE IF NOT EXISTS violation_refs (ref TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (ref, id))
    WITHOUT ROWID;
-- one verdict per violation, whoever publishes it: a second decider finds the first one's row
CREATE UNIQUE INDEX IF NOT EXISTS governance_one_verdict ON governance (violation_id)
    WHERE type IN ('appeal.decided', 'violation.overturned');
"""

# The workbench's own records. Not derived from the outputs, so a rebuild keeps them.
_OWNED_SCHEMA = """
CREATE TABLE IF NOT EXISTS wb_tokens (
    key TEXT PRIMARY KEY, role TEXT NOT NULL, who TEXT NOT NULL, salt BLOB NOT NULL, digest BLOB NOT NULL,
    source TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS wb_sessions (
    id_digest TEXT PRIMARY KEY, token_key TEXT NOT NULL, token_digest BLOB NOT NULL, role TEXT NOT NULL,
    who TEXT NOT NULL, csrf TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
    flash TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS wb_sessions_expiry ON wb_sessions (expires_at);
CREATE TABLE IF NOT EXISTS wb_throttle (
    scope TEXT NOT NULL, subject TEXT NOT NULL, failures INTEGER NOT NULL, first_at REAL NOT NULL,
    locked_until REAL NOT NULL DEFAULT 0, PRIMARY KEY (scope, subject));
CREATE TABLE IF NOT EXISTS wb_cases (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, actor TEXT NOT NULL, status TEXT NOT NULL,
    assignee TEXT, updated_at REAL NOT NULL, updated_by TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS wb_cases_status ON wb_cases (kind, status, assignee);
CREATE TABLE IF NOT EXISTS wb_notes (
    id INTEGER PRIMARY KEY, case_key TEXT NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS wb_notes_case ON wb_notes (case_key, at);
CREATE TABLE IF NOT EXISTS wb_audit (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, who TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS wb_audit_who ON wb_audit (who, at);
CREATE INDEX IF NOT EXISTS wb_audit_action ON wb_audit (action, at);
"""

# Secondary indexes: left out while an empty store loads (built once at the end: much faster).
# The violation filters are covering indexes (the other filter columns ride along), so a
# filtered page or count never reads the wide rows it skips.
_INDEXES = """
CREATE INDEX IF NOT EXISTS violations_time ON violations (
    detected_at, id, violation_type, detector, severity, enforced);
CREATE INDEX IF NOT EXISTS violations_type ON violations (
    violation_type, detected_at, id, detector, severity, enforced);
CREATE INDEX IF NOT EXISTS violations_detector ON violations (
    detector, detected_at, id, violation_type, severity, enforced);
CREATE INDEX IF NOT EXISTS violations_severity ON violations (
    severity, detected_at, id, violation_type, detector, enforced);
CREATE INDEX IF NOT EXISTS violations_actor ON violations (actor, detected_at);
CREATE INDEX IF NOT EXISTS actions_actor ON actions (actor, ts);
CREATE INDEX IF NOT EXISTS review_actor ON review (actor, ts);
CREATE INDEX IF NOT EXISTS queue_score ON queue (score DESC, actor);
CREATE INDEX IF NOT EXISTS standing_actor ON standing (actor, ts);
CREATE INDEX IF NOT EXISTS incentives_actor ON incentives (actor, ts);
CREATE INDEX IF NOT EXISTS dead_letter_actor ON dead_letter (actor, ts);
CREATE INDEX IF NOT EXISTS dead_letter_appeal ON dead_letter (appeal_id);
CREATE INDEX IF NOT EXISTS governance_actor ON governance (actor, ts);
CREATE INDEX IF NOT EXISTS governance_violation ON governance (violation_id, ts);
CREATE INDEX IF NOT EXISTS governance_type ON governance (type, ts);
CREATE INDEX IF NOT EXISTS governance_appeal ON governance (appeal_id);
CREATE INDEX IF NOT EXISTS violations_id_actor ON violations (actor, violation_type, detected_at);
"""

# Tables filled from each kind (cleared when its source starts over).
_TABLES_OF_KIND = {
    "violations": ("violations", "violation_text", "facets", "violation_refs"),
    "actions": ("actions",),
    "review_queue": ("review", "queue"),
    "standing": ("standing", "standing_now"),
    "dead_letter": ("dead_letter",),
    "incentives": ("incentives",),
}


# ---- where the records come from ------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """Complete lines of one source, and where the source stands after them."""

    kind: str  # one of OUTPUT_KINDS or GOVERNANCE
    source: str  # the cursor's name: a file path or kafka:topic:partition
    lines: list[bytes]
    position: int  # byte offset (files) or next offset (Kafka) after these lines
    head_len: int = 0
    head_hash: str = ""
    tail_hash: str = ""
    restart: bool = False  # the source started over: drop what was read from it first


@dataclass(frozen=True)
class Cursor:
    position: int
    head_len: int = 0
    head_hash: str = ""
    tail_hash: str = ""


class Feed(Protocol):
    """A source of output and governance records for the store."""

    def batches(self, cursors: dict[str, Cursor]) -> Iterator[Batch]:
        """What is new since `cursors`, in order per source; ends when nothing more is there now."""

    def close(self) -> None: ...


def _digest(path: Path, start: int, end: int) -> str:
    with open(path, "rb") as f:
        f.seek(start)
        return hashlib.blake2b(f.read(end - start), digest_size=16).hexdigest()


def _tail_digest(path: Path, position: int) -> str:
    """The bytes just before `position`: a file rewritten by a new run differs there even if it is longer."""
    return _digest(path, max(0, position - HEAD_BYTES), position)


def _rewritten(path: Path, size: int, cursor: Cursor) -> bool:
    """Whether the file is no longer the one read up to `cursor` (truncated, or rewritten by a new run)."""
    if size < cursor.position:
        return True
    if cursor.head_len and _digest(path, 0, cursor.head_len) != cursor.head_hash:
        return True
    return bool(cursor.tail_hash) and _tail_digest(path, cursor.position) != cursor.tail_hash


class FileFeed:
    """The JSONL files of an output folder, and governance NDJSON files (read for governance events only)."""

    def __init__(self, out_dir: str | Path, governance_files: Iterable[str | Path] = ()) -> None:
        self.out_dir = Path(out_dir)
        self.files: list[tuple[str, Path]] = [(kind, self.out_dir / name) for kind, name in OUTPUT_KINDS.items()]
        self.files += [(GOVERNANCE, Path(p)) for p in dict.fromkeys(str(p) for p in governance_files)]

    def batches(self, cursors: dict[str, Cursor]) -> Iterator[Batch]:
        for kind, path in self.files:
            yield from self._tail(kind, path, cursors.get(str(path)))

    def _tail(self, kind: str, path: Path, cursor: Cursor | None) -> Iterator[Batch]:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            if cursor is not None and cursor.position > 0:
                yield Batch(kind, str(path), [], 0, restart=True)
            return
        position, restart = (cursor.position, False) if cursor else (0, False)
        if cursor is not None and cursor.position and _rewritten(path, size, cursor):
            position, restart = 0, True  # a new run wrote it: read it all again
        if restart:
            yield Batch(kind, str(path), [], 0, restart=True)
        with open(path, "rb") as f:
            f.seek(position)
            while True:
                chunk = f.read(CHUNK_BYTES)
                end = chunk.rfind(b"\n")
                if end < 0:
                    if len(chunk) == CHUNK_BYTES:  # one line longer than a chunk: read it whole
                        chunk += f.readline()
                        end = chunk.rfind(b"\n")
                    if end < 0:
                        return
                f.seek(position + end + 1)
                position += end + 1
                head_len = min(position, HEAD_BYTES)
                yield Batch(kind, str(path), chunk[:end].split(b"\n"), position, head_len,
                            _digest(path, 0, head_len), _tail_digest(path, position))

    def close(self) -> None:
        pass


class KafkaFeed:
    """The job's output topics and the governance topic, from the store's saved offsets.

    `topics` maps topic -> kind (one of OUTPUT_KINDS or GOVERNANCE); see
    `kafka_topics(config)`. No consumer group is joined: partitions are
    assigned and the store keeps the offsets.
    """

    POLL_BATCH = 5000

    def __init__(self, settings: dict[str, str], topics: dict[str, str], poll_seconds: float = 0.2) -> None:
        from confluent_kafka import Consumer

        self.topics = topics
        self.poll_seconds = poll_seconds
        self.consumer = Consumer({
            "auto.offset.reset": "earliest", **settings,
            "group.id": settings.get("group.id", "shopguard-workbench"),  # required by librdkafka, never joined
            "enable.auto.commit": "false", "enable.partition.eof": "false",
        })
        self._assigned: dict[tuple[str, int], int] = {}

    def _assign(self, cursors: dict[str, Cursor]) -> None:
        from confluent_kafka import TopicPartition

        metadata = self.consumer.list_topics(timeout=10)
        wanted = {}
        for topic in self.topics:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                continue
            for p in info.partitions:
                cursor = cursors.get(f"kafka:{topic}:{p}")
                wanted[(topic, p)] = cursor.position if cursor else 0
        if set(wanted) != set(self._assigned):
            self.consumer.assign([TopicPartition(t, p, off) for (t, p), off in sorted(wanted.items())])
            self._assigned = wanted

    def batches(self, cursors: dict[str, Cursor]) -> Iterator[Batch]:
        self._assign(cursors)
        while True:
            messages = self.consumer.consume(self.POLL_BATCH, self.poll_seconds)
            grouped: dict[tuple[str, int], tuple[list[bytes], int]] = {}
            for m in messages:
                if m.error() is not None:
                    log.warning("kafka: %s", m.error())
                    continue
                lines, _ = grouped.get((m.topic(), m.partition()), ([], 0))
                lines.append(m.value() or b"")
                grouped[(m.topic(), m.partition())] = (lines, m.offset() + 1)
            for (topic, partition), (lines, next_offset) in grouped.items():
                yield Batch(self.topics[topic], f"kafka:{topic}:{partition}", lines, next_offset)
            if len(messages) < self.POLL_BATCH:
                return

    def close(self) -> None:
        self.consumer.close()


def kafka_topics(config: Any) -> dict[str, str]:
    """topic -> kind for a `KafkaFeed`: `[kafka.output_topics]` and the governance topic."""
    topics = {config.kafka.output_topics[kind]: kind for kind in OUTPUT_KINDS if kind in config.kafka.output_topics}
    topics[AppealFiled.topic] = GOVERNANCE
    return topics


# ---- turning lines into rows ---------------------------------------------------------------


_decoders = {
    "violations": msgspec.json.Decoder(Violation),
    "actions": msgspec.json.Decoder(Action),
    "review_queue": msgspec.json.Decoder(ReviewEntry),
    "standing": msgspec.json.Decoder(Standing),
    "dead_letter": msgspec.json.Decoder(DeadLetter),
    "incentives": msgspec.json.Decoder(Incentive),
}
_json = msgspec.json.Encoder()


def _text(value: Any) -> str:
    return _json.encode(value).decode()


def _dead_letter_refs(raw: str) -> tuple[str | None, str | None, str | None]:
    """(actor, appeal_id, violation_id) of a dead-lettered governance event, so an actor's page can show it."""
    if '"actor"' not in raw:
        return None, None, None
    try:
        data = json.loads(raw)
    except ValueError:
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    values = [data.get(k) for k in ("actor", "appeal_id", "violation_id")]
    return tuple(v if isinstance(v, str) else None for v in values)  # type: ignore[return-value]


def _violation_row(id_: int, v: Violation) -> tuple:
    return (id_, v.violation_id, v.actor, v.violation_type, v.policy_id, v.severity, v.points, v.detector,
            v.confidence, v.detected_at, v.window_start, v.window_end, int(v.enforced), v.education.module_id)


def _violation_text_row(id_: int, v: Violation) -> tuple:
    return (id_, v.explanation, v.education.title, v.education.url, _text(v.evidence))


# ---- the store --------------------------------------------------------------------------------


class Store:
    """The SQLite database of one workbench; thread-safe (one writer, a read connection per thread)."""

    def __init__(self, path: str | Path, feed: Feed) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.feed = feed
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._db = self._connect()
        with self._write_lock:
            self._prepare()
        self.problems = 0  # lines that were not valid records (counted, skipped)

    # ---- connections ----

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA cache_size=-65536")  # 64 MiB
        db.row_factory = sqlite3.Row
        return db

    def _reader(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
            db.execute("PRAGMA query_only=ON")
            with self._readers_lock:
                self._readers.append(db)
        return db

    def close(self) -> None:
        with self._readers_lock:
            for db in self._readers:
                db.close()
            self._readers.clear()
        with self._write_lock:
            self._db.close()
        self.feed.close()

    def _prepare(self) -> None:
        row = None
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            pass  # a new database
        if row is not None and int(row[0]) != SCHEMA_VERSION:
            self._drop_all()  # an older layout: the outputs are the truth, read them again
        self._db.executescript(_SCHEMA + _INDEXES + _OWNED_SCHEMA)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _drop_all(self) -> None:
        """Drop what was read from the outputs; the workbench's own tables stay."""
        tables = [r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if not r[0].startswith(OWNED_PREFIX)]
        for name in tables:
            self._db.execute(f'DROP TABLE IF EXISTS "{name}"')

    # ---- keeping up ----

    def rebuild(self) -> dict[str, int]:
        """Forget everything and read every output again from the start."""
        with self._write_lock:
            self._drop_all()
            self._db.executescript(_SCHEMA + _INDEXES)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return self.sync()

    def sync(self) -> dict[str, int]:
        """Read what is new in every source; returns the records added per kind."""
        added: dict[str, int] = {kind: 0 for kind in (*OUTPUT_KINDS, GOVERNANCE)}
        with self._write_lock:
            cursors = {r["source"]: Cursor(r["position"], r["head_len"], r["head_hash"], r["tail_hash"])
                       for r in self._db.execute("SELECT * FROM cursors")}
            bulk = not cursors  # a first load: build the indexes once, at the end
            if bulk:
                self._drop_indexes()
            try:
                for batch in self.feed.batches(cursors):
                    added[batch.kind] += self._apply(batch)
            finally:
                if bulk:
                    self._db.executescript(_INDEXES)
                    self._db.execute("ANALYZE")  # lets the planner pick the narrowest index per filter
        return added

    def _drop_indexes(self) -> None:
        for name in [r[0] for r in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                "AND tbl_name NOT LIKE 'wb\\_%' ESCAPE '\\' AND name != 'governance_one_verdict'")]:
            self._db.execute(f'DROP INDEX IF EXISTS "{name}"')

    def _apply(self, batch: Batch) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch.restart:
                self._forget(batch)
            n = self._insert(batch.kind, batch.lines, batch.source) if batch.lines else 0
            db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?, ?, ?)",
                       (batch.source, batch.kind, batch.position, batch.head_len, batch.head_hash, batch.tail_hash))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n

    def _forget(self, batch: Batch) -> None:
        """A source started over (a new run): drop what was read from it."""
        log.info("%s started over: reading it again", batch.source)
        if batch.kind == GOVERNANCE:
            self._db.execute("DELETE FROM governance WHERE origin = ?", (batch.source,))
        else:
            for table in _TABLES_OF_KIND[batch.kind]:
                self._db.execute(f"DELETE FROM {table}")
        self._db.execute("DELETE FROM cursors WHERE source = ?", (batch.source,))

    def _insert(self, kind: str, lines: list[bytes], origin: str) -> int:
        if kind == GOVERNANCE:
            return self._insert_governance(lines, origin)
        decoder = _decoders[kind]
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(decoder.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                self.problems += 1
                log.warning("%s: skipped a line that is not a %s record: %s", origin, kind, err)
        if not records:
            return 0
        getattr(self, f"_insert_{kind}")(records)
        return len(records)

    def _insert_violations(self, records: list[Violation]) -> None:
        db = self._db
        fresh = {v.violation_id: v for v in records}  # the same id twice: one violation (ids are deterministic)
        known = {r[0] for r in db.execute("SELECT violation_id FROM violations WHERE violation_id IN "
                                          "(SELECT value FROM json_each(?))", (_text(list(fresh)),))}
        records = [v for vid, v in fresh.items() if vid not in known]
        if not records:
            return
        first = db.execute("SELECT coalesce(max(id), 0) + 1 FROM violations").fetchone()[0]
        db.executemany("INSERT INTO violations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [_violation_row(first + i, v) for i, v in enumerate(records)])
        db.executemany("INSERT INTO violation_text VALUES (?, ?, ?, ?, ?)",
                       [_violation_text_row(first + i, v) for i, v in enumerate(records)])
        db.executemany("INSERT OR IGNORE INTO violation_refs VALUES (?, ?)",
                       [(ref, first + i) for i, v in enumerate(records) for ref in evidence_refs(v.evidence)])
        values = {(kind, getattr(v, kind)) for v in records for kind in FACETS}
        db.executemany("INSERT OR IGNORE INTO facets VALUES (?, ?)", sorted(values))
        self._advance_clock(max(v.detected_at for v in records))

    def _insert_actions(self, records: list[Action]) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO actions (action_id, actor, action, active_points, violation_ids, ts, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(a.action_id, a.actor, a.action, a.active_points, _text(a.violation_ids), a.ts, a.reason)
             for a in records])
        self._advance_clock(max(a.ts for a in records))

    def _insert_review_queue(self, records: list[ReviewEntry]) -> None:
        rows = [(r.actor, r.score, r.model, _text(r.features), r.ts) for r in records]
        self._db.executemany("INSERT INTO review (actor, score, model, features, ts) VALUES (?, ?, ?, ?, ?)", rows)
        # the queue shows each actor once, at its highest score
        self._db.executemany(
            "INSERT INTO queue VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT (actor) DO UPDATE SET "
            "entries = entries + 1, last_ts = max(last_ts, excluded.last_ts), "
            "model = CASE WHEN excluded.score > score THEN excluded.model ELSE model END, "
            "features = CASE WHEN excluded.score > score THEN excluded.features ELSE features END, "
            "ts = CASE WHEN excluded.score > score THEN excluded.ts ELSE ts END, "
            "score = max(score, excluded.score)",
            [(*row, row[4]) for row in rows])
        self._advance_clock(max(r.ts for r in records))

    def _insert_standing(self, records: list[Standing]) -> None:
        db = self._db
        seq0 = db.execute("SELECT coalesce(max(id), 0) FROM standing").fetchone()[0]
        rows = [(s.actor, s.active_points, s.level, s.health, _text(s.restrictions), s.ts, _text(s.under_appeal),
                 _text({"credits": s.credits, "programs": s.programs, "program_gaps": s.program_gaps}))
                for s in records]
        db.executemany("INSERT INTO standing (actor, active_points, level, health, restrictions, ts, under_appeal, "
                       "rewards) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        # the standing now: the newest by event time (the file is in arrival order, not ts order)
        db.executemany(
            "INSERT INTO standing_now (actor, active_points, level, health, restrictions, ts, under_appeal, rewards, "
            "seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (actor) DO UPDATE SET "
            "active_points = excluded.active_points, level = excluded.level, health = excluded.health, "
            "restrictions = excluded.restrictions, ts = excluded.ts, under_appeal = excluded.under_appeal, "
            "rewards = excluded.rewards, seq = excluded.seq WHERE excluded.ts >= standing_now.ts",
            [(*row, seq0 + i + 1) for i, row in enumerate(rows)])
        self._advance_clock(max(s.ts for s in records))

    def _insert_incentives(self, records: list[Incentive]) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO incentives (incentive_id, actor, program, change, reason, ts, violation_id, "
            "appeal_id, shadow) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # ids are deterministic: a replay adds none
            [(r.incentive_id, r.actor, r.program, r.change, r.reason, r.ts, r.violation_id, r.appeal_id,
              int(r.shadow)) for r in records])
        self._advance_clock(max(r.ts for r in records))

    def _insert_dead_letter(self, records: list[DeadLetter]) -> None:
        self._db.executemany(
            "INSERT INTO dead_letter (raw, error, source, ts, reason, actor, appeal_id, violation_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(d.raw, d.error, d.source, d.ts, d.reason, *_dead_letter_refs(d.raw)) for d in records])

    def _insert_governance(self, lines: list[bytes], origin: str) -> int:
        rows = []
        for line in lines:
            if not any(t in line for t in GOVERNANCE_TYPES):
                continue  # a governance-in file may be a whole events file: only these matter
            try:
                event = decode(line)
            except InvalidEvent:
                self.problems += 1
                continue
            if isinstance(event, GOVERNANCE_EVENTS):
                rows.append(governance_row(event, origin))
        if rows:
            # a second verdict on one violation is not kept (the job dead-letters it, and the page shows that)
            self._db.executemany(INSERT_GOVERNANCE.replace("INSERT", "INSERT OR IGNORE", 1), rows)
            self._advance_clock(max(r[2] for r in rows))
        return len(rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The write connection inside one immediate transaction (serialises writers, also across processes)."""
        with self._write_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        return self._reader()

    def record_governance(self, db: sqlite3.Connection, event: Any, origin: str) -> None:
        """Note a governance event the workbench publishes, inside its transaction (`transaction()`).

        Raises `sqlite3.IntegrityError` when the event is a second verdict on one violation. The feed
        brings the event again later: ignored then.
        """
        db.execute(INSERT_GOVERNANCE, governance_row(event, origin))
        self._advance_clock(event.ts)

    def _advance_clock(self, ts: int) -> None:
        self._db.execute("INSERT INTO meta VALUES ('clock', ?) ON CONFLICT (key) DO UPDATE SET "
                         "value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))", (str(ts),))

    # ---- reading ----

    def clock(self) -> int | None:
        """The newest event time in the outputs and governance events: the job's clock."""
        row = self._reader().execute("SELECT value FROM meta WHERE key = 'clock'").fetchone()
        return int(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        db = self._reader()
        tables = ("violations", "actions", "review", "standing", "standing_now", "dead_letter", "governance")
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}

    def facets(self) -> dict[str, list[str]]:
        """Distinct values of the violation filters, for the filter form."""
        out: dict[str, list[str]] = {"violation_type": [], "detector": [], "severity": []}
        for r in self._reader().execute("SELECT kind, value FROM facets ORDER BY kind, value"):
            out.setdefault(r[0], []).append(r[1])
        return out

    def queue(self, *, status: str | None = None, assignee: str | None = None, limit: int = 50,
              offset: int = 0) -> list[dict[str, Any]]:
        """The review queue: each actor once, highest score first, with its case (status, assignee)."""
        where, params = _case_filter(status, assignee)
        rows = self._reader().execute(
            "SELECT q.*, s.level, s.health, s.active_points, "
            "(SELECT count(*) FROM violations v WHERE v.actor = q.actor) AS violations, "
            f"{_CASE_STATUS} AS status, c.assignee FROM queue q LEFT JOIN standing_now s ON s.actor = q.actor "
            "LEFT JOIN wb_cases c ON c.key = 'review:' || q.actor" + where
            + " ORDER BY q.score DESC, q.actor LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
        return [_row(r, json_fields=("features",)) for r in rows]

    def queue_size(self, *, status: str | None = None, assignee: str | None = None) -> int:
        where, params = _case_filter(status, assignee)
        return self._reader().execute("SELECT count(*) FROM queue q LEFT JOIN wb_cases c ON c.key = 'review:' "
                                      "|| q.actor" + where, params).fetchone()[0]

    def queue_entry(self, actor: str) -> dict[str, Any] | None:
        r = self._reader().execute("SELECT * FROM queue WHERE actor = ?", (actor,)).fetchone()
        return _row(r, json_fields=("features",)) if r else None

    def queue_ages(self, clock: int | None) -> dict[str, int]:
        """Cases still to review on the queue, by how long ago (job clock) the model raised them."""
        buckets = {"< 1 h": 3_600_000, "1-6 h": 6 * 3_600_000, "6-24 h": 86_400_000, "1-3 days": 3 * 86_400_000}
        out = {name: 0 for name in [*buckets, "> 3 days"]}
        if clock is None:
            return out
        where, params = _case_filter("active", None)
        for (ts,) in self._reader().execute(
                "SELECT q.ts FROM queue q LEFT JOIN wb_cases c ON c.key = 'review:' || q.actor" + where, params):
            age = clock - ts
            out[next((name for name, limit in buckets.items() if age < limit), "> 3 days")] += 1
        return out

    def queue_status_counts(self) -> dict[str, int]:
        rows = self._reader().execute(f"SELECT {_CASE_STATUS} AS status, count(*) FROM queue q "
                                      "LEFT JOIN wb_cases c ON c.key = 'review:' || q.actor GROUP BY 1")
        return {status: 0 for status in ("open", "in_review", "decided", "escalated")} | dict(rows.fetchall())

    def violations(self, *, actor: str | None = None, violation_type: str | None = None,
                   detector: str | None = None, severity: str | None = None, enforced: bool | None = None,
                   since: int | None = None, until: int | None = None, before: tuple[int, int] | None = None,
                   ref: str | None = None, actor_prefix: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Violations, newest first, filtered; `before` = (detected_at, id) of the last row of the previous page."""
        where, params = _violation_filter(actor, violation_type, detector, severity, enforced, since, until, ref,
                                          actor_prefix)
        if before is not None:
            where.append("(detected_at, id) < (?, ?)")
            params += list(before)
        sql = ("SELECT v.*, t.explanation, t.lesson_title, t.lesson_url, t.evidence FROM (SELECT * FROM violations"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY detected_at DESC, id DESC LIMIT ?) v JOIN violation_text t ON t.id = v.id "
               "ORDER BY v.detected_at DESC, v.id DESC")
        rows = self._reader().execute(sql, [*params, limit]).fetchall()
        return [_row(r, json_fields=("evidence",)) for r in rows]

    def count_violations(self, *, actor: str | None = None, violation_type: str | None = None,
                         detector: str | None = None, severity: str | None = None, enforced: bool | None = None,
                         since: int | None = None, until: int | None = None, ref: str | None = None,
                         actor_prefix: str | None = None, cap: int = COUNT_CAP) -> int:
        """How many violations match, counted up to `cap` (a page says "10,000+" beyond)."""
        where, params = _violation_filter(actor, violation_type, detector, severity, enforced, since, until, ref,
                                          actor_prefix)
        sql = ("SELECT count(*) FROM (SELECT 1 FROM violations" + (" WHERE " + " AND ".join(where) if where else "")
               + " LIMIT ?)")
        return self._reader().execute(sql, [*params, cap + 1]).fetchone()[0]

    def violation(self, violation_id: str) -> dict[str, Any] | None:
        r = self._reader().execute("SELECT v.*, t.explanation, t.lesson_title, t.lesson_url, t.evidence "
                                   "FROM violations v JOIN violation_text t ON t.id = v.id "
                                   "WHERE v.violation_id = ?", (violation_id,)).fetchone()
        return _row(r, json_fields=("evidence",)) if r else None

    def standing_now(self, actor: str) -> dict[str, Any] | None:
        r = self._reader().execute("SELECT * FROM standing_now WHERE actor = ?", (actor,)).fetchone()
        return _row(r, json_fields=("restrictions", "under_appeal", "rewards")) if r else None

    def incentives(self, actor: str, limit: int = PAGE_LIMIT) -> list[dict[str, Any]]:
        """The actor's incentive changes, newest first (shadow programs left out: they are not in force)."""
        rows = self._reader().execute("SELECT * FROM incentives WHERE actor = ? AND shadow = 0 "
                                      "ORDER BY ts DESC, id DESC LIMIT ?", (actor, limit)).fetchall()
        return [_row(r) for r in rows]

    def standing_history(self, actor: str, limit: int = PAGE_LIMIT) -> list[dict[str, Any]]:
        rows = self._reader().execute("SELECT * FROM standing WHERE actor = ? ORDER BY ts, id LIMIT ?",
                                      (actor, limit)).fetchall()
        return [_row(r, json_fields=("restrictions", "under_appeal", "rewards")) for r in rows]

    def actions(self, actor: str, limit: int = PAGE_LIMIT) -> list[dict[str, Any]]:
        rows = self._reader().execute("SELECT * FROM actions WHERE actor = ? ORDER BY ts DESC, id DESC LIMIT ?",
                                      (actor, limit)).fetchall()
        return [_row(r, json_fields=("violation_ids",)) for r in rows]

    def review_entries(self, actor: str, limit: int = PAGE_LIMIT) -> list[dict[str, Any]]:
        rows = self._reader().execute("SELECT * FROM review WHERE actor = ? ORDER BY ts DESC, id DESC LIMIT ?",
                                      (actor, limit)).fetchall()
        return [_row(r, json_fields=("features",)) for r in rows]

    def dead_letters(self, actor: str, limit: int = PAGE_LIMIT) -> list[dict[str, Any]]:
        rows = self._reader().execute("SELECT * FROM dead_letter WHERE actor = ? ORDER BY ts DESC, id DESC LIMIT ?",
                                      (actor, limit)).fetchall()
        return [_row(r) for r in rows]

    def governance(self, actor: str) -> list[dict[str, Any]]:
        rows = self._reader().execute("SELECT * FROM governance WHERE actor = ? ORDER BY ts, event_id",
                                      (actor,)).fetchall()
        return [_row(r) for r in rows]

    def appeals(self, actor: str) -> dict[str, dict[str, Any]]:
        """violation_id -> its appeal as the workbench knows it (filing, decision, what the job made of it)."""
        out: dict[str, dict[str, Any]] = {}
        for g in self.governance(actor):
            if g["type"] == "appeal.filed" and g["violation_id"] not in out:
                out[g["violation_id"]] = {"appeal_id": g["appeal_id"], "violation_id": g["violation_id"],
                                          "actor": actor, "reason": g["reason"], "filed_at": g["ts"],
                                          "decision": None, "reviewer_id": None, "decided_at": None,
                                          "rejected": None, "decision_reason": None, "unappealed": False}
            elif g["type"] in VERDICT_TYPES:
                appeal = out.setdefault(g["violation_id"], {
                    "appeal_id": g["appeal_id"], "violation_id": g["violation_id"], "actor": actor, "reason": None,
                    "filed_at": None, "decision": None, "reviewer_id": None, "decided_at": None, "rejected": None,
                    "decision_reason": None, "unappealed": False})
                if appeal["decision"] is None:
                    appeal.update(decision=g["decision"] or "overturned", reviewer_id=g["reviewer_id"],
                                  decided_at=g["ts"], decision_reason=g["reason"],
                                  unappealed=g["type"] == "violation.overturned")
        for d in self.dead_letters(actor):
            if d["violation_id"] in out and d["appeal_id"] == out[d["violation_id"]]["appeal_id"]:
                out[d["violation_id"]]["rejected"] = d["error"]
        return out

    def appeal_list(self, *, state: str = "waiting", violation_type: str | None = None,
                    decision: str | None = None, reviewer: str | None = None, actor: str | None = None,
                    status: str | None = None, assignee: str | None = None, limit: int = PAGE_LIMIT,
                    offset: int = 0) -> list[dict[str, Any]]:
        """Appeals with their violation, verdict and case: `waiting` oldest first, `decided` newest first."""
        where, params = ["f.type = 'appeal.filed'"], []
        if state == "waiting":
            where.append("d.event_id IS NULL")
        elif state == "decided":
            where.append("d.event_id IS NOT NULL")
        for column, value in (("v.violation_type", violation_type), ("d.decision", decision),
                              ("d.reviewer_id", reviewer), ("c.assignee", assignee)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if actor:  # a prefix
            where.append("f.actor >= ? AND f.actor < ?")
            params += [actor, actor + PREFIX_END]
        if status:
            where.append(f"{_APPEAL_STATUS} = ?")
            params.append(status)
        order = "d.ts DESC, d.event_id" if state == "decided" else "f.ts, f.event_id"
        rows = self._reader().execute(
            "SELECT f.appeal_id, f.violation_id, f.actor, f.reason, f.ts AS filed_at, v.violation_type, v.severity, "
            "v.points, v.enforced, v.detector, d.decision, d.reviewer_id, d.reason AS decision_reason, "
            f"d.ts AS decided_at, {_APPEAL_STATUS} AS status, c.assignee FROM governance f "
            "LEFT JOIN violations v ON v.violation_id = f.violation_id "
            "LEFT JOIN governance d ON d.violation_id = f.violation_id AND d.type IN "
            f"{VERDICT_TYPES!r} LEFT JOIN wb_cases c ON c.key = 'appeal:' || f.appeal_id "
            f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
        return [_row(r) for r in rows]

    def open_appeals(self, limit: int = PAGE_LIMIT) -> list[dict[str, Any]]:
        """Appeals filed and not yet decided, oldest first: the reviewers' work list."""
        return self.appeal_list(state="waiting", limit=limit)

    def count_waiting_appeals(self) -> int:
        return self._reader().execute(
            "SELECT count(*) FROM governance f WHERE f.type = 'appeal.filed' AND NOT EXISTS (SELECT 1 FROM "
            f"governance d WHERE d.violation_id = f.violation_id AND d.type IN {VERDICT_TYPES!r})").fetchone()[0]

    def appeal(self, appeal_id: str) -> dict[str, Any] | None:
        r = self._reader().execute("SELECT * FROM governance WHERE appeal_id = ? AND type = 'appeal.filed'",
                                   (appeal_id,)).fetchone()
        return _row(r) if r else None

    # ---- search ----

    def search(self, text: str, limit: int = 20) -> dict[str, list[dict[str, Any]]]:
        """Actors by prefix (with or without `seller:`/`creator:`), violations, appeals, listings and LIVEs."""
        db = self._reader()
        prefixes = [text] if ":" in text else [text, f"seller:{text}", f"creator:{text}"]
        actors: list[str] = []
        for p in prefixes:
            actors += [r[0] for r in db.execute(
                "SELECT actor FROM standing_now WHERE actor >= ?1 AND actor < ?2 UNION "
                "SELECT actor FROM queue WHERE actor >= ?1 AND actor < ?2 UNION "
                "SELECT DISTINCT actor FROM violations WHERE actor >= ?1 AND actor < ?2 ORDER BY 1 LIMIT ?3",
                (p, p + PREFIX_END, limit))]
        violations = db.execute(
            "SELECT violation_id, actor, violation_type, detected_at FROM violations WHERE violation_id >= ? AND "
            "violation_id < ? ORDER BY violation_id LIMIT ?", (text, text + PREFIX_END, limit)).fetchall()
        appeals = db.execute(
            "SELECT appeal_id, violation_id, actor, ts FROM governance WHERE appeal_id >= ? AND appeal_id < ? "
            "AND type = 'appeal.filed' ORDER BY appeal_id LIMIT ?", (text, text + PREFIX_END, limit)).fetchall()
        refs = db.execute(
            "SELECT ref, count(*) AS violations FROM violation_refs WHERE ref >= ? AND ref < ? GROUP BY ref "
            "ORDER BY ref LIMIT ?", (text, text + PREFIX_END, limit)).fetchall()
        return {"actors": [{"actor": a} for a in sorted(set(actors))[:limit]],
                "violations": [_row(r) for r in violations], "appeals": [_row(r) for r in appeals],
                "refs": [_row(r) for r in refs]}

    # ---- what the charts show ----

    def violations_per_day(self, days: int = 30) -> list[tuple[int, str, int]]:
        """(day start ms, violation type, count) over the last `days` days of the job's clock."""
        clock = self.clock() or 0
        since = (clock // 86_400_000 - days + 1) * 86_400_000
        return self._reader().execute(
            "SELECT detected_at / 86400000 * 86400000, violation_type, count(*) FROM violations "
            "WHERE detected_at >= ? GROUP BY 1, 2 ORDER BY 1, 2", (since,)).fetchall()

    def rates_per_detector(self) -> list[dict[str, Any]]:
        """Per detector: violations, appealed, verdicts and overturns (appealed or not)."""
        db = self._reader()
        totals = {r[0]: r[1] for r in db.execute("SELECT detector, count(*) FROM violations GROUP BY detector")}
        rows = db.execute(
            "SELECT v.detector, sum(g.type = 'appeal.filed'), sum(g.type IN "
            f"{VERDICT_TYPES!r}), sum(coalesce(g.decision, 'overturned') = 'overturned' AND g.type IN "
            f"{VERDICT_TYPES!r}) FROM governance g JOIN violations v ON v.violation_id = g.violation_id "
            "WHERE g.type != 'education.completed' GROUP BY v.detector").fetchall()
        feedback = {r[0]: r[1:] for r in rows}
        out = []
        for detector, n in sorted(totals.items()):
            appealed, decided, overturned = feedback.get(detector, (0, 0, 0))
            out.append({"detector": detector, "violations": n, "appealed": appealed or 0, "decided": decided or 0,
                        "overturned": overturned or 0})
        return out

    def lessons_done(self, actor: str) -> dict[str, int]:
        """module_id -> when the actor last completed it."""
        rows = self._reader().execute(
            "SELECT module_id, max(ts) FROM governance WHERE actor = ? AND type = 'education.completed' "
            "GROUP BY module_id", (actor,)).fetchall()
        return {r[0]: r[1] for r in rows}

    def known_actor(self, actor: str) -> bool:
        db = self._reader()
        return any(db.execute(f"SELECT 1 FROM {t} WHERE actor = ? LIMIT 1", (actor,)).fetchone()
                   for t in ("standing_now", "violations", "queue", "actions"))


INSERT_GOVERNANCE = "INSERT INTO governance VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def governance_row(event: Any, origin: str) -> tuple:
    return (event.event_id, event.type, event.ts, event.actor, getattr(event, "appeal_id", None),
            getattr(event, "violation_id", None), getattr(event, "decision", None),
            getattr(event, "reviewer_id", None), getattr(event, "reason", None), getattr(event, "module_id", None),
            origin, getattr(event, "model", None), getattr(event, "entry_ts", None))


REF_KEYS = ("listing_id", "live_id")  # evidence keys whose value is one listing or LIVE id
REF_LIST_KEYS = ("listing_ids",)


def evidence_refs(evidence: dict[str, Any]) -> list[str]:
    """The listing and LIVE ids a violation's evidence names.

    >>> evidence_refs({"listing_id": "L1", "listing_ids": ["L1", "L2"], "live_id": "V3", "count": 4})
    ['L1', 'L2', 'V3']
    """
    refs = [evidence[k] for k in REF_KEYS if isinstance(evidence.get(k), str)]
    for key in REF_LIST_KEYS:
        if isinstance(evidence.get(key), list):
            refs += [x for x in evidence[key] if isinstance(x, str)]
    return sorted(set(refs))


_CASE_STATUS = "coalesce(c.status, 'open')"
PREFIX_END = "\U0010ffff"  # after every character: `x >= p AND x < p || PREFIX_END` is "starts with p"


def _case_filter(status: str | None, assignee: str | None) -> tuple[str, list[Any]]:
    """WHERE clause over a joined case `c`: status ("active" = open or in review) and assignee ("-" = nobody)."""
    where, params = [], []
    if status == "active":
        where.append(f"{_CASE_STATUS} IN ('open', 'in_review')")
    elif status:
        where.append(f"{_CASE_STATUS} = ?")
        params.append(status)
    if assignee == "-":
        where.append("c.assignee IS NULL")
    elif assignee:
        where.append("c.assignee = ?")
        params.append(assignee)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def _violation_filter(actor, violation_type, detector, severity, enforced, since, until, ref=None,
                      actor_prefix=None) -> tuple[list[str], list]:
    """`actor_prefix`: actors whose reference starts with it; `ref`: a listing or LIVE id the evidence names."""
    where: list[str] = []
    params: list[Any] = []
    if actor_prefix:
        where.append("actor >= ? AND actor < ?")
        params += [actor_prefix, actor_prefix + PREFIX_END]
    if ref:
        where.append("id IN (SELECT id FROM violation_refs WHERE ref = ?)")
        params.append(ref)
    for column, value in (("actor", actor), ("violation_type", violation_type), ("detector", detector),
                          ("severity", severity)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if enforced is not None:
        where.append("enforced = ?")
        params.append(int(enforced))
    if since is not None:
        where.append("detected_at >= ?")
        params.append(since)
    if until is not None:
        where.append("detected_at < ?")
        params.append(until)
    return where, params


_APPEAL_STATUS = f"CASE WHEN d.event_id IS NOT NULL THEN 'decided' ELSE {_CASE_STATUS} END"


def _row(r: sqlite3.Row, json_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    out = dict(r)
    for name in json_fields:
        if name in out and isinstance(out[name], str):
            out[name] = json.loads(out[name])
    if "enforced" in out and out["enforced"] is not None:
        out["enforced"] = bool(out["enforced"])
    return out


# ---- following the job ------------------------------------------------------------------------


class Follower:
    """Calls `store.sync()` every `interval` seconds in a background thread until stopped."""

    def __init__(self, store: Store, interval: float = 1.0) -> None:
        self.store, self.interval = store, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shopguard-workbench-follow", daemon=True)
        self.last_error: str | None = None
        self.synced_at: float | None = None

    def start(self) -> "Follower":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            try:
                self.store.sync()
                self.last_error, self.synced_at = None, time.time()
            except Exception as err:  # keep following: the next round may succeed (a file mid-rotation)
                self.last_error = f"{type(err).__name__}: {err}"
                log.warning("store sync failed: %s", self.last_error)
            if self._stop.wait(self.interval):
                return


def default_db_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / "workbench.sqlite"


def file_size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
