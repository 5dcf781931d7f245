"""How abusers disguise the words they say or write (the words themselves are each world's data).

Abusers disguise keywords the way real ones do: leetspeak, spacing, dots,
hyphens, Cyrillic look-alike letters and zero-width spaces. `obfuscate` applies
one style to one word; which style is drawn per abuser, so some are blatant and
some take work to read.

>>> obfuscate("gun", "spaced"), obfuscate("telegram", "dotted"), obfuscate("firearm", "hyphen")
('g u n', 't.e.l.e.g.r.a.m', 'fire-arm')
>>> obfuscate("cocaine", "leet")
'c0c41n3'
>>> obfuscate("ivory", "homoglyph") == "ivory", len(obfuscate("ivory", "zero_width"))
(False, 7)
"""

from __future__ import annotations

import random

# ---- obfuscation ---------------------------------------------------------------

_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_HOMOGLYPH = {"a": "\u0430", "o": "\u043e", "e": "\u0435", "c": "\u0441", "p": "\u0440", "x": "\u0445",
              "i": "\u0456", "y": "\u0443"}
ZERO_WIDTH_SPACE = "\u200b"

OBFUSCATION_STYLES = ("plain", "leet", "spaced", "dotted", "hyphen", "homoglyph", "zero_width", "shouty")


def obfuscate(word: str, style: str) -> str:
    """Disguise one word in one of `OBFUSCATION_STYLES`."""
    if style == "plain":
        return word
    if style == "leet":
        return "".join(_LEET.get(ch, ch) for ch in word)
    if style == "spaced":
        return " ".join(word)
    if style == "dotted":
        return ".".join(word)
    if style == "hyphen":
        cut = 4 if len(word) > 5 else max(1, len(word) // 2)
        return f"{word[:cut]}-{word[cut:]}"
    if style == "homoglyph":
        return "".join(_HOMOGLYPH.get(ch, ch) for ch in word)
    if style == "zero_width":
        return ZERO_WIDTH_SPACE.join([word[:2], word[2:4], word[4:]]) if len(word) > 4 else word + ZERO_WIDTH_SPACE
    if style == "shouty":
        return word.upper()
    raise ValueError(f"unknown obfuscation style {style!r}; expected one of {OBFUSCATION_STYLES}")


def disguise_phrase(phrase: str, keyword: str, style: str) -> str:
    """Obfuscate every occurrence of `keyword` (lower case) inside `phrase`."""
    return phrase.replace(keyword, obfuscate(keyword, style))


# ---- contacts ---------------------------------------------------------------------


def handle(rng: random.Random, words: tuple[list[str], list[str]]) -> str:
    """An outside-app username from a world's `handle_words`, e.g. "deals_mia22"."""
    first = rng.choice(words[0])
    second = rng.choice(words[1])
    return f"{first}_{second}{rng.randint(1, 99)}"


def disguise_contact(text: str, style: str, keywords: list[str]) -> str:
    """Disguise the first contact keyword found in `text` (any letter case).

    >>> disguise_contact("text me on WhatsApp now", "spaced", ["telegram", "whatsapp"])
    'text me on W h a t s A p p now'
    """
    lowered = text.lower()
    for keyword in keywords:
        at = lowered.find(keyword)
        if at >= 0:
            end = at + len(keyword)
            return text[:at] + obfuscate(text[at:end], style) + text[end:]
    return text


# ---- the historical constants ---------------------------------------------------------------------

# Words were module constants before worlds existed; they are the `home` world's wording now
# (`simulator/worlds/home.toml`). Code written against the constants still reads them here.
_HOME_WORDING = {
    "HOST_LINES": "host_lines", "HOST_COMMENTS": "host_comments", "VIEWER_COMMENTS": "viewer_comments",
    "LIVE_TITLES": "live_titles", "LIKE_GOAL_LINES": "like_goal_lines", "FOLLOW_PUSH_LINES": "follow_push_lines",
    "VIEWER_CONTACT_ASKS": "viewer_contact_asks", "HOST_DECLINES_COMMENTS": "host_declines_comments",
    "HOST_DECLINES_LINES": "host_declines_lines", "HONEST_HEALTH_LINES": "honest_health_lines",
    "HONEST_HEALTH_TITLES": "honest_health_titles", "SOLICITATION_HOST_LINES": "solicitation_host_lines",
    "SOLICITATION_HOST_COMMENTS": "solicitation_host_comments",
    "SOLICITATION_TITLE_SUFFIXES": "solicitation_title_suffixes", "SOLICITATION_KEYWORDS": "solicitation_keywords",
    "MISLEADING_HOST_LINES": "misleading_host_lines", "MISLEADING_TITLES": "misleading_titles",
    "REPLICA_WORDS": "replica_words", "PROHIBITED_ITEMS": "prohibited_items",
}


def __getattr__(name: str):
    """`phrases.HOST_LINES` and the other historical names: the `home` world's words, as tuples.

    >>> import simulator.phrases as phrases
    >>> phrases.HONEST_HEALTH_TITLES[0][1], phrases.PROHIBITED_ITEMS[0][:2]
    ('beauty', ('weapons', 'gun'))
    """
    field = _HOME_WORDING.get(name)
    if field is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from simulator.world import load_world

    return tuple(_as_tuple(item) for item in getattr(load_world("home").wording, field))


def _as_tuple(item):
    """A record of the world file as the tuple the constant held ((title, category), (banned, keyword, ...))."""
    if isinstance(item, str):
        return item
    return tuple(tuple(v) if isinstance(v, list) else v for v in (getattr(item, f) for f in item.__struct_fields__))
