"""HTTP plumbing every workbench request goes through: headers, size limits, forms with CSRF, parameters.

- `Guard` wraps the whole application (outside Starlette's error handling, so
  500s too): it adds the security headers to every response and refuses,
  before anything is read, a request whose target or declared body is too big
  (414/413); a body that grows past the limit while streaming is cut off (413).
- `read_form` reads a POSTed form only as far as its first field, checks that
  it is the CSRF token (403 otherwise, the rest unread), then reads the rest
  within the size limit. Our forms put `csrf_token` first; browsers send
  fields in document order.
- `Params` reads query parameters: a value that is too long, not a number,
  out of range or not one of the allowed values is a 400 that says why.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qsl, unquote_plus

from starlette.exceptions import HTTPException
from starlette.requests import Request

MAX_BODY_BYTES = 64 * 1024  # the largest form: a bulk decision over a page of appeals
MAX_TARGET_BYTES = 4096  # path + query string
MAX_PARAM_CHARS = 256
MAX_FORM_FIELDS = 500
MAX_INT = 2**53  # ids, pages and event times fit (SQLite's integers are 64-bit; JSON's safe range)
FORM_TYPE = "application/x-www-form-urlencoded"
CSRF_FIELD = "csrf_token"
TOO_LARGE = f"The request is too large: send at most {MAX_BODY_BYTES // 1024} KiB."
CSRF_REFUSED = "The form's security token is missing or out of date: reload the page and try again."

SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")
# A chart is an SVG shown with <img>: no script runs there, its own inline styles may apply.
SVG_POLICY = b"default-src 'none'; style-src 'unsafe-inline'"


class Guard:
    """Outermost ASGI wrapper: security headers on every response; size limits before the app reads."""

    def __init__(self, app: Any, https_only: bool = False, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_body = app, max_body
        self.headers = SECURITY_HEADERS + ([HSTS] if https_only else [])

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                given = list(message.get("headers", []))
                names = {name for name, _ in given}
                message["headers"] = given + [(n, v) for n, v in self.headers if n not in names]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await _plain(with_headers, *refusal)
            return
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:  # raised where the app reads: its error page answers
                raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, limited, with_headers)

    def __getattr__(self, name: str) -> Any:  # the wrapped app's `routes`, `state`, ...
        return getattr(self.app, name)

    def _refusal(self, scope: dict) -> tuple[int, str] | None:
        if len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) > MAX_TARGET_BYTES:
            return 414, "The address is too long: shorten the search or the filters."
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_body:
                    return 413, TOO_LARGE
        return None


async def _plain(send: Any, status: int, text: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": text.encode()})


# ---- forms ----------------------------------------------------------------------------------------


async def read_form(request: Request, expected_csrf: str | None) -> dict[str, Any]:
    """The form's fields (a repeated field as a list), after its first field proved to be the CSRF token."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (FORM_TYPE, ""):  # no type: an empty body, refused below for its missing token
        raise HTTPException(415, f"Send the form as {FORM_TYPE}.")
    chunks = request.stream()
    head = b""
    async for chunk in chunks:
        head += chunk
        if b"&" in head:
            break
    first, _, rest = head.partition(b"&")
    name, _, value = first.partition(b"=")
    sent = _unquote(value) if name == CSRF_FIELD.encode() else ""
    if not expected_csrf or not sent or not hmac.compare_digest(sent.encode(), expected_csrf.encode()):
        raise HTTPException(403, CSRF_REFUSED)
    async for chunk in chunks:
        rest += chunk
    try:
        pairs = parse_qsl(rest.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The form could not be read: send UTF-8 text, at most "
                                 f"{MAX_FORM_FIELDS} fields.") from None
    form: dict[str, Any] = {}
    for key, val in pairs:
        form[key] = [*form[key], val] if isinstance(form.get(key), list) else [form[key], val] if key in form else val
    return form


def _unquote(value: bytes) -> str:
    try:
        return unquote_plus(value.decode("ascii"), errors="strict")
    except (UnicodeDecodeError, ValueError):
        return ""


def field(form: dict[str, Any], name: str, max_chars: int = MAX_PARAM_CHARS, required: bool = False,
          allowed: tuple[str, ...] | None = None) -> str:
    """One text field of a form: 400 if repeated, too long, missing when required, or not one of `allowed`."""
    value = form.get(name, "")
    if isinstance(value, list):
        raise HTTPException(400, f"Send `{name}` once.")
    if len(value) > max_chars:
        raise HTTPException(400, f"`{name}` is too long: at most {max_chars:,} characters.")
    if required and not value.strip():
        raise HTTPException(400, f"Fill in `{name}`.")
    if allowed is not None and value not in allowed:
        raise HTTPException(400, f"`{name}` must be one of: {', '.join(allowed)}.")
    return value


def many(form: dict[str, Any], name: str) -> list[str]:
    value = form.get(name, [])
    values = value if isinstance(value, list) else [value]
    if any(len(v) > MAX_PARAM_CHARS for v in values):
        raise HTTPException(400, f"A `{name}` is too long: at most {MAX_PARAM_CHARS} characters.")
    return [v for v in values if v]


# ---- query parameters -----------------------------------------------------------------------------


class Params:
    """Query parameters, read strictly: every bad value is a 400 that names the parameter and the fix."""

    def __init__(self, request: Request) -> None:
        self.raw = request.query_params
        for key, value in self.raw.multi_items():
            if len(value) > MAX_PARAM_CHARS:
                raise HTTPException(400, f"`{key}` is too long: at most {MAX_PARAM_CHARS} characters.")

    def text(self, name: str) -> str | None:
        return self.raw.get(name, "").strip() or None

    def choice(self, name: str, allowed: Iterable[str]) -> str | None:
        value = self.text(name)
        allowed = tuple(allowed)
        if value is not None and value not in allowed:
            raise HTTPException(400, f"`{name}` must be one of: {', '.join(allowed)}.")
        return value

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int = MAX_INT) -> int:
        value = self.text(name)
        if value is None:
            return default
        if not value.isdigit() or not minimum <= int(value) <= maximum:
            raise HTTPException(400, f"`{name}` must be a whole number from {minimum:,} to {maximum:,}.")
        return int(value)

    def time(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            ms = parse_time(value)
        except ValueError as err:
            raise HTTPException(400, f"`{name}`: {err}") from None
        if not 0 <= ms <= MAX_INT:
            raise HTTPException(400, f"`{name}` is out of range: use a date from 1970 on.")
        return ms

    def cursor(self, name: str) -> tuple[int, int] | None:
        """`before=<event time>:<row id>`: where the previous page ended."""
        value = self.text(name)
        if value is None:
            return None
        ts, _, rowid = value.partition(":")
        if not (ts.isdigit() and rowid.isdigit() and int(ts) <= MAX_INT and int(rowid) <= MAX_INT):
            raise HTTPException(400, f"`{name}` must be `<time>:<id>` as the Older link gives it.")
        return int(ts), int(rowid)


def parse_time(text: str) -> int:
    """A filter time: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (UTC) or milliseconds.

    >>> parse_time("2026-11-01T00:00"), parse_time("1793491200000")
    (1793491200000, 1793491200000)
    """
    if text.isdigit():
        if len(text) > 16:
            raise ValueError(f"{text[:20]!r} is out of range: use YYYY-MM-DD or milliseconds since 1970")
        return int(text)
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp() * 1000)
        except (ValueError, OverflowError, OSError):
            continue
    raise ValueError(f"{text[:40]!r} is not a time: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)")
