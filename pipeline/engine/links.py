"""The ban-evasion steps: `fan_out_identifiers` (keyed by actor) and `link_accounts` (keyed by identifier).

Why two steps and a second ledger pass: `pipeline/enforce/links.py`. Both
keep per-entity state that expires in event time (`ExpiringStates`), swept
hourly by their `EventClock`; notes reach them late by design, so they apply
no lateness cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.security import IdentifierFanOut, IdentifierNote, LinkedAccounts, LinkedAccountsConfig
from pipeline.enforce.ledger import Relayed
from pipeline.enforce.links import IdentityUse, link_key
from pipeline.enforce.policy import Policy, violation_from
from pipeline.engine.shards import NEVER, EventClock, ExpiringStates, PlainShard

HOUR_MS = 3_600_000


@dataclass(slots=True)
class ExpiringShardState:
    """States of one link or fan-out shard and its clock; pickled into recovery snapshots."""

    states: ExpiringStates = field(default_factory=ExpiringStates)
    clock: EventClock = field(default_factory=lambda: EventClock(0, allowed_lateness_ms=-NEVER,
                                                                  sweep_every_ms=HOUR_MS))


class _ExpiringShard(PlainShard):
    """A shard whose state expires in event time (each state says when)."""

    def __init__(self, expires_at, resume: ExpiringShardState | None) -> None:
        self.expires_at = expires_at
        self.state = resume or ExpiringShardState()

    def advance(self, ts: int) -> None:
        clock = self.state.clock
        clock.advance(ts)
        if clock.sweep_due():
            self.state.states.expire(clock.sweep(), self.expires_at)

    def keys_held(self) -> int:
        return len(self.state.states)


class FanOutShard(_ExpiringShard):
    """`fan_out_identifiers`: account events and suspension changes in, `(link key, note)` per identifier out."""

    def __init__(self, config: LinkedAccountsConfig, shards: int, resume: ExpiringShardState | None = None) -> None:
        self.fan = IdentifierFanOut(config)
        self.shards = shards
        super().__init__(self.fan.expires_at, resume)

    def on_batch(self, items: list[Any], now: float) -> list[tuple[str, IdentifierNote]]:
        notes: list[IdentifierNote] = []
        states = self.state.states
        for item in items:
            if isinstance(item, IdentityUse):
                actor, ts = item.event.actor, item.event.ts
                state, new = self.fan.on_account_event(states.states.get(actor), item.event)
            elif item.action == "suspension":
                actor, ts = item.actor, item.ts
                state, new = self.fan.on_suspension(states.states.get(actor), actor, ts)
            else:
                actor, ts = item.actor, item.ts
                state, new = self.fan.on_reinstatement(states.states.get(actor), actor, ts)
            if state is not None:
                states.put(actor, state)
            self.advance(ts)
            notes.extend(new)
        return [(link_key(n.identifier, self.shards), n) for n in notes]


class LinkShard(_ExpiringShard):
    """`link_accounts`: notes per identifier in, linked_accounts violations out (relayed: the ledger writes them)."""

    def __init__(self, config: LinkedAccountsConfig, policy: Policy, resume: ExpiringShardState | None = None) -> None:
        self.links = LinkedAccounts(config)
        self.policy = policy
        super().__init__(self.links.expires_at, resume)

    def on_batch(self, notes: list[IdentifierNote], now: float) -> list[Relayed]:
        violations: list[Relayed] = []
        states = self.state.states
        for note in notes:
            state, signals = self.links.on_event(states.states.get(note.identifier), note)
            states.put(note.identifier, state)
            self.advance(note.ts)
            # The ledger writes these (one copy per id, see ledger.Relayed).
            violations.extend(Relayed(violation_from(signal, self.policy)) for signal in signals)
        return violations
