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
