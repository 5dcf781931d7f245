"""Account security: a stolen account, and a banned person's new account.

`AccountTakeover` (keyed by actor) protects the *victim*: a sign-in from a
device the account has never used, from a place it has never used (a new
country, or a new network in its own country), followed shortly by a change of
where payouts go, is how a stolen account is cashed out. An attacker can hide
the country behind a proxy in the victim's own country, not the network. The
violation carries no points; the policy puts a protective payout hold on the
account until its owner confirms the change. An actor's first sign-ins only
teach the detector which devices, networks and countries are theirs. A new
phone at home (a known network), a traveller who signs in abroad and changes
nothing, or a payout change long after any unfamiliar sign-in, stays clean.

Ban evasion (`linked_accounts`) needs to know who is suspended, and that is
decided by the ledger, downstream of the detect steps. So it is not a
detect-step detector but two plain classes the dataflow wires after a
suspensions-only pass of the ledger (the flow stays a DAG):

- `IdentifierFanOut`, keyed by actor, remembers the devices and payout hashes
  each actor used and turns account events and suspensions into
  `IdentifierNote`s keyed by identifier;
- `LinkedAccounts`, keyed by identifier, issues a violation to another actor
  that uses a suspended actor's device or payout hash at or after the
  suspension.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from typing import ClassVar

import msgspec

from detectors.registry import register
from detectors.base import CoolDown, Signal, clamp01, forget_before, network_of, remember_recent
from pipeline.contract.events import AccountLogin, PayoutChanged


class AccountTakeoverConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of `AccountTakeover` (table `[detectors.account_takeover]`).

    Parameters
    ----------
    warmup_logins
        Sign-ins an actor needs before an unfamiliar one counts (the first is
        never suspicious: it is how the detector learns the actor).
    payout_window_seconds
        A payout change at most this long after an unfamiliar sign-in is a takeover.
    max_known_devices, max_known_countries
        Devices (and networks) and countries remembered per actor (least
        recently used go first).
    known_device_days
        A device, network or country unused this long is forgotten (event time);
        also this detector's `idle_eviction_ms`: an actor's state should
        outlive the job-wide idle eviction, owners sign in days apart.
    cooldown_seconds
        One violation per actor within this period.
    """

    warmup_logins: int
    payout_window_seconds: float
    max_known_devices: int
    max_known_countries: int
    known_device_days: float
    cooldown_seconds: float


@dataclass(slots=True)
class _Login:
    ts: int
    device_id: str
    country: str
    ip: str
    network: str
    new_country: bool
    new_network: bool


@dataclass(slots=True)
class ActorAccess:
    """Where one actor signs in from, and what looked unfamiliar lately."""

    actor: str
    logins: int = 0
    devices: dict[str, int] = field(default_factory=dict)  # device -> last sign-in ts, least recent first
    countries: dict[str, int] = field(default_factory=dict)
    networks: dict[str, int] = field(default_factory=dict)  # `network_of(ip)` -> last sign-in ts
    unfamiliar: list[_Login] = field(default_factory=list)  # recent sign-ins from a new device and place
    payouts: list[tuple[int, str]] = field(default_factory=list)  # recent (ts, payout hash), for late sign-ins
    cooldown: CoolDown = field(default_factory=lambda: CoolDown(0))


_RECENT = 4  # unfamiliar sign-ins and payout changes kept per actor


