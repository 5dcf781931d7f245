"""The workbench web application: the reviewer console and each seller's or creator's standing page.

Pages are rendered on the server (Starlette + Jinja2 templates, no
JavaScript). Everything is read from the `Store`; every change is a
governance event handed to a `Publisher`, which the job then applies.

Pages
-----
Reviewers:

- `/queue`: the review queue, highest score first, with the model's top features;
- `/violations`: all violations, newest first, filtered by type, detector,
  severity, enforced/shadow and time (`since`/`until`), 50 a page;
- `/appeals`: appeals filed and not yet decided, oldest first;
- `/actors/{actor}`: one actor's full history: standing now and over time,
  violations with their evidence, actions, appeals (uphold/overturn forms),
  review entries and governance events the job rejected;
- `POST /actors/{actor}/decide`: publishes `appeal.decided` with
  `reviewer_id` = the signed-in reviewer.

Sellers and creators (and reviewers, read-only):

- `/standing/{actor}`: health, points and when they expire, the ladder step
  and what it restricts, each violation with its explanation and lesson;
- `POST /standing/{actor}/lesson`: publishes `education.completed`;
- `POST /standing/{actor}/appeal`: publishes `appeal.filed`.

Access
------
- Sign-in (`/login`) with a token from `[workbench.reviewers]` or
  `[workbench.actors]` (`Access`); the session is a signed cookie (HttpOnly,
  SameSite=Lax) holding the role, the id, a fingerprint of the token (a token
  removed from the configuration ends its sessions) and the session's CSRF
  token.
- Every POST (sign-in and sign-out included) must carry the session's CSRF
  token in the form field `csrf_token`; otherwise 403 and nothing happens.
- A reviewer may open every page and decide appeals. An actor may open only
  its own standing page: another actor's page is 404 (whether or not that
  actor exists), the console pages are 403, and it can never decide an
  appeal; it can appeal and mark lessons done only on its own violations.
  Reviewers cannot appeal or mark lessons done in an actor's name.
- Without a session, pages redirect to `/login` and POSTs are refused (403).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pipeline.enforce.ledger import DAY_MS
from pipeline.enforce.policy import Policy
from pipeline.errors import ConfigError
from workbench.publish import (
    MAX_REASON_CHARS, PublishError, Publisher, appeal_decided, appeal_filed, checked, event_time, lesson_completed,
)
from workbench.store import Store

log = logging.getLogger("shopguard.workbench")

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
MIN_TOKEN_CHARS = 16
ACTOR_RE = re.compile(r"^(seller|creator):[^\s:/]{1,128}$")
REVIEWER_RE = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")
SESSION_COOKIE = "shopguard_session"

# What each restriction means to the seller or creator, in plain words.
RESTRICTION_TEXT = {
    "listing_limit": "You can publish only a limited number of new listings.",
    "live_restriction": "You cannot start LIVE streams.",
    "payout_hold": "Payouts to you are on hold.",
    "temporary_suspension": "Your shop is temporarily closed to new orders.",
    "suspension": "Your account is suspended: you cannot sell, stream or receive payouts.",
}


# ---- who may do what ------------------------------------------------------------------------


class AccessError(ConfigError):
    """The token configuration is unusable; the message says which entry."""


@dataclass(frozen=True)
class Identity:
    role: str  # "reviewer" or "actor"
    id: str  # reviewer id, or the actor reference

    @property
    def reviewer(self) -> bool:
        return self.role == "reviewer"


class Access:
    """Sign-in tokens: reviewer id -> token, actor reference -> token.

    >>> access = Access(reviewers={"rev-ana": "a" * 16}, actors={"seller:S1": "b" * 16})
    >>> access.identify("b" * 16)
    Identity(role='actor', id='seller:S1')
    >>> access.identify("wrong") is None
    True
    """

    def __init__(self, reviewers: Mapping[str, str], actors: Mapping[str, str]) -> None:
        self._by_token: dict[str, Identity] = {}
        for role, table, pattern in (("reviewer", reviewers, REVIEWER_RE), ("actor", actors, ACTOR_RE)):
            for who, token in table.items():
                if not pattern.match(who):
                    raise AccessError(f"[workbench.{role}s]: {who!r} is not a valid {role} id")
                if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
                    raise AccessError(f"[workbench.{role}s]: the token of {who} must be at least "
                                      f"{MIN_TOKEN_CHARS} characters")
                if token in self._by_token:
                    raise AccessError(f"[workbench.{role}s]: the token of {who} is also "
                                      f"{self._by_token[token].id}'s; every token must be different")
                self._by_token[token] = Identity(role, who)

    @classmethod
    def from_config(cls, workbench: Any, environ: Mapping[str, str]) -> "Access":
        """`[workbench.reviewers]`/`[workbench.actors]`, plus SHOPGUARD_WORKBENCH_REVIEWERS/ACTORS ("id=token,...")."""
        reviewers = {**workbench.reviewers, **_pairs(environ.get("SHOPGUARD_WORKBENCH_REVIEWERS", ""))}
        actors = {**workbench.actors, **_pairs(environ.get("SHOPGUARD_WORKBENCH_ACTORS", ""))}
        return cls(reviewers, actors)

    def __len__(self) -> int:
        return len(self._by_token)

    def counts(self) -> tuple[int, int]:
        ids = list(self._by_token.values())
        return sum(i.reviewer for i in ids), sum(not i.reviewer for i in ids)

    def identify(self, token: str) -> Identity | None:
        """The identity of a token; every configured token is compared, in constant time each."""
        found = None
        for known, identity in self._by_token.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = identity
        return found

    def fingerprint(self, identity: Identity) -> str | None:
        """A digest of the identity's token now (None if it has none any more): sessions carry it."""
        for token, known in self._by_token.items():
            if known == identity:
                return hashlib.blake2b(token.encode(), digest_size=12).hexdigest()
        return None


