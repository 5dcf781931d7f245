"""How the workbench says things to people: times, names, money, evidence, and what a seller may read.

Evidence is shown as facts, not JSON: event times as dates, money rounded to
cents (`6499.999999999995` -> `6,500.00 USD`), other numbers to four
significant digits, listing and LIVE ids linked to the violations that name
them, actor references linked to their history, and the terms a text
detector matched highlighted in the text it read. Everything is escaped
first; only our own `<a>` and `<mark>` tags are added.

A seller or creator never reads another account's name: `seller_explanation`
replaces the explanation of a `linked_accounts` violation (which names the
suspended account) and any other actor reference in an explanation.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import quote, urlencode

from markupsafe import Markup, escape

ACTOR_REF = re.compile(r"\b(?:seller|creator):[^\s:,;)\]\"']+")
MONEY_KEYS = re.compile(r"(^|_)(price|amount|going_rate|recent_high|reference)$")
TIME_KEYS = re.compile(r"(^ts$|_at$|_ts$)")
LINKED_KEYS = ("listing_id", "live_id", "listing_ids")
MATCH_LIST_KEYS = ("matched", "replica_terms")
TEXT_KEYS = ("text", "normalized_text", "title", "titles")

# What each restriction and action means to the seller or creator, in plain words.
RESTRICTION_TEXT = {
    "listing_limit": "You can publish only a limited number of new listings.",
    "live_restriction": "You cannot start LIVE streams.",
    "payout_hold": "Payouts to you are on hold.",
    "temporary_suspension": "Your shop is temporarily closed to new orders.",
    "suspension": "Your account is suspended: you cannot sell, stream or receive payouts.",
}
ACTION_TEXT = {
    "warning": "Warning issued",
    "listing_removal": "Listing removed",
    "live_restriction": "LIVE streams restricted",
    "payout_hold": "Payouts put on hold",
    "suspension": "Account suspended",
    "reinstatement": "Restrictions lifted",
}
LINKED_ACCOUNTS_TEXT = ("Your account shares a device or a payout account with an account that may not trade on "
                        "the marketplace; an account may not be used to keep trading for another one.")


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


def wall(seconds: float | None) -> str:
    """A wall-clock time (sessions, the audit log), UTC."""
    return "-" if seconds is None else when(int(seconds * 1000))


def humanize(name: str) -> str:
    """`order_brushing` -> `Order brushing`."""
    return name.replace("_", " ").capitalize()


def compact(value: Any, limit: int = 400) -> str:
    """A value in one short line."""
    text = value if isinstance(value, str) else json.dumps(rounded(value), ensure_ascii=False,
                                                           separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit] + " …"


def number(value: float) -> str:
    """A measured number for people: four significant digits.

    >>> number(3.14159), number(0.0004567), number(123456.7)
    ('3.142', '0.0004567', '123,457')
    """
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def money(value: float, currency: str | None = None) -> str:
    """Money to the cent, with its currency when the evidence names one.

    >>> money(6499.999999999995, "USD")
    '6,500.00 USD'
    """
    return f"{value:,.2f}" + (f" {currency}" if currency else "")


def rounded(value: Any) -> Any:
    """Floats inside any value rounded to four significant digits (for nested evidence)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def actor_url(actor: str, page: str = "actors") -> str:
    return f"/{page}/{quote(actor, safe=':')}"


def ref_url(ref: str) -> str:
    return "/violations?" + urlencode({"ref": ref})


def _link(url: str, text: str) -> Markup:
    return Markup('<a href="{}">{}</a>').format(url, text)


def matched_terms(evidence: dict[str, Any]) -> list[str]:
    """The words a text detector matched, as written and as its rule spells them."""
    terms: list[str] = []
    for key in MATCH_LIST_KEYS:
        for m in evidence.get(key) or []:
            if isinstance(m, str):
                terms.append(m)
            elif isinstance(m, dict):
                terms += [m[k] for k in ("as_written", "term") if isinstance(m.get(k), str)]
    return sorted({t for t in terms if t.strip()}, key=len, reverse=True)


