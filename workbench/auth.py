"""Who is signed in: sign-in tokens, server-side sessions and the sign-in throttle.

Tokens
    At least `MIN_TOKEN_CHARS` characters of some variety (`check_token`).
    `shopguard console token ID` mints one: `sgw_<key>_<secret>`, where the
    key names the token's row (so a sign-in looks up one row, and a wrong
    guess at a known key counts against that account) and the secret is 43
    random URL-safe characters. Tokens from the configuration or the
    environment (`[workbench.reviewers]`, SHOPGUARD_WORKBENCH_REVIEWERS, ...)
    are loaded into the same table at start-up. Only a per-token random salt
    and the SHA-256 of salt + token are stored: the tokens carry >= 190 bits
    of randomness, so a slow password hash would add nothing but latency.

Sessions
    A session is a row in `wb_sessions`; the cookie holds only its random id
    (the row is keyed by the id's digest). Signing out deletes the row;
    a session ends at `expires_at`, and as soon as its token is removed or
    replaced. Before sign-in, the sign-in form's CSRF token is a random nonce
    in a signed, time-limited cookie (itsdangerous).

Throttle
    Failed sign-ins are counted per client address and per account (the
    key of a minted token): `CLIENT_LIMIT` / `ACCOUNT_LIMIT` failures within
    their window lock that client or account out for the lockout time, even
    with a right token. Counted in `shopguard_workbench_signins_total{outcome}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from pipeline.errors import ConfigError
from workbench.store import Store

MIN_TOKEN_CHARS = 32
MIN_TOKEN_DISTINCT = 12  # `aaaa...` is long but guessable
TOKEN_PREFIX = "sgw"
ACTOR_RE = re.compile(r"^(seller|creator):[^\s:]{1,128}$")  # the contract's actor reference
REVIEWER_RE = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")
ENV_REVIEWERS = "SHOPGUARD_WORKBENCH_REVIEWERS"
ENV_ACTORS = "SHOPGUARD_WORKBENCH_ACTORS"


class AccessError(ConfigError):
    """The token configuration is unusable; the message says which entry (never the token)."""


@dataclass(frozen=True)
class Identity:
    role: str  # "reviewer" or "actor"
    id: str  # reviewer id, or the actor reference

    @property
    def reviewer(self) -> bool:
        return self.role == "reviewer"


def check_identity(role: str, who: str, where: str) -> None:
    pattern = REVIEWER_RE if role == "reviewer" else ACTOR_RE
    if not pattern.match(who):
        allowed = "letters, digits and ._@-" if role == "reviewer" else "`seller:<id>` or `creator:<id>`"
        raise AccessError(f"{where}: {who!r} is not a valid {role} id ({allowed})")


def check_token(token: Any, where: str) -> None:
    """Refuse short or repetitive tokens; the message names the entry, never the token."""
    if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS or len(set(token)) < MIN_TOKEN_DISTINCT:
        raise AccessError(f"{where}: the token must be at least {MIN_TOKEN_CHARS} characters with at least "
                          f"{MIN_TOKEN_DISTINCT} different ones; mint one with `shopguard console token ID`")


def digest(salt: bytes, token: str) -> bytes:
    return hashlib.sha256(salt + token.encode()).digest()


def mint_token() -> tuple[str, str]:
    """(key, token) of a new random token."""
    key = secrets.token_hex(6)
    return key, f"{TOKEN_PREFIX}_{key}_{secrets.token_urlsafe(32)}"


def key_of(token: str) -> str | None:
    """The key a minted token names (None for a configured token).

    >>> key_of("sgw_0a1b2c3d4e5f_x-y_z"), key_of("some-configured-token")
    ('0a1b2c3d4e5f', None)
    """
    prefix, _, rest = token.partition("_")
    key, sep, _ = rest.partition("_")
    return key if prefix == TOKEN_PREFIX and sep and re.fullmatch(r"[0-9a-f]{12}", key) else None


def env_pairs(text: str, variable: str) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'}; a malformed entry is named by its position, never by its text.

    >>> env_pairs("rev-ana=tok1, seller:S1=tok2", "V")
    {'rev-ana': 'tok1', 'seller:S1': 'tok2'}
    """
    out = {}
    for n, part in enumerate(filter(None, (p.strip() for p in text.split(","))), start=1):
        who, sep, token = part.partition("=")
        if not sep or not who.strip():
            raise AccessError(f"{variable}: entry {n} is not `id=token`; separate entries with commas")
        out[who.strip()] = token.strip()
    return out


