"""Prices as people say them: find the amounts in a sentence, and what each one claims.

"only $9 today", "was 49,99 €", "less than ten bucks" is out of reach, but
"under $10", "1.200 ¥", "£15.50", "12 dollars" and "just 8.50" are read. Each
amount comes with the kind of claim its cue words make: the price now, a
former price ("was", "normally", "retail"), or a bound ("under", "less than").
Decimal commas and dots are told apart the way shoppers do (two digits after
the separator: decimals; three: thousands).
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

NOW, WAS, UNDER = "now", "was", "under"

# A bare "$" is the local dollar sign: the US dollar's, and the peso's, the Canadian or Australian
# dollar's... (`DOLLAR_SIGN`); a prefix names one ("US$", "U$S", "C$", "R$").
LOCAL_DOLLAR = "$"
DOLLAR_SIGN = frozenset(("USD", "ARS", "MXN", "CLP", "COP", "UYU", "CAD", "AUD", "NZD", "SGD", "HKD", "TWD"))
_CURRENCY = {
    "$": LOCAL_DOLLAR, "us$": "USD", "u$s": "USD", "c$": "CAD", "ca$": "CAD", "a$": "AUD", "au$": "AUD",
    "nz$": "NZD", "s$": "SGD", "hk$": "HKD", "r$": "BRL", "mx$": "MXN",
    "usd": "USD", "dollar": "USD", "dollars": "USD", "bucks": "USD",
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "quid": "GBP",
    "¥": "JPY", "jpy": "JPY", "yen": "JPY", "円": "JPY",
    # Spanish (es): "pesos" (and Mexico's "varos") are the local dollar sign's currency; "dólares" the US dollar
    "pesos": LOCAL_DOLLAR, "varos": LOCAL_DOLLAR, "dolares": "USD", "dólares": "USD", "dolar": "USD", "dólar": "USD",
}
_SYMBOLS = "$€£¥"
_NUMBER = r"\d{1,3}(?:[.,\s]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_UNIT = r"usd|eur|gbp|jpy|dollars?|bucks|euros?|pounds?|quid|yen|円|pesos|varos|d[oó]lar(?:es)?"
_AMOUNT = re.compile(
    rf"(?P<pre>\b(?:us|u|ca|c|au|a|nz|s|hk|r|mx)\$s?|[{_SYMBOLS}])\s?(?P<a>{_NUMBER})|(?P<b>{_NUMBER})\s?(?P<post>[{_SYMBOLS}]|(?:{_UNIT})\b)"
    rf"|(?P<c>{_NUMBER})", re.IGNORECASE)
_WAS_CUES = ("was", "were", "normally", "usually", "regularly", "regular price", "originally", "retail",
             "retail price", "retails", "retails at", "list price", "used to be", "worth", "rrp", "before",
             # Spanish (es)
             "antes", "antes a", "antes estaba", "estaba", "estaba a", "estaban a", "costaba", "salia", "valia",
             "precio normal", "precio regular", "precio de lista", "precio original", "precio anterior",
             "normalmente", "habitualmente")
_UNDER_CUES = ("under", "less than", "below", "not even", "lower than", "cheaper than",
               # Spanish (es)
               "menos de", "por debajo de", "debajo de", "ni siquiera", "mas barato que", "menos que")
_ES_NOW_CUES = ("solo", "solamente", "tan solo", "a solo", "por solo", "a tan solo", "por tan solo", "ahora",
                "ahora a", "ahora por", "hoy", "hoy a", "hoy por", "precio", "cuesta", "cuestan", "te sale",
                "te lo dejo en", "lo dejo en", "queda en", "quedan en", "pagas", "pagalo")
_NOW_CUES = ("only", "just", "now", "for", "at", "price", "priced", "costs", "cost", "is", "today", "pay",
             "price is", "priced at", "yours for", *_ES_NOW_CUES)
# A bare number (no currency) is a price only after one of these: "there is 2 left" is not.
_BARE_CUES = ("only", "just", "price", "priced", "costs", "cost", "pay", "price is", "priced at", "yours for",
              *(c for c in _ES_NOW_CUES if c not in ("ahora", "hoy")), *_WAS_CUES, *_UNDER_CUES)
_SAVING_CUES = ("save", "saving", "savings", "discount of", "knock", "cashback", "cash back", "extra",
                # Spanish (es)
                "ahorra", "ahorras", "ahorrate", "te ahorras", "descuento de", "reintegro", "reintegro de")
_SAVING_AFTER = re.compile(r"\s*(?:off|discount|cheaper|less|saving|savings|back"
                           r"|de\s+descuento|de\s+dto|dto|menos|de\s+ahorro|de\s+reintegro)\b")
_CUE_WORDS = 3  # cue words are looked for among this many words before an amount
_DIGIT = re.compile(r"\d")  # what every `_NUMBER` starts with


class Amount(NamedTuple):
    """One price said in a text: the amount, its currency if said, the claim, and where it stands."""

    value: float
    currency: str | None
    kind: str  # NOW, WAS or UNDER
    start: int
    end: int


def parse_number(text: str) -> float | None:
    """A price as written, with decimal commas or dots and thousands separators.

    >>> [parse_number(t) for t in ["9.99", "9,99", "1.200", "1,200", "1 200", "15,50", "12"]]
    [9.99, 9.99, 1200.0, 1200.0, 1200.0, 15.5, 12.0]
    """
    text = text.replace(" ", "")
    separators = [c for c in text if c in ".,"]
    if not separators:
        return float(text) if text.isdigit() else None
    last = max(text.rfind("."), text.rfind(","))
    decimals = len(text) - last - 1
    whole, fraction = text[:last], text[last + 1:]
    whole = whole.replace(".", "").replace(",", "")
    if decimals == 3 and len(separators) >= 1 and not (len(separators) > 1 and separators[-1] != separators[0]):
        return float(whole + fraction)  # "1.200", "1,200,000": thousands
    try:
        return float(f"{whole}.{fraction}")
    except ValueError:
        return None


def amounts(text: str) -> list[Amount]:
    """Every price a text states, with its currency (when said) and the kind of claim.

    A bare number counts only next to a price cue ("only 8.50", "just 12"):
    "2 colours" or "size 10" are not prices.

    >>> [(a.value, a.currency, a.kind) for a in amounts("This vase was $49.99, today only 19,99 €!")]
    [(49.99, '$', 'was'), (19.99, 'EUR', 'now')]
    >>> [(a.value, a.kind) for a in amounts("under $10 for the mug, 2 colours, size 10")]
    [(10.0, 'under')]
    >>> [(a.value, a.currency) for a in amounts("just 1.200 ¥")]
    [(1200.0, 'JPY')]
    >>> [(a.value, a.currency) for a in amounts("only $26.999, or U$S 19 abroad")]
    [(26999.0, '$'), (19.0, 'USD')]
    >>> amounts("save $5 on the vase, or $3 off the mug")
    []
    """
    if not _DIGIT.search(text):
        return []  # every amount has a digit: most chat has none, and this scan is cheaper than `_AMOUNT`'s
    lowered = text.lower()
    found: list[Amount] = []
    for m in _AMOUNT.finditer(lowered):
        number = m.group("a") or m.group("b") or m.group("c")
        unit = m.group("pre") or m.group("post")
        cue = _nearest_cue(lowered[max(0, m.start() - _CUE_REACH):m.start()])
        if cue in _SAVING_CUES or _SAVING_AFTER.match(lowered, m.end()):
            continue  # "save $5", "$5 off": a saving, not a price
        if unit is None and cue not in _BARE_CUES:
            continue
        value = parse_number(number.strip())
        if value is None or value <= 0:
            continue
        kind = WAS if cue in _WAS_CUES else UNDER if cue in _UNDER_CUES else NOW
        found.append(Amount(value, _CURRENCY.get(unit.strip()) if unit else None, kind, m.start(), m.end()))
    return found


def same_currency(said: str | None, listing_currency: str) -> bool:
    """Whether an amount said in `said` (None: no currency said) can be a price in `listing_currency`.

    >>> same_currency("$", "ARS"), same_currency("$", "EUR"), same_currency("USD", "ARS"), same_currency(None, "JPY")
    (True, False, False, True)
    """
    return said is None or said == listing_currency or (said == LOCAL_DOLLAR and listing_currency in DOLLAR_SIGN)


def _nearest_cue(before: str) -> str | None:
    """The cue nearest to an amount among the last few words of its clause ("it was only $9": "only")."""
    clause = re.split(r"[.!?;:,¡¿]", before)[-1]
    if not clause.isascii():  # "sólo", "costaba": cue words are written without accents
        clause = "".join(c for c in unicodedata.normalize("NFKD", clause) if not unicodedata.combining(c))
    words = re.sub(r"[^a-z0-9 ]+", " ", clause).split()[-_CUE_WORDS:]
    for end in range(len(words), 0, -1):  # the cue ending nearest to the amount, longest first
        for size in (3, 2, 1):
            phrase = " ".join(words[max(0, end - size):end])
            if phrase in _ALL_CUES:
                return phrase
    return None


# Characters before an amount its cue is looked for in: a few words, so a long text costs linear time.
_CUE_REACH = 80
_ALL_CUES = frozenset(_WAS_CUES + _UNDER_CUES + _NOW_CUES + _SAVING_CUES)
