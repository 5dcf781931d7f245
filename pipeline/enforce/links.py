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

The steps themselves (`pipeline/engine/links.py`) run the pure parts of
`detectors/security.py` (`IdentifierFanOut`, `LinkedAccounts`); this module
holds what the flow needs to route and filter for them.

Links are one level deep: an account suspended only for being linked does not
link further accounts. Notes reach these steps late by design (at the end of
a replay), so they apply no lateness cut; their state expires after
`memory_days` of event time.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pipeline.contract.events import AccountLogin, PayoutChanged
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


def is_suspension_change(record: Any) -> bool:
    """What `ledger_suspensions` passes on: suspensions and reinstatements."""
    return isinstance(record, Action) and record.action in SUSPENSION_CHANGES
