"""The workbench web application: the reviewer console and each seller's or creator's standing page.

Pages are rendered on the server (Starlette + Jinja2 templates, no
JavaScript). Everything is read from the `Store`; every change the job must
know is a governance event handed to a `Publisher` (`workbench/cases.py`).
The reviewer pages are in `workbench/reviewer.py`; this module holds what
every page shares (sessions, checks, rendering) and the sign-in and
standing pages.

Sellers and creators (and reviewers, read-only):

- `/standing/{actor}`: health, points and when they expire, the ladder step,
  the actions taken (listing removed, payouts held, ...) with their dates,
  each violation with its explanation, its lesson, its appeal deadline and
  any reviewer's decision with its reason;
- `POST /standing/{actor}/lesson`: publishes `education.completed`;
- `POST /standing/{actor}/appeal`: publishes `appeal.filed`.

Access
------
- Sign-in (`/login`) with a token (`workbench/auth.py`), throttled per client
  and per account; the session lives in the store and the cookie holds only
  its random id (HttpOnly, SameSite=Lax, Secure and `__Host-` with
  `https_only`). Sign-out deletes the session.
- Every POST must carry the session's CSRF token as the form's first field
  (`workbench/web.py`); otherwise 403 and nothing happens.
- A reviewer may open every page. An actor may open only its own standing
  page: another actor's page is 404 (whether or not that actor exists), the
  console pages are 403. Only the actor itself appeals and marks lessons done.
- Without a session, pages redirect to `/login` and POSTs are refused (403).
- Actor ids may hold any character the contract allows (`/`, `%`, `?`...):
  links quote them and routes take the rest of the path.
"""

from __future__ import annotations

import logging
import secrets
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from itsdangerous import BadSignature, URLSafeTimedSerializer
from prometheus_client import CollectorRegistry, Counter
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from pipeline.enforce.policy import Policy
from workbench.auth import Identity, Session, Sessions, Throttle, Tokens, key_of
from workbench.cases import AlreadyDecided, Change, Workdesk
from workbench.publish import MAX_REASON_CHARS, PublishError, Publisher, appeal_filed, event_time, lesson_completed
from workbench.render import ACTION_TEXT, actor_url, day, when
from workbench.rewards import rewards_view
from workbench.store import Store
from workbench.web import field, read_form

log = logging.getLogger("shopguard.workbench")

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
DAY_MS = 86_400_000  # the ledger's day; its module is the engine's side, which the workbench does not import
LOGIN_COOKIE = "shopguard_login"
# The same words whether or not the actor exists: nothing tells one seller that another does.
NOT_FOUND = "Not found: check the address, or open your own page from the menu."
LOGIN_FORM_SECONDS = 2 * 3600


class SignInRequired(Exception):
    pass


