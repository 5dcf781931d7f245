"""Reviewers' work: cases (claim, assign, status, notes), verdicts published once, and the audit log.

A case is one piece of review work: a review-queue entry (`review:<actor>`)
or an appeal (`appeal:<appeal id>`). Its status is `open` until a reviewer
claims it (`in_review`, with an assignee), then `decided` or `escalated`.
Every change a person makes goes to the audit log (`wb_audit`) in the same
transaction as the change itself.

`Workdesk.publish` hands a governance event to the job and records it, its
case status and its audit line in one store transaction, publishing last:
if the publisher fails, nothing is recorded; if the violation already has a
verdict (the store keeps one per violation), nothing is published and the
caller learns who decided first (`AlreadyDecided`).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from workbench.auth import Identity
from workbench.publish import Publisher, checked
from workbench.store import VERDICT_TYPES, Store

log = logging.getLogger("shopguard.workbench")

STATUSES = ("open", "in_review", "decided", "escalated")
KINDS = ("review", "appeal")
MAX_NOTE_CHARS = 2000


class AlreadyDecided(Exception):
    """A second verdict on one violation: `first` is the verdict that stands."""

    def __init__(self, first: dict[str, Any]) -> None:
        super().__init__(f"already decided by {first['reviewer_id']}")
        self.first = first


class ClaimedByOther(Exception):
    def __init__(self, assignee: str) -> None:
        super().__init__(f"claimed by {assignee}")
        self.assignee = assignee


@dataclass(frozen=True)
class CaseRef:
    kind: str  # "review" or "appeal"
    ref: str  # the actor (review) or the appeal id (appeal)
    actor: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.ref}"


@dataclass(frozen=True)
class Change:
    """A case's new status after a published event, and the audit line that says who did what."""

    case: CaseRef | None
    status: str | None
    action: str
    target: str
    detail: str = ""