def _pairs(text: str) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'} (ids may contain ':' but not '=' or ',').

    >>> _pairs("rev-ana=tok1, seller:S1=tok2")
    {'rev-ana': 'tok1', 'seller:S1': 'tok2'}
    """
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        who, sep, token = part.partition("=")
        if not sep:
            raise AccessError(f"expected id=token in {part.split('=')[0]!r}... of the workbench token variable")
        out[who.strip()] = token.strip()
    return out


class SignInRequired(Exception):
    pass


# ---- formatting for the templates ----------------------------------------------------------


def when(ms: int | None) -> str:
    """Event time as a UTC date and time.

    >>> when(1793491200000)
    '2026-11-01 00:00:00 UTC'
    """
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def day(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def parse_time(text: str) -> int | None:
    """A filter time: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (UTC) or milliseconds; '' -> None.

    >>> parse_time("2026-11-01T00:00"), parse_time("1793491200000"), parse_time("")
    (1793491200000, 1793491200000, None)
    """
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp() * 1000)
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a time: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)")


def humanize(name: str) -> str:
    """`order_brushing` -> `Order brushing`."""
    return name.replace("_", " ").capitalize()


def compact(value: Any, limit: int = 400) -> str:
    """A value of the evidence in one short line."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit] + " …"


def evidence_value(value: Any, key: str) -> str:
    """One fact of the evidence for a reviewer: event times (`*_at`, `*_ts`) as dates, the rest compact.

    >>> evidence_value(1793491200000, "suspended_at"), evidence_value([1, 2], "listing_ids")
    ('2026-11-01 00:00:00 UTC', '[1, 2]')
    """
    if (key == "ts" or key.endswith(("_at", "_ts"))) and isinstance(value, int) and value > 10**11:
        return when(value)
    return compact(value)