@dataclass
class Workbench:
    """What every page shares: the store, the publisher, who is signed in, and rendering."""

    store: Store
    publisher: Publisher
    policy: Policy
    tokens: Tokens
    sessions: Sessions
    throttle: Throttle
    desk: Workdesk
    templates: Jinja2Templates
    login_signer: URLSafeTimedSerializer
    https_only: bool = False
    event_time_mode: str = "data"
    status: Callable[[], dict[str, Any]] | None = None
    registry: CollectorRegistry = dataclasses.field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.signins = Counter("shopguard_workbench_signins", "Sign-in attempts by outcome: ok, wrong_token, "
                               "client_locked, account_locked", ["outcome"], registry=self.registry)
        self.lockouts = Counter("shopguard_workbench_signin_lockouts", "Lockouts started, by scope (client or "
                                "account)", ["scope"], registry=self.registry)
        for outcome in ("ok", "wrong_token", "client_locked", "account_locked"):
            self.signins.labels(outcome)
        for scope in ("client", "account"):
            self.lockouts.labels(scope)

    @property
    def cookie(self) -> str:
        # `__Host-`: the browser keeps it only if Secure, for this host, path / (no subdomain can set it)
        return "__Host-shopguard_session" if self.https_only else "shopguard_session"

    # ---- who is asking ----

    def session(self, request: Request) -> Session | None:
        """The request's live session (looked up once per request)."""
        try:
            return request.state.session
        except AttributeError:
            request.state.session = self.sessions.find(request.cookies.get(self.cookie))
            return request.state.session

    def identity(self, request: Request) -> Identity | None:
        session = self.session(request)
        return session.identity if session else None

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
            raise HTTPException(403, "This page is for reviewers: sign in with a reviewer's token.")
        return identity

    def may_see(self, request: Request, actor: str) -> Identity:
        """A reviewer, or the actor itself; anyone else gets 404 (nothing tells them the actor exists)."""
        identity = self.signed_in(request)
        if identity.reviewer:
            if not self.store.known_actor(actor):
                raise HTTPException(404, f"No seller or creator {actor} in the outputs.")
            return identity
        if identity.id != actor:
            raise HTTPException(404, NOT_FOUND)
        return identity

    def own(self, request: Request, actor: str) -> Identity:
        """Only the actor itself may act on its standing page."""
        identity = self.signed_in(request)
        if identity.reviewer:
            raise HTTPException(403, "Only the seller or creator can appeal or mark a lesson done.")
        if identity.id != actor:
            raise HTTPException(404, NOT_FOUND)
        return identity

    def stamp(self, floor: int | None) -> int:
        return event_time(self.store.clock(), floor, self.event_time_mode)

    def flash(self, request: Request, message: str, kind: str = "ok") -> None:
        session = self.session(request)
        if session is not None:
            self.sessions.flash(session.id, kind, message)

    def publish(self, request: Request, event: dict[str, Any], change: Change) -> None:
        """Hand an event to the job (see `Workdesk.publish`); the refusals a person can act on become pages."""
        try:
            self.desk.publish(self.signed_in(request), event, change)
        except PublishError as err:
            raise HTTPException(503, f"Could not send it to the job: {err}. Nothing was changed; try again.") \
                from None
        except AlreadyDecided as err:
            first = err.first
            raise HTTPException(409, f"Already decided: {first['decision']} by {first['reviewer_id']} at "
                                     f"{when(first['ts'])}. Your decision was not recorded.") from None

    # ---- rendering ----

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        session = self.session(request)
        nonce = None if session else self.login_nonce(request) or secrets.token_urlsafe(32)
        base = {"me": session.identity if session else None, "csrf": session.csrf if session else nonce,
                "flashes": self.sessions.pop_flashes(session.id) if session else [], "clock": self.store.clock(),
                "governance_to": self.publisher.name, "status": self.status() if self.status else {}}
        response = self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)
        if session is None and nonce != self.login_nonce(request):
            response.set_cookie(LOGIN_COOKIE, self.login_signer.dumps(nonce), max_age=LOGIN_FORM_SECONDS,
                                httponly=True, samesite="strict", secure=self.https_only)
        return response

    def login_nonce(self, request: Request) -> str | None:
        """The sign-in form's CSRF nonce, from its signed cookie (None if missing, forged or too old)."""
        signed = request.cookies.get(LOGIN_COOKIE)
        if not signed or len(signed) > 200:
            return None
        try:
            return self.login_signer.loads(signed, max_age=LOGIN_FORM_SECONDS)
        except BadSignature:
            return None

    def redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)


def post(wb: Workbench, handler: Callable[[Request, dict[str, Any]], Response]) -> Callable[[Request],
                                                                                             Awaitable[Response]]:
    """A POST endpoint: the CSRF-checked form is read first, then `handler(request, form)` runs in a thread."""

    async def endpoint(request: Request) -> Response:
        session = await run_in_threadpool(wb.session, request)
        form = await read_form(request, session.csrf if session else None)
        return await run_in_threadpool(handler, request, form)

    return endpoint