def highlight(text: str, terms: list[str]) -> Markup:
    """`text` escaped, each occurrence of a term (any case) in <mark>.

    >>> str(highlight("Pay me on <WhatsApp>", ["whatsapp"]))
    'Pay me on &lt;<mark>WhatsApp</mark>&gt;'
    """
    if not terms:
        return escape(text)
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    out, last = Markup(""), 0
    for m in pattern.finditer(text):
        out += escape(text[last:m.start()]) + Markup("<mark>{}</mark>").format(m.group(0))
        last = m.end()
    return out + escape(text[last:])


def evidence_value(value: Any, key: str, evidence: dict[str, Any], terms: list[str]) -> Markup:
    """One fact of the evidence for a reviewer (see the module docstring)."""
    if TIME_KEYS.search(key) and isinstance(value, int) and value > 10**11:
        return escape(when(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and MONEY_KEYS.search(key):
        return escape(money(value, evidence.get("currency") if isinstance(evidence.get("currency"), str) else None))
    if isinstance(value, float):
        return escape(number(value))
    if key in LINKED_KEYS:
        ids = value if isinstance(value, list) else [value]
        return Markup(", ").join(_link(ref_url(i), i) if isinstance(i, str) else escape(compact(i)) for i in ids)
    if isinstance(value, str) and ACTOR_REF.fullmatch(value):
        return _link(actor_url(value), value)
    if key in TEXT_KEYS:
        texts = value if isinstance(value, list) else [value]
        return Markup("<br>").join(highlight(t, terms) if isinstance(t, str) else escape(compact(t)) for t in texts)
    if key in MATCH_LIST_KEYS and isinstance(value, list):
        return Markup(", ").join(Markup("<mark>{}</mark>").format(t) for t in matched_terms({key: value})) \
            or escape(compact(value))
    return escape(plain(value))


def plain(value: Any, limit: int = 400) -> str:
    """A nested value in words, not JSON: objects as `key value; ...`, lists comma-separated.

    >>> plain({"price_ratio": 3.14159, "ids": ["L1", "L2"], "ok": True})
    'price ratio 3.142; ids L1, L2; ok yes'
    """
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = number(value)
    elif isinstance(value, dict):
        text = "; ".join(f"{k.replace('_', ' ')} {plain(v, limit)}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(plain(v, limit) for v in value)
    else:
        text = "-" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + " …"


def evidence_items(evidence: Any) -> list[tuple[str, Markup]]:
    """(key, rendered value) for each fact of a violation's evidence."""
    if not isinstance(evidence, dict):
        return [("evidence", escape(compact(evidence)))]
    terms = matched_terms(evidence)
    return [(key, evidence_value(value, key, evidence, terms)) for key, value in evidence.items()]


def seller_explanation(violation: dict[str, Any]) -> str:
    """The explanation a seller or creator reads: never another account's name or fate."""
    if violation["violation_type"] == "linked_accounts":
        return LINKED_ACCOUNTS_TEXT
    own = violation["actor"]
    return ACTOR_REF.sub(lambda m: m.group(0) if m.group(0) == own else "another account", violation["explanation"])


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


def feature_values(features: Any) -> dict[str, float]:
    """A review entry's feature values (what a dismissal teaches the model).

    >>> feature_values({"a": {"value": 9.5, "z": 2.0}, "b": 3, "violation_id": "v1"})
    {'a': 9.5, 'b': 3.0}
    """
    out = {}
    for name, value in (features or {}).items():
        raw = value.get("value") if isinstance(value, dict) else value
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            out[name] = float(raw)
    return out


def _num(value: Any) -> str:
    if isinstance(value, float):
        return number(value)
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


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when, "day": day, "wall": wall, "humanize": humanize, "compact": compact, "top_features": top_features,
    "evidence_items": evidence_items, "money": money, "number": number, "actor_url": actor_url, "ref_url": ref_url,
    "seller_explanation": seller_explanation, "quote": lambda s: quote(s, safe=":"),
}
