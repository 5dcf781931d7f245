"""The workbench as one ASGI application: the seller pages and sign-in (`app.py`) and the reviewer
console (`reviewer.py`), mounted together with their security guard (`web.Guard`)."""

from __future__ import annotations

import secrets
from typing import Any, Callable
from urllib.parse import urlencode

import jinja2
from itsdangerous import URLSafeTimedSerializer
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pipeline.enforce.policy import Policy
from workbench.app import HERE, SignInRequired, Workbench, log, signin_routes, standing_routes
from workbench.auth import ACCOUNT_LIMIT, CLIENT_LIMIT, Limit, Sessions, Throttle, Tokens
from workbench.cases import Workdesk
from workbench.publish import MAX_REASON_CHARS, Publisher
from workbench.render import FILTERS, RESTRICTION_TEXT
from workbench.reviewer import reviewer_routes
from workbench.store import Store
from workbench.web import Guard

# ---- the application -------------------------------------------------------------------------------


def create_app(store: Store, publisher: Publisher, policy: Policy, *, session_secret: str = "",
               https_only: bool = False, session_hours: float = 8.0, event_time_mode: str = "data",
               status: Callable[[], dict[str, Any]] | None = None, client_limit: Limit = CLIENT_LIMIT,
               account_limit: Limit = ACCOUNT_LIMIT) -> Guard:
    """The workbench ASGI application over a store (its tokens included) and a publisher."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    env.globals.update(RESTRICTION_TEXT=RESTRICTION_TEXT, MAX_REASON_CHARS=MAX_REASON_CHARS)
    tokens = Tokens(store)
    wb = Workbench(store, publisher, policy, tokens, Sessions(store, tokens, session_hours),
                   Throttle(store, client_limit, account_limit), Workdesk(store, publisher), Jinja2Templates(env=env),
                   URLSafeTimedSerializer(session_secret or secrets.token_urlsafe(32), salt="shopguard-login"),
                   https_only, event_time_mode, status)

    def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    def metrics(request: Request) -> Response:
        return PlainTextResponse(generate_latest(wb.registry).decode(), media_type="text/plain; version=0.0.4")

    def http_error(request: Request, exc: HTTPException) -> Response:
        response = wb.render(request, "error.html", status_code=exc.status_code, code=exc.status_code,
                             message=exc.detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    def server_error(request: Request, exc: Exception) -> Response:
        log.error("error on %s %s", request.method, request.url.path, exc_info=exc)
        return PlainTextResponse("Something went wrong on our side; it is logged. Try again, or tell the team "
                                 "that runs the console.", status_code=500)

    def sign_in_first(request: Request, exc: SignInRequired) -> Response:
        return wb.redirect("/login?" + urlencode({"next": request.url.path}))

    routes = [*signin_routes(wb), *reviewer_routes(wb), *standing_routes(wb),
              Route("/healthz", healthz, methods=["GET"]), Route("/metrics", metrics, methods=["GET"]),
              Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, SignInRequired: sign_in_first,
                                                       Exception: server_error})
    app.state.workbench = wb
    return Guard(app, https_only=https_only)
