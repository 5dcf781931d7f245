"""Ban evasion (linked_accounts): the steps that keep the dataflow a DAG.

Ban evasion needs suspensions, which the ledger decides downstream of every
detector. Bytewax flows are DAGs, so instead of feeding the ledger's output
back, the ledger runs twice:

1. `ledger_suspensions` applies the same violations and governance events
   with the same `LedgerShard` as the final ledger, but passes on only
   suspension and reinstatement actions (nothing it does is written or
   counted).
2. `fan_out_identifiers` (keyed by actor) remembers which devices and payout
   hashes each actor used, and turns a suspension into one note per
   identifier of the suspended actor.
3. `link_accounts` (keyed by identifier) issues a linked_accounts violation to
   another actor that uses a suspended actor's identifier at or after the
   suspension.
4. Those violations go to the final `ledger`, the only one whose actions and
   standings are written. It also writes the violations themselves: a device
   and a payout hash can both link the same pair, as copies of one violation
   id from two identifier shards, and the ledger's event-time order keeps the
   earliest on any number of workers (`ledger.Relayed`).

Links are one level deep: an account suspended only for being linked does not
link further accounts. Notes reach these steps late by design (at the end of
a replay), so they apply no lateness cut; their state expires after
`memory_days` of event time.
"""

from __future__ import annotations

import pickle
from typing import Any, NamedTuple

import bytewax.operators as op

from detectors.security import IdentifierFanOut, IdentifierNote, LinkedAccounts, LinkedAccountsConfig
from pipeline.contract.events import AccountLogin, PayoutChanged
from pipeline.enforce.policy import Policy, violation_from
from pipeline.enforce.ledger import Relayed
from pipeline.contract.records import Action
from pipeline.contract.routing import shard_of

ACCOUNT_EVENTS = (AccountLogin, PayoutChanged)
SUSPENSION_CHANGES = frozenset({"suspension", "reinstatement"})


class IdentityUse(NamedTuple):
    """An account event on its way to `fan_out_identifiers` (besides the detectors)."""

    event: AccountLogin | PayoutChanged


def fan_out_key(actor: str, shards: int) -> str:
    return f"ids/{shard_of(actor, shards)}"


def link_key(identifier: str, shards: int) -> str:
    return f"links/{shard_of(identifier, shards)}"


class _Expiring:
    """Per-entity states of one shard, dropped once their `expires_at` passes the shard's event time."""

    SWEEP_EVERY_MS = 3_600_000

    def __init__(self, expires_at, resume: bytes | None) -> None:
        self.expires_at = expires_at
        self.states: dict[str, Any]
        self.states, self.watermark, self.swept_at = pickle.loads(resume) if resume else ({}, -(2**62), -(2**62))

    def advance(self, ts: int) -> None:
        if ts > self.watermark:
            self.watermark = ts
        if self.watermark - self.swept_at >= self.SWEEP_EVERY_MS:
            self.swept_at = self.watermark
            # In place: callers may hold `states` across calls.
            for key in [k for k, s in self.states.items() if self.expires_at(s) < self.watermark]:
                del self.states[key]

    def snapshot(self) -> bytes:
        return pickle.dumps((self.states, self.watermark, self.swept_at), protocol=pickle.HIGHEST_PROTOCOL)


def is_suspension_change(record: Any) -> bool:
    """What `ledger_suspensions` passes on: suspensions and reinstatements."""
    return isinstance(record, Action) and record.action in SUSPENSION_CHANGES


class FanOutLogic(op.StatefulBatchLogic):
    """`fan_out_identifiers`: account events and suspension changes in, notes per identifier out."""

    def __init__(self, config: LinkedAccountsConfig, shards: int, resume: bytes | None) -> None:
        self.fan = IdentifierFanOut(config)
        self.shards = shards
        self.actors = _Expiring(self.fan.expires_at, resume)

    def on_batch(self, items: list[Any]):
        notes: list[IdentifierNote] = []
        for item in items:
            if isinstance(item, IdentityUse):
                actor, ts = item.event.actor, item.event.ts
                state, new = self.fan.on_account_event(self.actors.states.get(actor), item.event)
            elif item.action == "suspension":
                actor, ts = item.actor, item.ts
                state, new = self.fan.on_suspension(self.actors.states.get(actor), actor, ts)
            else:
                actor, ts = item.actor, item.ts
                state, new = self.fan.on_reinstatement(self.actors.states.get(actor), actor, ts)
            if state is not None:
                self.actors.states[actor] = state
            self.actors.advance(ts)
            notes.extend(new)
        return [(link_key(n.identifier, self.shards), n) for n in notes], self.RETAIN

    def snapshot(self) -> bytes:
        return self.actors.snapshot()


class LinkLogic(op.StatefulBatchLogic):
    """`link_accounts`: notes per identifier in, linked_accounts violations out."""

    def __init__(self, config: LinkedAccountsConfig, policy: Policy, resume: bytes | None) -> None:
        self.links = LinkedAccounts(config)
        self.policy = policy
        self.identifiers = _Expiring(self.links.expires_at, resume)

    def on_batch(self, notes: list[IdentifierNote]):
        violations: list[Relayed] = []
        states = self.identifiers.states
        for note in notes:
            state, signals = self.links.on_event(states.get(note.identifier), note)
            if state is None:
                states.pop(note.identifier, None)
            else:
                states[note.identifier] = state
            self.identifiers.advance(note.ts)
            # The ledger writes these (one copy per id, see ledger.Relayed).
            violations.extend(Relayed(violation_from(signal, self.policy)) for signal in signals)
        return violations, self.RETAIN

    def snapshot(self) -> bytes:
        return self.identifiers.snapshot()