def top_features(features: Any, n: int = 5) -> list[tuple[str, str]]:
    """The model's features that stand out most: by |z| when it gives one, else as given.

    >>> top_features({"a": {"value": 9, "usual": 1, "z": 2.0}, "b": {"value": 50, "usual": 2, "z": -6.5}})
    [('b', '50 (usual 2, z -6.5)'), ('a', '9 (usual 1, z 2)')]
    >>> top_features({"p_overturned": 0.8, "violation_type": "price_gouging"})
    [('p_overturned', '0.8'), ('violation_type', 'price_gouging')]
    """
    if not isinstance(features, dict):
        return []
    items = list(features.items())

    def strength(item: tuple[str, Any]) -> float:
        value = item[1]
        if isinstance(value, dict) and isinstance(value.get("z"), (int, float)):
            return abs(value["z"])
        return -1.0

    if any(strength(i) >= 0 for i in items):
        items.sort(key=strength, reverse=True)
    out = []
    for name, value in items[:n]:
        if isinstance(value, dict) and "value" in value:
            extra = ", ".join(f"{k} {_num(value[k])}" for k in ("usual", "z") if k in value)
            out.append((name, f"{_num(value['value'])} ({extra})" if extra else _num(value["value"])))
        else:
            out.append((name, compact(value, 80)))
    return out


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return compact(value, 80)


def health_svg(history: list[dict[str, Any]], width: int = 600, height: int = 80) -> str:
    """Health over time as a small inline SVG line (no JavaScript)."""
    points = [(h["ts"], h["health"]) for h in history]
    if len(points) < 2:
        return ""
    t0, t1 = points[0][0], points[-1][0]
    span = max(t1 - t0, 1)
    coords = " ".join(f"{(t - t0) / span * (width - 10) + 5:.1f},{height - 5 - hv / 1000 * (height - 10):.1f}"
                      for t, hv in points)
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="health from {points[0][1]} to {points[-1][1]}">'
            f'<polyline fill="none" stroke="currentColor" stroke-width="2" points="{html.escape(coords)}"/></svg>')


# ---- the application ----------------------------------------------------------------------


@dataclass
class Workbench:
    store: Store
    publisher: Publisher
    policy: Policy
    access: Access
    event_time_mode: str = "data"

    # ---- sessions and checks ----

    def identity(self, request: Request) -> Identity | None:
        s = request.session
        if "role" not in s or "who" not in s:
            return None
        identity = Identity(s["role"], s["who"])
        fp = self.access.fingerprint(identity)
        if fp is None or not hmac.compare_digest(fp, s.get("fp", "")):
            s.clear()  # its token was removed or changed: the session ends
            return None
        return identity

    def signed_in(self, request: Request) -> Identity:
        identity = self.identity(request)
        if identity is None:
            if request.method == "GET":
                raise SignInRequired()
            raise HTTPException(403, "Sign in first.")
        return identity

    def reviewer(self, request: Request) -> Identity:
        identity = self.signed_in(request)
        if not identity.reviewer:
            raise HTTPException(403, "This page is for reviewers.")
        return identity

    def may_see(self, request: Request, actor: str) -> Identity:
        """A reviewer, or the actor itself; anyone else gets 404 (nothing tells them the actor exists)."""
        identity = self.signed_in(request)
        if identity.reviewer:
            if not self.store.known_actor(actor):
                raise HTTPException(404, f"No seller or creator {actor} in the outputs.")
            return identity
        if identity.id != actor:
            raise HTTPException(404, "Not found.")
        return identity

    def own(self, request: Request, actor: str) -> Identity:
        """Only the actor itself may act on its standing page."""
        identity = self.signed_in(request)
        if identity.reviewer:
            raise HTTPException(403, "Only the seller or creator can appeal or mark a lesson done.")
        if identity.id != actor:
            raise HTTPException(404, "Not found.")
        return identity

    def clock(self) -> int | None:
        return self.store.clock()

    def stamp(self, floor: int | None) -> int:
        return event_time(self.store.clock(), floor, self.event_time_mode)

    def publish(self, event: dict[str, Any]) -> None:
        decoded = checked(event)
        self.publisher.publish(event)
        self.store.record_governance(decoded, self.publisher.name)
        log.info("published %s %s for %s", event["type"], event.get("appeal_id") or event.get("module_id"),
                 event["actor"])


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def checked_form(request: Request) -> dict[str, str]:
    """The POSTed form, after its CSRF token is checked against the session's (403 if it does not match)."""
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(403, "The form's security token is missing or out of date: reload the page and try "
                                 "again.")
    return {k: v for k, v in form.items() if isinstance(v, str)}


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append([kind, message])