@register
class AccountTakeover:
    """A sign-in from an unknown device and an unknown country or network, then a payout change.

    Examples
    --------
    >>> det = AccountTakeover(AccountTakeoverConfig(warmup_logins=1, payout_window_seconds=3600,
    ...     max_known_devices=20, max_known_countries=10, known_device_days=90, cooldown_seconds=86400))
    >>> def login(minute, device, ip, country="US"):
    ...     return AccountLogin(event_id=f"l{minute}", ts=minute * 60_000, actor="seller:S1", device_id=device,
    ...                         ip=ip, country=country)
    >>> def payout(minute):
    ...     return PayoutChanged(event_id=f"p{minute}", ts=minute * 60_000, actor="seller:S1", payout_hash="po-x")
    >>> events = [login(0, "home-phone", "24.1.0.7"),
    ...     login(60, "new-phone", "24.1.0.9"), payout(70),  # a new phone at home: the owner
    ...     login(200, "d-x", "98.7.6.5"), payout(210)]      # a stranger's device and network, same country
    >>> state, found = None, []
    >>> for e in events:
    ...     state, signals = det.on_event(state, e)
    ...     found += signals
    >>> [(s.detected_at // 60_000, s.evidence["login_network"], s.evidence["login_country_new"]) for s in found]
    [(210, '98.7', False)]
    """

    name: ClassVar[str] = "account_takeover_v1"
    violation_type: ClassVar[str] = "account_takeover"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "account_takeover"
    Config: ClassVar[type] = AccountTakeoverConfig
    idle_eviction_ms: int | None = None  # set from `known_device_days`: known devices matter for months
    event_types: ClassVar[frozenset[type]] = frozenset({AccountLogin, PayoutChanged})

    def __init__(self, config: AccountTakeoverConfig) -> None:
        self.config = config
        self._window_ms = int(config.payout_window_seconds * 1000)
        self._cooldown_ms = int(config.cooldown_seconds * 1000)
        self.idle_eviction_ms = int(config.known_device_days * 86_400_000)

    def entity(self, event) -> str:
        return event.actor

    def on_event(self, state: ActorAccess | None, event) -> tuple[ActorAccess | None, list[Signal]]:
        if state is None:
            state = ActorAccess(actor=event.actor, cooldown=CoolDown(self._cooldown_ms))
        if isinstance(event, AccountLogin):
            return state, self._on_login(state, event)
        return state, self._on_payout(state, event)

    def _on_login(self, state: ActorAccess, event: AccountLogin) -> list[Signal]:
        horizon = event.ts - self.idle_eviction_ms
        for seen in (state.devices, state.countries, state.networks):
            forget_before(seen, horizon)
        if not state.devices:
            state.logins = 0  # back after everything was forgotten: learn the actor again
        network = network_of(event.ip)
        _forget_vouched_for(state, event.device_id, network)
        login = _Login(event.ts, event.device_id, event.country, event.ip, network,
                       new_country=event.country not in state.countries, new_network=network not in state.networks)
        # A new device alone is a new phone; a new place alone is the own phone on the road.
        unfamiliar = (
            state.logins >= self.config.warmup_logins
            and event.device_id not in state.devices
            and (login.new_country or login.new_network)
        )
        state.logins += 1
        remember_recent(state.devices, event.device_id, event.ts, self.config.max_known_devices)
        remember_recent(state.countries, event.country, event.ts, self.config.max_known_countries)
        remember_recent(state.networks, network, event.ts, self.config.max_known_devices)
        if not unfamiliar:
            return []
        _keep_recent(state.unfamiliar, login)
        # The payout change may have arrived before this (late) sign-in.
        later = [(ts, h) for ts, h in state.payouts if 0 <= ts - login.ts <= self._window_ms]
        if not later:
            return []
        ts, payout_hash = min(later)
        return self._issue(state, login, ts, payout_hash)

    def _on_payout(self, state: ActorAccess, event: PayoutChanged) -> list[Signal]:
        _keep_recent(state.payouts, (event.ts, event.payout_hash))
        before = [x for x in state.unfamiliar if 0 <= event.ts - x.ts <= self._window_ms]
        if not before:
            return []
        login = max(before, key=lambda x: x.ts)  # the closest unfamiliar sign-in
        return self._issue(state, login, event.ts, event.payout_hash)

    def _issue(self, state: ActorAccess, login: _Login, payout_ts: int, payout_hash: str) -> list[Signal]:
        detected_at = max(login.ts, payout_ts)
        if not state.cooldown.ready("takeover", detected_at):
            return []
        minutes = round((payout_ts - login.ts) / 60_000, 1)
        known_devices = [d for d in state.devices if d != login.device_id]
        # Stronger the sooner the payout moved, with a new country and network both, and more history
        # behind "unfamiliar".
        confidence = clamp01(
            0.7 + 0.15 * (1 - (payout_ts - login.ts) / self._window_ms)
            + (0.05 if login.new_country and login.new_network else 0.0)
            + min(0.09, 0.03 * (state.logins - 1)))
        where = f"in {login.country}" if login.new_country else "on a network your account has not used"
        return [Signal(
            actor=state.actor,
            violation_type=self.violation_type,
            detector=self.name,
            subject=f"login:{login.device_id}:{login.country}",
            detected_at=detected_at,
            window_start=login.ts,
            window_end=detected_at,
            confidence=min(confidence, 0.99),
            evidence={
                "login_ts": login.ts,
                "login_device_id": login.device_id,
                "login_country": login.country,
                "login_ip": login.ip,
                "login_network": login.network,
                "login_network_new": login.new_network,
                "login_country_new": login.new_country,
                "payout_changed_ts": payout_ts,
                "new_payout_hash": payout_hash,
                "minutes_after_login": minutes,
                "known_devices": known_devices[-5:],
                "known_countries": [c for c in state.countries if c != login.country][-5:],
                "known_networks": [n for n in state.networks if n != login.network][-5:],
                "prior_logins": state.logins - 1,
                "threshold_window_minutes": round(self._window_ms / 60_000, 1),
            },
            explanation=(
                f"For your protection we have paused payouts: your payout details were changed {minutes:g} "
                f"minutes after a sign-in from a new device {where}; if that was not you, "
                f"secure your account, otherwise confirm the change to release payouts."
            ),
        )]