def local_path(target: str | None) -> str:
    """A redirect target that stays on this site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def home_of(identity: Identity) -> str:
    return "/queue" if identity.reviewer else actor_url(identity.id, "standing")


# ---- sign-in ------------------------------------------------------------------------------------


def signin_routes(wb: Workbench) -> list[BaseRoute]:
    def login_page(request: Request) -> Response:
        return wb.render(request, "login.html", next=local_path(request.query_params.get("next")), error=None)

    async def login(request: Request) -> Response:
        form = await read_form(request, await run_in_threadpool(wb.login_nonce, request))
        return await run_in_threadpool(sign_in, request, form)

    def sign_in(request: Request, form: dict[str, Any]) -> Response:
        token = field(form, "token", max_chars=512)
        target = local_path(field(form, "next", max_chars=2000))
        client = request.client.host if request.client else "-"
        key = key_of(token)
        subjects = [("client", client)] + ([("account", key)] if key else [])
        locked = wb.throttle.locked_for(subjects)
        if locked is not None:
            scope, seconds = locked
            wb.signins.labels(f"{scope}_locked").inc()
            who = "from this address" if scope == "client" else "for this account"
            response = wb.render(request, "login.html", status_code=429, next=target,
                                 error=f"Too many failed sign-ins {who}: try again in {int(seconds // 60) + 1} "
                                       "minutes, or ask an administrator for a new token.")
            response.headers["retry-after"] = str(int(seconds) + 1)
            return response
        found = wb.tokens.identify(token)
        if found is None:
            for scope in wb.throttle.failed(subjects):
                wb.lockouts.labels(scope).inc()
            wb.signins.labels("wrong_token").inc()
            log.warning("sign-in refused from %s (token key %s)", client, key or "none")  # never the token
            return wb.render(request, "login.html", status_code=401, next=target, error="That token is not known.")
        wb.throttle.succeeded(subjects)
        token_key, identity, token_digest = found
        old = request.cookies.get(wb.cookie)
        if old:
            wb.sessions.end(old)  # a new session: a new id and CSRF token, nothing kept from before
        session = wb.sessions.start(token_key, identity, token_digest)
        wb.signins.labels("ok").inc()
        wb.desk.note_action(identity, "signed_in", identity.id, f"from {client}")
        response = wb.redirect(home_of(identity) if target == "/" else target)
        response.set_cookie(wb.cookie, session.id, max_age=int(wb.sessions.seconds), httponly=True, samesite="lax",
                            secure=wb.https_only)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    def logout(request: Request, form: dict[str, Any]) -> Response:
        session = wb.session(request)
        if session is None:
            raise HTTPException(403, "Sign in first.")
        wb.sessions.end(session.id)
        wb.desk.note_action(session.identity, "signed_out", session.identity.id)
        response = wb.redirect("/login")
        response.delete_cookie(wb.cookie, secure=wb.https_only, httponly=True, samesite="lax")
        return response

    def home(request: Request) -> Response:
        return wb.redirect(home_of(wb.signed_in(request)))

    return [
        Route("/", home, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", post(wb, logout), methods=["POST"]),
    ]


# ---- the seller's or creator's page ---------------------------------------------------------------


def standing_routes(wb: Workbench) -> list[BaseRoute]:
    store, policy = wb.store, wb.policy

    def standing_page(request: Request) -> Response:
        actor = request.path_params["actor"]
        identity = wb.may_see(request, actor)
        now = store.standing_now(actor)
        clock = store.clock()
        violations = store.violations(actor=actor, limit=500)
        appeals = store.appeals(actor)
        lessons_done = store.lessons_done(actor)
        under_appeal = set(now["under_appeal"]) if now else set()
        items = [violation_view(v, appeals.get(v["violation_id"]), lessons_done, under_appeal, clock, policy)
                 for v in violations]
        step = policy.step_for(now["active_points"]) if now else -1
        rewards = rewards_view(actor, now, store.incentives(actor), policy)
        return wb.render(request, "standing.html", actor=actor, now=now, items=items, ladder=policy.ladder, rewards=rewards,
                         step=step, policy=policy, own=identity.id == actor and not identity.reviewer,
                         actions=actions_view(store.actions(actor), {v["violation_id"]: v for v in violations}),
                         next_step=policy.ladder[step + 1] if step + 1 < len(policy.ladder) else None)

    def file_appeal(request: Request, form: dict[str, Any]) -> Response:
        actor = request.path_params["actor"]
        wb.own(request, actor)
        violation_id = field(form, "violation_id")
        reason = " ".join(field(form, "reason", MAX_REASON_CHARS).split())
        if not reason:
            raise HTTPException(400, "Say why the violation is wrong: the reason cannot be empty.")
        violation = store.violation(violation_id)
        if violation is None or violation["actor"] != actor:
            raise HTTPException(404, NOT_FOUND)
        if violation_id in store.appeals(actor):
            raise HTTPException(409, "This violation already has an appeal or a decision.")
        deadline = appeal_deadline(violation, policy)
        if (store.clock() or 0) >= deadline:
            raise HTTPException(409, f"The time to appeal ended on {day(deadline)}: there is nothing to appeal.")
        event = appeal_filed(violation_id, actor, reason, ts=wb.stamp(violation["detected_at"]))
        wb.publish(request, event, Change(None, None, "appealed", violation_id, reason[:200]))
        wb.flash(request, "Your appeal was sent. A reviewer will decide it; your standing shows it as under appeal "
                          "once it is recorded.")
        return wb.redirect(f"{actor_url(actor, 'standing')}#{violation_id}")

    def lesson_done(request: Request, form: dict[str, Any]) -> Response:
        actor = request.path_params["actor"]
        wb.own(request, actor)
        module_id = field(form, "module_id")
        mine = [v for v in store.violations(actor=actor, limit=500) if v["module_id"] == module_id]
        if not mine:
            raise HTTPException(404, "That lesson is not one of yours.")
        event = lesson_completed(actor, module_id, ts=wb.stamp(max(v["detected_at"] for v in mine)))
        wb.publish(request, event, Change(None, None, "lesson_completed", module_id))
        wb.flash(request, f"Lesson “{mine[0]['lesson_title']}” marked as done. Thank you!")
        return wb.redirect(actor_url(actor, "standing"))

    return [
        Route("/standing/{actor:path}/appeal", post(wb, file_appeal), methods=["POST"]),
        Route("/standing/{actor:path}/lesson", post(wb, lesson_done), methods=["POST"]),
        Route("/standing/{actor:path}", standing_page, methods=["GET"]),
    ]


def appeal_deadline(violation: dict[str, Any], policy: Policy) -> int:
    """A violation can be appealed while its points count: until it expires."""
    return violation["detected_at"] + int(policy.expiry_days * DAY_MS)


def violation_view(v: dict[str, Any], appeal: dict[str, Any] | None, lessons_done: dict[str, int],
                   under_appeal: set[str], clock: int | None, policy: Policy) -> dict[str, Any]:
    """What the seller or creator sees of one violation (never its evidence: it may name other people)."""
    expires = appeal_deadline(v, policy)
    expired = clock is not None and clock >= expires
    if not v["enforced"]:
        state, points = "recorded, not enforced: no points, no penalty", 0
    elif appeal and appeal["decision"] == "overturned":
        state, points = "overturned by a reviewer: no points", 0
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


def actions_view(actions: list[dict[str, Any]], violations: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The actions taken against an actor in plain words, with what caused them (never the raw reason, which
    may name another account)."""
    out = []
    for a in actions:
        causes = sorted({violations[vid]["violation_type"] for vid in a["violation_ids"] if vid in violations})
        out.append({"ts": a["ts"], "what": ACTION_TEXT.get(a["action"], a["action"].replace("_", " ")),
                    "action": a["action"], "causes": causes, "points": a["active_points"]})
    return out
