"""Text normalisation shared by every detector that reads words.

One place turns titles, transcripts and comments into comparable text, so a
word list is written once and is robust to case, accents, Unicode
look-alikes, invisible characters and decoration.
"""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def normalize(text: str) -> str:
    """Lower-case NFKC text without invisible characters or accents.

    >>> normalize("Ｔote\u200b BAG – Café")
    'tote bag – cafe'
    """
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """The alphabetic words of `text` after normalisation (digits, emoji, punctuation dropped).

    >>> words("Phone case 12 🔥 - Blue!!")
    ['phone', 'case', 'blue']
    """
    return _WORD.findall(normalize(text))


def title_signature(title: str) -> str:
    """Order-insensitive signature of a title: near-duplicates that differ only
    by numbers, emoji, punctuation or word order share it.

    >>> title_signature("Blue phone case 2 🔥") == title_signature("Phone case BLUE #7")
    True
    """
    return " ".join(sorted(set(words(title))))