def _forget_vouched_for(state: ActorAccess, device: str, network: str) -> None:
    """Forget unfamiliar sign-ins the owner has since vouched for.

    Their new device signing in from a network the owner already used, or a
    device the owner already used on their new network, is the owner's own
    (an attacker has neither the owner's devices nor their network). "Already
    used" excludes what only unfamiliar sign-ins brought: an attacker hopping
    between proxies vouches for nothing.
    """
    if not state.unfamiliar:
        return
    strange_devices = {u.device_id for u in state.unfamiliar}
    strange_networks = {u.network for u in state.unfamiliar}
    known_device = device in state.devices and device not in strange_devices
    known_network = network in state.networks and network not in strange_networks
    state.unfamiliar = [
        u for u in state.unfamiliar
        if not ((u.device_id == device and known_network) or (u.network == network and known_device))
    ]


def _keep_recent(items: list, item) -> None:
    items.append(item)
    if len(items) > _RECENT:
        del items[0]


# ---- ban evasion -------------------------------------------------------------------


class LinkedAccountsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of `LinkedAccounts` and `IdentifierFanOut` (table `[detectors.linked_accounts]`).

    Parameters
    ----------
    memory_days
        How long who-used-what and suspensions are remembered (event time);
        past that an actor's or identifier's state may be evicted.
    max_identifiers_per_actor
        Devices and payout hashes remembered per actor (least recently used go first).
    max_actors_per_identifier
        An identifier used by more actors than this is a shared or public one
        (a shop's tablet, a payment service's pooled account), not one
        person's: it links nobody.
    cooldown_seconds
        One violation per linked actor and suspended actor within this period.
    """

    memory_days: float
    max_identifiers_per_actor: int
    max_actors_per_identifier: int
    cooldown_seconds: float


@dataclass(frozen=True, slots=True)
class IdentifierNote:
    """A message for the identifier-keyed step.

    `kind` is "use" (`actor` used `identifier` at `ts`), "suspended" (`actor`,
    a user of `identifier`, was suspended at `ts`) or "reinstated" (lifted at `ts`).
    """

    kind: str
    identifier: str
    actor: str
    ts: int


def identifiers_of(event) -> list[str]:
    """The identifiers an account event shows: `device:<id>` or `payout:<hash>`.

    >>> identifiers_of(PayoutChanged(event_id="e", ts=1, actor="creator:C1", payout_hash="po-9"))
    ['payout:po-9']
    """
    if isinstance(event, AccountLogin):
        return [f"device:{event.device_id}"]
    if isinstance(event, PayoutChanged):
        return [f"payout:{event.payout_hash}"]
    return []


@dataclass(slots=True)
class ActorIdentifiers:
    """The devices and payout hashes one actor used, and whether it is suspended."""

    actor: str
    identifiers: dict[str, int] = field(default_factory=dict)  # identifier -> last use ts, least recent first
    suspended_at: int | None = None
    newest: int = -(2**62)


class IdentifierFanOut:
    """Keyed by actor: turns account events and a suspension into notes keyed by identifier.

    Every account event becomes a "use" note for its identifier. A suspension
    (from the ledger) becomes a "suspended" note for each identifier the actor
    used; an identifier a suspended actor is first seen on afterwards gets one
    too, so the order in which the two arrive does not matter.

    Examples
    --------
    >>> fan = IdentifierFanOut(LinkedAccountsConfig(memory_days=90, max_identifiers_per_actor=20,
    ...     max_actors_per_identifier=5, cooldown_seconds=86400))
    >>> login = AccountLogin(event_id="e1", ts=1_000, actor="seller:S1", device_id="d-1", ip="1.1.1.1", country="US")
    >>> state, notes = fan.on_account_event(None, login)
    >>> state, notes = fan.on_suspension(state, "seller:S1", 5_000)
    >>> [(n.kind, n.identifier, n.ts) for n in notes]
    [('suspended', 'device:d-1', 5000)]
    """

    def __init__(self, config: LinkedAccountsConfig) -> None:
        self.config = config
        self._memory_ms = int(config.memory_days * 86_400_000)

    def entity(self, item) -> str:
        return item.actor

    def expires_at(self, state: ActorIdentifiers) -> int:
        """Event time after which this actor's state is worth nothing and may be evicted."""
        return state.newest + self._memory_ms

    def on_account_event(self, state: ActorIdentifiers | None, event) -> tuple[ActorIdentifiers, list[IdentifierNote]]:
        state = state or ActorIdentifiers(actor=event.actor)
        state.newest = max(state.newest, event.ts)
        notes = []
        for identifier in identifiers_of(event):
            known = identifier in state.identifiers
            remember_recent(state.identifiers, identifier, event.ts, self.config.max_identifiers_per_actor)
            notes.append(IdentifierNote("use", identifier, event.actor, event.ts))
            if state.suspended_at is not None and not known:
                notes.append(IdentifierNote("suspended", identifier, event.actor, state.suspended_at))
        return state, notes

    def on_suspension(self, state: ActorIdentifiers | None, actor: str, ts: int,
                      ) -> tuple[ActorIdentifiers, list[IdentifierNote]]:
        state = state or ActorIdentifiers(actor=actor)
        state.newest = max(state.newest, ts)
        state.suspended_at = ts
        return state, [IdentifierNote("suspended", i, actor, ts) for i in state.identifiers]

    def on_reinstatement(self, state: ActorIdentifiers | None, actor: str, ts: int,
                         ) -> tuple[ActorIdentifiers | None, list[IdentifierNote]]:
        if state is None or state.suspended_at is None or state.suspended_at > ts:
            return state, []
        state.suspended_at = None
        return state, [IdentifierNote("reinstated", i, actor, ts) for i in state.identifiers]