def _local_path(target: str | None) -> str:
    """A redirect target that stays on this site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def create_app(store: Store, publisher: Publisher, policy: Policy, access: Access, *, session_secret: str = "",
               https_only: bool = False, session_hours: float = 8.0, event_time_mode: str = "data",
               status: Callable[[], dict[str, Any]] | None = None) -> Starlette:
    """The workbench ASGI application over a store and a publisher."""
    wb = Workbench(store, publisher, policy, access, event_time_mode)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, day=day, humanize=humanize, compact=compact, top_features=top_features,
                       evidence_value=evidence_value,
                       quote=lambda s: quote(s, safe=":"))
    env.globals.update(RESTRICTION_TEXT=RESTRICTION_TEXT, MAX_REASON_CHARS=MAX_REASON_CHARS)
    templates = Jinja2Templates(env=env)

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        identity = wb.identity(request)
        base = {"me": identity, "csrf": csrf_token(request), "flashes": request.session.pop("flash", []),
                "clock": wb.clock(), "governance_to": publisher.name, "status": status() if status else {}}
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)

    # ---- sign-in ----

    def login_page(request: Request) -> Response:
        return render(request, "login.html", next=_local_path(request.query_params.get("next")), error=None)

    async def login(request: Request) -> Response:
        form = await checked_form(request)
        identity = access.identify(form.get("token", ""))
        if identity is None:
            await asyncio.sleep(0.2)  # slows guessing a little; tokens are long anyway
            return render(request, "login.html", status_code=401, next=_local_path(form.get("next")),
                          error="That token is not known.")
        request.session.clear()  # a new session: a new CSRF token, nothing kept from before
        request.session.update(role=identity.role, who=identity.id, fp=access.fingerprint(identity),
                               csrf=secrets.token_urlsafe(32))
        target = _local_path(form.get("next"))
        if target == "/":
            target = _home(identity)
        return RedirectResponse(target, status_code=303)

    async def logout(request: Request) -> Response:
        await checked_form(request)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def home(request: Request) -> Response:
        return RedirectResponse(_home(wb.signed_in(request)), status_code=303)

    # ---- reviewer pages ----

    def queue_page(request: Request) -> Response:
        wb.reviewer(request)
        page = _int(request.query_params.get("page"), 1, minimum=1)
        rows = store.queue(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        return render(request, "queue.html", rows=rows, page=page, total=store.queue_size(), page_size=PAGE_SIZE,
                      open_appeals=len(store.open_appeals(limit=1000)))

    def violations_page(request: Request) -> Response:
        wb.reviewer(request)
        q = request.query_params
        errors: list[str] = []
        filters: dict[str, Any] = {
            "violation_type": q.get("type") or None, "detector": q.get("detector") or None,
            "severity": q.get("severity") or None, "actor": q.get("actor") or None,
            "enforced": {"yes": True, "no": False}.get(q.get("enforced", "")),
        }
        for name in ("since", "until"):
            try:
                filters[name] = parse_time(q.get(name, ""))
            except ValueError as err:
                errors.append(f"{name}: {err}")
                filters[name] = None
        before = _before(q.get("before", ""))
        rows = store.violations(**filters, before=before, limit=PAGE_SIZE + 1)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        count = store.count_violations(**filters)
        keep = {k: v for k, v in q.items() if k != "before" and v}
        next_url = ("/violations?" + urlencode({**keep, "before": f"{rows[-1]['detected_at']}:{rows[-1]['id']}"})
                    if more else None)
        return render(request, "violations.html", rows=rows, count=count, count_cap=store_count_cap(),
                      facets=store.facets(), q=q, errors=errors, next_url=next_url,
                      first_url="/violations?" + urlencode(keep) if before else None)

    def appeals_page(request: Request) -> Response:
        wb.reviewer(request)
        return render(request, "appeals.html", rows=store.open_appeals())

    def actor_page(request: Request) -> Response:
        actor = request.path_params["actor"]
        wb.reviewer(request)
        if not store.known_actor(actor):
            raise HTTPException(404, f"No seller or creator {actor} in the outputs.")
        violations = store.violations(actor=actor, limit=500)
        actions = store.actions(actor)
        actions_of: dict[str, list[dict[str, Any]]] = {}
        for a in actions:
            for vid in a["violation_ids"]:
                actions_of.setdefault(vid, []).append(a)
        history = store.standing_history(actor)
        return render(request, "actor.html", actor=actor, now=store.standing_now(actor), history=history,
                      health_svg=health_svg(history), violations=violations, actions=actions,
                      actions_of=actions_of, appeals=store.appeals(actor), review=store.review_entries(actor),
                      governance=store.governance(actor), dead_letters=store.dead_letters(actor))

    async def decide(request: Request) -> Response:
        actor = request.path_params["actor"]
        form = await checked_form(request)
        identity = wb.reviewer(request)
        decision = form.get("decision", "")
        if decision not in ("overturned", "upheld"):
            raise HTTPException(400, "The decision must be overturned or upheld.")
        violation_id = form.get("violation_id", "")

        def publish() -> str:
            violation = store.violation(violation_id)
            if violation is None or violation["actor"] != actor:
                raise HTTPException(404, f"No violation {violation_id} of {actor}.")
            appeal = store.appeals(actor).get(violation_id)
            if appeal is None or not appeal["appeal_id"]:
                raise HTTPException(409, f"{violation_id} has no appeal to decide.")
            if appeal["decision"]:
                raise HTTPException(409, f"The appeal on {violation_id} was already decided: {appeal['decision']} "
                                         f"by {appeal['reviewer_id']}.")
            ts = wb.stamp(max(violation["detected_at"], appeal["filed_at"] or 0))
            wb.publish(appeal_decided(appeal["appeal_id"], violation_id, actor, decision, identity.id, ts=ts))
            return appeal["appeal_id"]

        appeal_id = await run_in_threadpool(_publishing, publish)
        flash(request, f"Appeal {appeal_id} {decision} by {identity.id}. The job applies it when it reads "
                       f"{publisher.name}.")
        return RedirectResponse(f"/actors/{quote(actor, safe=':')}#{violation_id}", status_code=303)

    # ---- the seller's or creator's page ----

    def standing_page(request: Request) -> Response:
        actor = request.path_params["actor"]
        identity = wb.may_see(request, actor)
        now = store.standing_now(actor)
        clock = wb.clock()
        violations = store.violations(actor=actor, limit=500)
        appeals = store.appeals(actor)
        lessons_done = store.lessons_done(actor)
        under_appeal = set(now["under_appeal"]) if now else set()
        items = [_violation_view(v, appeals.get(v["violation_id"]), lessons_done, under_appeal, clock, policy)
                 for v in violations]
        step = policy.step_for(now["active_points"]) if now else -1
        return render(request, "standing.html", actor=actor, now=now, items=items, ladder=policy.ladder,
                      step=step, policy=policy, own=identity.id == actor and not identity.reviewer,
                      next_step=policy.ladder[step + 1] if step + 1 < len(policy.ladder) else None)

    async def file_appeal(request: Request) -> Response:
        actor = request.path_params["actor"]
        form = await checked_form(request)
        wb.own(request, actor)
        violation_id = form.get("violation_id", "")
        reason = " ".join(form.get("reason", "").split())
        if not reason:
            raise HTTPException(400, "Say why the violation is wrong: the reason cannot be empty.")

        def publish() -> None:
            violation = store.violation(violation_id)
            if violation is None or violation["actor"] != actor:
                raise HTTPException(404, "Not found.")
            if violation_id in store.appeals(actor):
                raise HTTPException(409, "This violation already has an appeal.")
            expires = violation["detected_at"] + int(policy.expiry_days * DAY_MS)
            if (wb.clock() or 0) >= expires:
                raise HTTPException(409, f"This violation expired on {day(expires)}: there is nothing to appeal.")
            wb.publish(appeal_filed(violation_id, actor, reason, ts=wb.stamp(violation["detected_at"])))

        await run_in_threadpool(_publishing, publish)
        flash(request, "Your appeal was sent. A reviewer will decide it; your standing shows it as under appeal "
                       "once it is recorded.")
        return RedirectResponse(f"/standing/{quote(actor, safe=':')}#{violation_id}", status_code=303)

    async def lesson_done(request: Request) -> Response:
        actor = request.path_params["actor"]
        form = await checked_form(request)
        wb.own(request, actor)
        module_id = form.get("module_id", "")

        def publish() -> str:
            mine = [v for v in store.violations(actor=actor, limit=500) if v["module_id"] == module_id]
            if not mine:
                raise HTTPException(404, "That lesson is not one of yours.")
            wb.publish(lesson_completed(actor, module_id, ts=wb.stamp(max(v["detected_at"] for v in mine))))
            return mine[0]["lesson_title"]

        title = await run_in_threadpool(_publishing, publish)
        flash(request, f"Lesson “{title}” marked as done. Thank you!")
        return RedirectResponse(f"/standing/{quote(actor, safe=':')}", status_code=303)

    def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return render(request, "error.html", status_code=exc.status_code, code=exc.status_code, message=exc.detail)

    async def sign_in_first(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/queue", queue_page, methods=["GET"]),
        Route("/violations", violations_page, methods=["GET"]),
        Route("/appeals", appeals_page, methods=["GET"]),
        Route("/actors/{actor}", actor_page, methods=["GET"]),
        Route("/actors/{actor}/decide", decide, methods=["POST"]),
        Route("/standing/{actor}", standing_page, methods=["GET"]),
        Route("/standing/{actor}/appeal", file_appeal, methods=["POST"]),
        Route("/standing/{actor}/lesson", lesson_done, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=session_secret or secrets.token_urlsafe(32),
                   session_cookie=SESSION_COOKIE, max_age=int(session_hours * 3600), same_site="lax",
                   https_only=https_only),
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: http_error, SignInRequired: sign_in_first})
    app.state.workbench = wb
    return app


def store_count_cap() -> int:
    from workbench.store import COUNT_CAP

    return COUNT_CAP


def _publishing(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except PublishError as err:
        raise HTTPException(503, f"Could not send it to the job: {err}. Nothing was changed; try again.") from None


def _home(identity: Identity) -> str:
    return "/queue" if identity.reviewer else f"/standing/{quote(identity.id, safe=':')}"


def _int(text: str | None, default: int, minimum: int = 0) -> int:
    try:
        return max(minimum, int(text)) if text else default
    except ValueError:
        return default


def _before(text: str) -> tuple[int, int] | None:
    ts, _, rowid = text.partition(":")
    if ts.isdigit() and rowid.isdigit():
        return int(ts), int(rowid)
    return None


def _violation_view(v: dict[str, Any], appeal: dict[str, Any] | None, lessons_done: dict[str, int],
                    under_appeal: set[str], clock: int | None, policy: Policy) -> dict[str, Any]:
    """What the seller or creator sees of one violation (never its evidence: it may name other people)."""
    expires = v["detected_at"] + int(policy.expiry_days * DAY_MS)
    expired = clock is not None and clock >= expires
    if not v["enforced"]:
        state, points = "recorded, not enforced: no points, no penalty", 0
    elif appeal and appeal["decision"] == "overturned":
        state, points = "overturned on appeal: no points", 0
    elif expired:
        state, points = f"expired on {day(expires)}", 0
    else:
        state, points = f"points count until {day(expires)}", v["points"]
    done_at = lessons_done.get(v["module_id"])
    return {**v, "expires_at": expires, "expired": expired, "state": state, "points_now": points,
            "appeal": appeal, "in_job_appeal": v["violation_id"] in under_appeal,
            "lesson_done_at": done_at if done_at is not None and done_at >= v["detected_at"] else None,
            # the ledger credits a lesson only against a violation that still costs points
            "lesson_counts": points > 0, "can_appeal": appeal is None and not expired}


class SecurityHeaders:
    """Headers every page gets: no framing, no sniffing, only our own styles, no referrer leaks."""

    HEADERS = [
        (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                     b"frame-ancestors 'none'; base-uri 'none'"),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)