class Workdesk:
    def __init__(self, store: Store, publisher: Publisher) -> None:
        self.store, self.publisher = store, publisher

    # ---- the audit log ----

    def audit(self, db: sqlite3.Connection, who: Identity | None, action: str, target: str, detail: str = "") -> None:
        db.execute("INSERT INTO wb_audit (at, who, role, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
                   (time.time(), who.id if who else "-", who.role if who else "-", action, target, detail))

    def note_action(self, who: Identity | None, action: str, target: str, detail: str = "") -> None:
        with self.store.transaction() as db:
            self.audit(db, who, action, target, detail)

    def audit_log(self, *, who: str | None = None, action: str | None = None, before: int | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
        where, params = [], []
        for column, value in (("who", who), ("action", action)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        sql = ("SELECT * FROM wb_audit" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY id DESC LIMIT ?")
        return [dict(r) for r in self.store.read().execute(sql, [*params, limit])]

    def audit_facets(self) -> dict[str, list[str]]:
        db = self.store.read()
        return {column: [r[0] for r in db.execute(f"SELECT DISTINCT {column} FROM wb_audit ORDER BY 1")]
                for column in ("who", "action")}

    # ---- cases ----

    def case(self, key: str) -> dict[str, Any] | None:
        row = self.store.read().execute("SELECT * FROM wb_cases WHERE key = ?", (key,)).fetchone()
        return dict(row) if row else None

    def _set(self, db: sqlite3.Connection, case: CaseRef, status: str, by: Identity, assignee: Any = ...) -> None:
        db.execute("INSERT INTO wb_cases (key, kind, actor, status, assignee, updated_at, updated_by) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET status = excluded.status, "
                   "updated_at = excluded.updated_at, updated_by = excluded.updated_by"
                   + (", assignee = excluded.assignee" if assignee is not ... else ""),
                   (case.key, case.kind, case.actor, status, None if assignee is ... else assignee, time.time(),
                    by.id))

    def claim(self, by: Identity, case: CaseRef, assignee: str, steal: bool = False) -> None:
        """Put the case in review with `assignee` (the claimer, or whom it is assigned to).

        A claim on a case someone else holds is refused (`ClaimedByOther`); an assignment (`steal`) moves it.
        """
        with self.store.transaction() as db:
            row = db.execute("SELECT status, assignee FROM wb_cases WHERE key = ?", (case.key,)).fetchone()
            if row and row["assignee"] and row["assignee"] != assignee and not steal:
                raise ClaimedByOther(row["assignee"])
            status = row["status"] if row and row["status"] in ("decided", "escalated") else "in_review"
            self._set(db, case, status, by, assignee)
            self.audit(db, by, "assigned" if assignee != by.id else "claimed", case.key,
                       f"to {assignee}" if assignee != by.id else "")

    def escalate(self, by: Identity, case: CaseRef, why: str) -> None:
        """Mark a case for a senior reviewer (an appeal's escalation changes nothing in the job)."""
        with self.store.transaction() as db:
            self._set(db, case, "escalated", by)
            self.audit(db, by, "escalated", case.key, why[:200])

    def release(self, by: Identity, case: CaseRef) -> None:
        with self.store.transaction() as db:
            self._set(db, case, "open", by, None)
            self.audit(db, by, "released", case.key)

    def add_note(self, by: Identity, case: CaseRef, text: str) -> None:
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM wb_cases WHERE key = ?", (case.key,)).fetchone() is None:
                self._set(db, case, "open", by)
            db.execute("INSERT INTO wb_notes (case_key, author, text, at) VALUES (?, ?, ?, ?)",
                       (case.key, by.id, text[:MAX_NOTE_CHARS], time.time()))
            self.audit(db, by, "noted", case.key, text[:200])

    def notes(self, key: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.store.read().execute(
            "SELECT * FROM wb_notes WHERE case_key = ? ORDER BY at, id", (key,))]

    def notes_of_actor(self, actor: str) -> dict[str, list[dict[str, Any]]]:
        """Every case note about an actor, by case key."""
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.store.read().execute(
                "SELECT n.* FROM wb_notes n JOIN wb_cases c ON c.key = n.case_key WHERE c.actor = ? "
                "ORDER BY n.at, n.id", (actor,)):
            out.setdefault(r["case_key"], []).append(dict(r))
        return out

    def cases_of_actor(self, actor: str) -> dict[str, dict[str, Any]]:
        return {r["key"]: dict(r) for r in self.store.read().execute("SELECT * FROM wb_cases WHERE actor = ?",
                                                                     (actor,))}

    def reviewers(self) -> list[str]:
        return [r[0] for r in self.store.read().execute(
            "SELECT DISTINCT who FROM wb_tokens WHERE role = 'reviewer' ORDER BY who")]

    # ---- publishing ----

    def publish(self, by: Identity, event: dict[str, Any], change: Change) -> None:
        """Record `event`, its case status and audit line, then hand it to the job; all or nothing."""
        decoded = checked(event)
        with self.store.transaction() as db:
            try:
                self.store.record_governance(db, decoded, self.publisher.name)
            except sqlite3.IntegrityError:
                raise AlreadyDecided(self.first_verdict(db, decoded.violation_id)) from None
            if change.case is not None and change.status is not None:
                self._set(db, change.case, change.status, by)
            self.audit(db, by, change.action, change.target, change.detail)
            self.publisher.publish(event)  # last: a failure rolls back everything above
        log.info("published %s on %s by %s", event["type"], change.target, by.id)

    @staticmethod
    def first_verdict(db: sqlite3.Connection, violation_id: str) -> dict[str, Any]:
        row = db.execute("SELECT type, decision, reviewer_id, ts FROM governance WHERE violation_id = ? "
                         f"AND type IN {VERDICT_TYPES!r}", (violation_id,)).fetchone()
        return dict(row) if row else {"type": "?", "decision": "?", "reviewer_id": "someone", "ts": None}