_USES_KEPT = 8  # most recent use times kept per actor and identifier


@dataclass(slots=True)
class IdentifierUse:
    """Who used one device or payout account, and which of them are suspended."""

    identifier: str  # "device:<id>" or "payout:<hash>"
    users: dict[str, list[int]] = field(default_factory=dict)  # actor -> recent use times, ascending
    suspended: dict[str, int] = field(default_factory=dict)  # actor -> suspension ts
    crowded: bool = False  # more actors than max_actors_per_identifier used it: a shared identifier
    newest: int = -(2**62)
    cooldown: CoolDown = field(default_factory=lambda: CoolDown(0))


@register
class LinkedAccounts:
    """An account that uses a suspended account's device or payout account: ban evasion.

    Keyed by identifier (`device:<device_id>`, `payout:<payout_hash>`) and fed
    `IdentifierNote`s by `IdentifierFanOut`, not contract events: whether an
    actor is suspended is decided by the ledger, downstream of the detect
    steps. It issues a violation to an actor other than the suspended one
    that uses the suspended actor's identifier *at or after the suspension*,
    whichever of the use and the suspension notice arrives first (in a replay
    the notices come only at the end).

    Ties seen only *before* the suspension do not count. Two accounts on one
    family laptop or one shop's tablet are allowed, and the policy answers
    this violation with an immediate suspension: what breaks the rule is
    trading on through the banned person's device or payout account after the
    ban, and if the other account does, its next sign-in or payout change on
    it is seen then. An identifier used by more than
    `max_actors_per_identifier` actors links nobody.

    The violation id depends on the linked actor, the suspended actor and the
    suspension time only, so a tie found through both a device and a payout
    hash is one violation.

    Examples
    --------
    >>> det = LinkedAccounts(LinkedAccountsConfig(memory_days=90, max_identifiers_per_actor=20,
    ...     max_actors_per_identifier=5, cooldown_seconds=86400))
    >>> state, found = None, []
    >>> for note in [IdentifierNote("use", "device:d-1", "seller:S1", 1_000),
    ...              IdentifierNote("use", "device:d-1", "creator:C2", 2_000),  # before the ban: allowed
    ...              IdentifierNote("suspended", "device:d-1", "seller:S1", 5_000),
    ...              IdentifierNote("use", "device:d-1", "seller:S3", 9_000)]:
    ...     state, signals = det.on_event(state, note)
    ...     found += signals
    >>> [(s.actor, s.evidence["suspended_actor"], s.detected_at, s.window_start) for s in found]
    [('seller:S3', 'seller:S1', 9000, 5000)]
    """

    name: ClassVar[str] = "linked_accounts_v1"
    violation_type: ClassVar[str] = "linked_accounts"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "linked_accounts"
    Config: ClassVar[type] = LinkedAccountsConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
    # Reads no contract event directly (so no detect step builds it): its input is `IdentifierNote`.
    event_types: ClassVar[frozenset[type]] = frozenset()

    def __init__(self, config: LinkedAccountsConfig) -> None:
        self.config = config
        self._memory_ms = int(config.memory_days * 86_400_000)
        self._cooldown_ms = int(config.cooldown_seconds * 1000)

    def entity(self, note: IdentifierNote) -> str:
        return note.identifier

    def expires_at(self, state: IdentifierUse) -> int:
        """Event time after which this identifier's state is worth nothing and may be evicted."""
        return state.newest + self._memory_ms

    def on_event(self, state: IdentifierUse | None, note: IdentifierNote) -> tuple[IdentifierUse | None, list[Signal]]:
        if note.kind == "use":
            return self.observe(state, note.actor, note.identifier, note.ts)
        if note.kind == "suspended":
            return self.suspended(state, note.actor, note.identifier, note.ts)
        if note.kind == "reinstated":
            return self.reinstated(state, note.actor, note.ts)
        raise ValueError(f"unknown IdentifierNote kind {note.kind!r}: expected use, suspended or reinstated")

    # -- inputs ---------------------------------------------------------------------

    def observe(self, state: IdentifierUse | None, actor: str, identifier: str, ts: int,
                ) -> tuple[IdentifierUse, list[Signal]]:
        """`actor` used `identifier` at `ts`."""
        state = self._state(state, identifier, ts)
        uses = state.users.setdefault(actor, [])
        if ts not in uses:
            insort(uses, ts)
            if len(uses) > _USES_KEPT:
                del uses[0]
        if len(state.users) > self.config.max_actors_per_identifier:
            state.crowded = True  # a shared identifier: from now on it links nobody
            del state.users[min(state.users, key=lambda a: (state.users[a][-1], a))]
        self._prune(state)
        signals = [
            s for banned, since in sorted(state.suspended.items(), key=lambda kv: (kv[1], kv[0]))
            if banned != actor and ts >= since
            for s in self._link(state, actor, banned, since, ts)
        ]
        return state, signals

    def suspended(self, state: IdentifierUse | None, actor: str, identifier: str, ts: int,
                  ) -> tuple[IdentifierUse, list[Signal]]:
        """The ledger suspended `actor`, a user of `identifier`, at `ts`."""
        state = self._state(state, identifier, ts)
        state.suspended[actor] = ts
        self._prune(state)
        signals = []
        for other in sorted(state.users):
            first_after = next((t for t in state.users[other] if t >= ts), None)
            if other != actor and first_after is not None:  # used after the ban; that use arrived first
                signals += self._link(state, other, actor, ts, first_after)
        return state, signals

    def reinstated(self, state: IdentifierUse | None, actor: str, ts: int) -> tuple[IdentifierUse | None, list[Signal]]:
        """An appeal lifted `actor`'s suspension: later uses by others are no longer evasion."""
        if state is not None and state.suspended.get(actor, ts + 1) <= ts:
            del state.suspended[actor]
        return state, []

    # -- internals ------------------------------------------------------------------------

    def _state(self, state: IdentifierUse | None, identifier: str, ts: int) -> IdentifierUse:
        if state is None:
            state = IdentifierUse(identifier=identifier, cooldown=CoolDown(self._cooldown_ms))
        state.newest = max(state.newest, ts)
        return state

    def _prune(self, state: IdentifierUse) -> None:
        """Forget uses, suspensions and cool-downs older than the memory: everything stays bounded."""
        horizon = state.newest - self._memory_ms
        for actor in [a for a, uses in state.users.items() if uses[-1] < horizon]:
            del state.users[actor]
        for banned in [a for a, since in state.suspended.items() if since < horizon]:
            del state.suspended[banned]
        while len(state.suspended) > self.config.max_actors_per_identifier:
            del state.suspended[min(state.suspended, key=lambda a: (state.suspended[a], a))]
        last = state.cooldown.last
        for finding in [f for f, t in last.items() if t < state.newest - self._cooldown_ms]:
            del last[finding]

    def _link(self, state: IdentifierUse, actor: str, banned: str, since: int, used_at: int) -> list[Signal]:
        if state.crowded or actor in state.suspended:
            return []  # a public identifier, or an account that is itself suspended already
        if not state.cooldown.ready(f"{actor}|{banned}", used_at):
            return []
        kind, value = state.identifier.split(":", 1)
        what = "device" if kind == "device" else "payout account"
        others = sorted(a for a in state.users if a not in (actor, banned))
        # A payout account is a stronger tie than a device; every extra user makes it a little weaker.
        confidence = (0.9 if kind == "payout" else 0.8) - 0.05 * len(others)
        return [Signal(
            actor=actor,
            violation_type=self.violation_type,
            detector=self.name,
            subject=f"linked:{banned}",
            detected_at=used_at,
            window_start=since,
            window_end=used_at,
            confidence=clamp01(confidence),
            evidence={
                "suspended_actor": banned,
                "suspended_at": since,
                "identifier_kind": kind,
                "identifier": value,
                "used_at": used_at,
                "minutes_after_suspension": round((used_at - since) / 60_000, 1),
                "linked_actor_uses": len(state.users.get(actor, ())),
                "other_actors_on_identifier": others[:5],
                "threshold_max_actors_per_identifier": self.config.max_actors_per_identifier,
            },
            explanation=(
                f"Your account uses the same {what} as {banned}, which is suspended, and a suspended "
                f"seller or creator may not keep trading through another account."
            ),
        )]