class Tokens:
    """The sign-in tokens, as salted digests in the store's `wb_tokens` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load_configured(self, reviewers: Mapping[str, str], actors: Mapping[str, str], source: str) -> None:
        """Make the table's `source` tokens exactly these (checked first; a removed one ends its sessions)."""
        wanted: dict[str, tuple[str, str, str]] = {}
        seen: dict[str, str] = {}
        for role, table in (("reviewer", reviewers), ("actor", actors)):
            for who, token in table.items():
                where = f"[workbench.{role}s] {who}" if source == "config" else f"{source} {who}"
                check_identity(role, who, where)
                check_token(token, where)
                if token in seen:
                    raise AccessError(f"{where}: the same token as {seen[token]}; every token must be different")
                seen[token] = who
                wanted[f"{source}:{role}:{who}"] = (role, who, token)
        with self.store.transaction() as db:
            known = {r[0]: (r[1], r[2]) for r in db.execute(
                "SELECT key, salt, digest FROM wb_tokens WHERE source = ?", (source,))}
            for key in set(known) - set(wanted):
                db.execute("DELETE FROM wb_tokens WHERE key = ?", (key,))
            for key, (role, who, token) in wanted.items():
                old = known.get(key)
                if old is not None and hmac.compare_digest(digest(old[0], token), old[1]):
                    continue  # unchanged: keep its digest, so its sessions go on
                salt = os.urandom(16)
                db.execute("INSERT OR REPLACE INTO wb_tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (key, role, who, salt, digest(salt, token), source, time.time()))

    def mint(self, role: str, who: str) -> str:
        """A new token for `who` (replacing any minted before); returned once, stored only as a digest."""
        check_identity(role, who, f"token for {who}")
        key, token = mint_token()
        salt = os.urandom(16)
        with self.store.transaction() as db:
            db.execute("DELETE FROM wb_tokens WHERE source = 'minted' AND role = ? AND who = ?", (role, who))
            db.execute("INSERT INTO wb_tokens VALUES (?, ?, ?, ?, ?, 'minted', ?)",
                       (key, role, who, salt, digest(salt, token), time.time()))
        return token

    def revoke(self, who: str) -> int:
        """Remove every minted token of `who` (its sessions end); returns how many."""
        with self.store.transaction() as db:
            return db.execute("DELETE FROM wb_tokens WHERE source = 'minted' AND who = ?", (who,)).rowcount

    def listing(self) -> list[dict[str, Any]]:
        rows = self.store.read().execute(
            "SELECT key, role, who, source, created_at FROM wb_tokens ORDER BY role, who").fetchall()
        return [dict(r) for r in rows]

    def counts(self) -> tuple[int, int]:
        rows = self.store.read().execute("SELECT role, count(DISTINCT who) FROM wb_tokens GROUP BY role")
        by_role = dict(rows.fetchall())
        return by_role.get("reviewer", 0), by_role.get("actor", 0)

    def identify(self, token: str) -> tuple[str, Identity, bytes] | None:
        """(key, identity, digest) of the token's row, or None. Configured tokens are few: each is compared."""
        db = self.store.read()
        key = key_of(token)
        rows = db.execute("SELECT * FROM wb_tokens WHERE key = ?", (key,)).fetchall() if key else []
        if not rows:  # a configured token (which may even look like a minted one)
            rows = db.execute("SELECT * FROM wb_tokens WHERE source != 'minted'").fetchall()
        found = None
        for r in rows:
            if hmac.compare_digest(digest(r["salt"], token), r["digest"]):
                found = (r["key"], Identity(r["role"], r["who"]), r["digest"])
        return found

    def still_valid(self, key: str, token_digest: bytes) -> bool:
        row = self.store.read().execute("SELECT digest FROM wb_tokens WHERE key = ?", (key,)).fetchone()
        return row is not None and hmac.compare_digest(row[0], token_digest)


def configured_tokens(tokens: Tokens, workbench: Any, environ: Mapping[str, str]) -> None:
    """Load `[workbench.reviewers]`/`[workbench.actors]` and SHOPGUARD_WORKBENCH_REVIEWERS/ACTORS."""
    tokens.load_configured(workbench.reviewers, workbench.actors, "config")
    tokens.load_configured(env_pairs(environ.get(ENV_REVIEWERS, ""), ENV_REVIEWERS),
                           env_pairs(environ.get(ENV_ACTORS, ""), ENV_ACTORS), "environment")


# ---- sessions ---------------------------------------------------------------------------------------


@dataclass
class Session:
    id: str
    identity: Identity
    csrf: str
    expires_at: float


def _id_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Server-side sessions in the store (`wb_sessions`)."""

    def __init__(self, store: Store, tokens: Tokens, hours: float) -> None:
        self.store, self.tokens, self.seconds = store, tokens, hours * 3600

    def start(self, key: str, identity: Identity, token_digest: bytes, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        session = Session(secrets.token_urlsafe(32), identity, secrets.token_urlsafe(32), now + self.seconds)
        with self.store.transaction() as db:
            db.execute("DELETE FROM wb_sessions WHERE expires_at <= ?", (now,))  # keeps the table small
            db.execute("INSERT INTO wb_sessions (id_digest, token_key, token_digest, role, who, csrf, created_at, "
                       "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (_id_digest(session.id), key, token_digest, identity.role, identity.id, session.csrf, now,
                        session.expires_at))
        return session

    def find(self, session_id: str | None, now: float | None = None) -> Session | None:
        """The live session of a cookie: None if unknown, signed out, expired, or its token changed."""
        if not session_id or len(session_id) > 100:
            return None
        row = self.store.read().execute("SELECT * FROM wb_sessions WHERE id_digest = ?",
                                        (_id_digest(session_id),)).fetchone()
        now = time.time() if now is None else now
        if row is None or row["expires_at"] <= now or not self.tokens.still_valid(row["token_key"],
                                                                                  row["token_digest"]):
            return None
        return Session(session_id, Identity(row["role"], row["who"]), row["csrf"], row["expires_at"])

    def end(self, session_id: str) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM wb_sessions WHERE id_digest = ?", (_id_digest(session_id),))

    def flash(self, session_id: str, kind: str, message: str) -> None:
        with self.store.transaction() as db:
            row = db.execute("SELECT flash FROM wb_sessions WHERE id_digest = ?", (_id_digest(session_id),)).fetchone()
            if row is not None:
                db.execute("UPDATE wb_sessions SET flash = ? WHERE id_digest = ?",
                           (json.dumps(json.loads(row[0]) + [[kind, message]]), _id_digest(session_id)))

    def pop_flashes(self, session_id: str) -> list[list[str]]:
        row = self.store.read().execute("SELECT flash FROM wb_sessions WHERE id_digest = ?",
                                        (_id_digest(session_id),)).fetchone()
        if row is None or row[0] == "[]":
            return []
        with self.store.transaction() as db:
            db.execute("UPDATE wb_sessions SET flash = '[]' WHERE id_digest = ?", (_id_digest(session_id),))
        return json.loads(row[0])


# ---- the sign-in throttle -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    failures: int  # this many failures within `window_s` ...
    window_s: float
    lockout_s: float  # ... lock the subject out this long


CLIENT_LIMIT = Limit(failures=5, window_s=300, lockout_s=300)
ACCOUNT_LIMIT = Limit(failures=10, window_s=900, lockout_s=900)


class Throttle:
    """Failed sign-ins per client address and per account, with lockout (`wb_throttle`)."""

    def __init__(self, store: Store, client: Limit = CLIENT_LIMIT, account: Limit = ACCOUNT_LIMIT) -> None:
        self.store, self.limits = store, {"client": client, "account": account}

    def locked_for(self, subjects: Iterable[tuple[str, str]], now: float | None = None) -> tuple[str, float] | None:
        """(scope, seconds left) of the first locked subject among (scope, subject) pairs, or None."""
        now = time.time() if now is None else now
        db = self.store.read()
        for scope, subject in subjects:
            row = db.execute("SELECT locked_until FROM wb_throttle WHERE scope = ? AND subject = ?",
                             (scope, subject)).fetchone()
            if row is not None and row[0] > now:
                return scope, row[0] - now
        return None

    def failed(self, subjects: Iterable[tuple[str, str]], now: float | None = None) -> list[str]:
        """Count a failure against each subject; returns the scopes that became locked."""
        now = time.time() if now is None else now
        locked = []
        horizon = now - max(limit.window_s for limit in self.limits.values())
        with self.store.transaction() as db:
            # forget quiet subjects: guesses from ever-new addresses must not grow the table without end
            db.execute("DELETE FROM wb_throttle WHERE first_at < ? AND locked_until < ?", (horizon, now))
            for scope, subject in subjects:
                limit = self.limits[scope]
                row = db.execute("SELECT failures, first_at FROM wb_throttle WHERE scope = ? AND subject = ?",
                                 (scope, subject)).fetchone()
                failures, first_at = (row[0] + 1, row[1]) if row and now - row[1] < limit.window_s else (1, now)
                until = now + limit.lockout_s if failures >= limit.failures else 0.0
                db.execute("INSERT OR REPLACE INTO wb_throttle VALUES (?, ?, ?, ?, ?)",
                           (scope, subject, 0 if until else failures, now if until else first_at, until))
                if until:
                    locked.append(scope)
        return locked

    def succeeded(self, subjects: Iterable[tuple[str, str]]) -> None:
        with self.store.transaction() as db:
            for scope, subject in subjects:
                db.execute("DELETE FROM wb_throttle WHERE scope = ? AND subject = ? AND locked_until = 0",
                           (scope, subject))
