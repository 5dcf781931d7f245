"""Text: the shared normaliser and the detectors that read words.

One place turns titles, transcripts and comments into comparable text, so a
word list is written once (in `config/shopguard.toml`) and is robust to the
ways people disguise words: case, accents, fullwidth and other compatibility
forms, Cyrillic/Greek look-alike letters, zero-width characters, leetspeak
(``c0c41n3``), punctuation inside a word (``t.e.l.e.g.r.a.m``, ``fire-arm``),
letters spelled one by one (``w h a t s a p p``) and stretched letters
(``whatsaaapp``).

How matching works, and why it is cheap and precise:

* `normalized(text)` folds the text once into canonical *tokens* (digits
  kept, clause breaks kept as a ``|`` token) and aligned *keys* (leetspeak
  folded, ``l``/``1`` read as ``i``, repeated letters collapsed). It is cached,
  so every detector that reads the same event shares one normalisation.
* `PhraseMatcher` compiles a phrase list once into a dict keyed by first key;
  an event whose keys share nothing with that dict (almost every event)
  costs one C-level set test. Matching is on whole tokens, so "gun" never
  matches inside "begun" and "ivory" not inside "ivory-coloured" (a hyphen
  joins the two words into one token). Joined forms (``firearm`` for "fire
  arm", ``rhinohorn``) and simple plurals are compiled in as variants.
* Only words spelled letter by letter are searched as substrings, because
  there the word boundaries are exactly what the writer hid.

Detectors here: `ProhibitedListing` (banned goods in listing titles),
`OffPlatformSolicitation` (steering buyers to pay or talk elsewhere) and
`MisleadingClaims` (medical, weight-loss, earnings and certification claims).
Each reads listing titles (the seller is the actor) and LIVE host speech and
host comments (the creator is the actor); a viewer's comment is never the
creator's violation. A finding is issued once per actor and finding per
cool-down; the state is just that cool-down, created at the first finding.

Cost (2-core dev machine, under load): about 1 µs per text-bearing event for
all three detectors on the simulated stream, where texts repeat; about 5 µs
when every text is new (normalisation ~2.5 µs, shared by the detectors).

Bounded work for hostile texts: everything is linear in the text's length.
A text is normalised once and every detector shares that pass (texts too
long for the cache share it through `_LAST_LONG`); what is asked of it
again and again (the text lower-cased, whether a phrase stands in it as
written, which clause a token is in) is worked out once per text
(`Normalized.memo`); cues around a match are found by bisection, not by
scanning every cue. Evidence quotes at most `MAX_QUOTED_MATCHES` matches and,
for a text over `EVIDENCE_TEXT_CHARS`, its beginning and an excerpt around
each quoted match, with the text's length (`text_length`).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate, product
from typing import Any, ClassVar, Iterable, NamedTuple, Sequence

import msgspec

from detectors.registry import register
from detectors.base import CoolDown, Signal, clamp01
from pipeline.contract.events import ListingCreated, ListingUpdated, LiveComment, LiveStarted, LiveTranscript

# ---- folding: one character at a time ------------------------------------------

# Invisible format characters that can be slipped inside a word.
_INVISIBLE = dict.fromkeys(map(ord, (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069"
    "\u206a\u206b\u206c\u206d\u206e\u206f\u3164\ufeff\uffa0")), None)

# Look-alike letters from other scripts, after lower-casing (NFKC already folds
# fullwidth, mathematical and circled letters). Cyrillic, Greek, a few Latin
# and Armenian forms that pass for Latin letters.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "з": "3", "и": "u", "к": "k", "м": "m", "н": "h", "о": "o",
    "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "ѕ": "s", "і": "i", "ї": "i",
    "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ү": "y", "ɡ": "g", "ɑ": "a", "ı": "i",
    "ɩ": "i", "ſ": "s", "ʟ": "l", "ո": "n", "ս": "u", "օ": "o", "ց": "g", "զ": "q",
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o",
    "ρ": "p", "σ": "o", "ς": "c", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
})
# Typographic punctuation NFKC keeps, read like its ASCII form when tokenising
# (an apostrophe or a dash inside a word joins it).
_TYPOGRAPHIC = str.maketrans({"’": "'", "‘": "'", "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "•": ".",
                              "·": ".", "“": '"', "”": '"', "«": '"', "»": '"'})
# Characters whose presence shows a deliberate disguise (for evidence and confidence).
_DISGUISE = frozenset(chr(c) for c in _INVISIBLE) | frozenset(
    ch for c in _CONFUSABLES if chr(c).isalpha() for ch in (chr(c), chr(c).upper()))


def _fold(text: str) -> str:
    """Lower-case NFKC text with look-alikes mapped to Latin, no invisibles, no accents."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).lower().translate(_CONFUSABLES)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def normalize(text: str) -> str:
    """Lower-case NFKC text without invisible characters, look-alikes or accents.

    >>> normalize("Ｔote\u200b BAG – Café")
    'tote bag – cafe'
    >>> normalize("wһаtsаpp")  # Cyrillic look-alikes
    'whatsapp'
    """
    return _fold(text)


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


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


# ---- canonical tokens ---------------------------------------------------------------
#
# Every transcript, comment and title goes through here, so this is written for
# speed: C-level str/bytes operations on the whole text, and a per-token cache
# for the keys. An ordinary ASCII text meets one small regular expression.

# Punctuation inside a word joins it (t.e.l.e.g.r.a.m, fire-arm, don't, deals_mia,
# 555-0134); a dot that ends a sentence ". " is a clause break.
_IN_WORD = b".-_*'`~^+"
# Sentence punctuation becomes a clause break token "|": negation and "near"
# never reach across it.
_CLAUSE_CHARS = b",;:!?()[]{}\"|\n\r"
_KEEP = b"@$%"  # leetspeak letters (wh@tsapp, ca$h), handles (@deals) and amounts ($500, 99%)


def _ascii_table() -> bytes:
    table = bytearray(b" " * 256)
    for c in range(128):
        ch = bytes([c])
        if ch.isalnum() or ch in _KEEP:
            table[c] = ord(ch.lower())
        elif ch in _CLAUSE_CHARS:
            table[c] = ord("|")
    return bytes(table)


_TO_TOKENS = _ascii_table()
# A number glued to a unit is two tokens: "10kg" -> "10 kg" (a grammar rule of
# measurements, not a policy list); leetspeak like "c0c41n3" is left alone.
_DIGIT_LETTER = re.compile(r"\d[a-z]")
_NUMBER_UNIT = re.compile(r"\b(\d+)(kgs?|kilos?|g|mg|mcg|ml|l|lbs?|oz|mm|cm|m|k|x|pcs|pc|days?|hrs?|h)\b")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")

# Keys: leetspeak read as letters, l/1/i as one letter, repeats collapsed.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "l": "i"})
_REPEATS = re.compile(r"(.)\1+")
_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_SIZE = 50_000
_KEY_CACHE_MAX_LEN = 64  # longer tokens (a hostile run of letters) are keyed but not kept

CLAUSE_BREAK = "|"


def _key(word: str) -> str:
    """The matching key of one canonical token: "Wh@tsaaapp" and "whatsapp" share one.

    >>> _key("wh@tsaaapp"), _key("te1egram"), _key("c0c41n3")
    ('whatsap', 'teiegram', 'cocaine')
    """
    key = _KEY_CACHE.get(word)
    if key is None:
        key = _REPEATS.sub(r"\1", word.translate(_LEET))
        if len(word) <= _KEY_CACHE_MAX_LEN:
            if len(_KEY_CACHE) >= _KEY_CACHE_SIZE:
                _KEY_CACHE.clear()  # words are Zipf-distributed: the common ones come back at once
            _KEY_CACHE[word] = key
    return key


class Normalized(NamedTuple):
    """A text folded for matching (a tuple: built for every event, so cheap to build).

    `tokens` keep digits (for phone numbers, amounts and evidence); `keys` are
    aligned with them one to one and are what phrases are matched against.
    `spelled` lists (token index, key) of words that were spelled letter by
    letter. `folded` is True when look-alike or invisible characters were
    removed (a sign of deliberate disguise). `memo` keeps what detectors ask
    of this text more than once, worked out at the first asking.
    """

    tokens: tuple[str, ...]
    keys: tuple[str, ...]
    spelled: tuple[tuple[int, str], ...]
    folded: bool
    has_at: bool  # an "@" in the text: a handle or an e-mail address may be there
    memo: dict[Any, Any]

    @property
    def text(self) -> str:
        """The normalised text, for evidence."""
        return " ".join(self.tokens)

    def clause_of(self, i: int) -> int:
        """Which clause token position `i` is in: the clause breaks before it (one pass per text)."""
        breaks = self.memo.get("clauses")
        if breaks is None:
            breaks = self.memo["clauses"] = list(accumulate(map(CLAUSE_BREAK.__eq__, self.tokens), initial=0))
        return breaks[i]

    def written_as(self, original: str, phrase: str) -> bool:
        """Whether `phrase` stands in `original` (the text this is of) as written, case aside."""
        memo = self.memo
        found = memo.get(("written", phrase))
        if found is None:
            lowered = memo.get("lowered")
            if lowered is None:
                lowered = memo["lowered"] = original.lower()
            found = memo[("written", phrase)] = phrase.lower() in lowered
        return found


def _join_spelled(tokens: list[str]) -> tuple[list[str], list[int]]:
    """Join runs of three or more one-character tokens ("w h a t s a p p")."""
    out: list[str] = []
    spelled: list[int] = []
    run: list[str] = []
    for tok in tokens + [CLAUSE_BREAK]:
        if len(tok) == 1 and tok != CLAUSE_BREAK:
            run.append(tok)
            continue
        if len(run) >= 3:
            spelled.append(len(out))
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        out.append(tok)
    out.pop()
    return out, spelled


_CACHED_CHARS = 4_096  # longer texts are not kept in the cache (4,096 of them could hold gigabytes)
_LAST_LONG: tuple[str, Normalized] | None = None  # the last long text: the detectors of one event share it


def normalized(text: str) -> Normalized:
    """Fold `text` into canonical tokens and matching keys (cached: detectors share it).

    >>> n = normalized("DM me on W h a t s A p p, or t.e.l.e.g.r.a.m!")
    >>> n.text
    'dm me on whatsapp | or telegram |'
    >>> n.keys[3], n.keys[6]
    ('whatsap', 'teiegram')
    >>> normalized("Genuine іvоrу 🐘 bangle").tokens  # Cyrillic look-alikes, an emoji
    ('genuine', 'ivory', 'bangle')
    >>> normalized("c0c41n3 1g, lose 10kg").tokens
    ('c0c41n3', '1', 'g', '|', 'lose', '10', 'kg')
    >>> normalized("c0c41n3 1g").keys[0] == normalized("cocaine").keys[0]
    True
    """
    global _LAST_LONG
    if len(text) <= _CACHED_CHARS:
        return _normalized_cached(text)
    last = _LAST_LONG
    if last is not None and last[0] is text:
        return last[1]
    norm = _normalize(text)
    _LAST_LONG = (text, norm)
    return norm


@lru_cache(maxsize=4096)
def _normalized_cached(text: str) -> Normalized:
    return _normalize(text)


def _normalize(text: str) -> Normalized:
    if text.isascii():
        s, was_folded = text.lower(), False
    else:
        folded = _fold(text)
        s = folded if folded.isascii() else _NON_ASCII.sub(" ", folded.translate(_TYPOGRAPHIC))
        was_folded = not _DISGUISE.isdisjoint(text)
    if ". " in s:
        s = s.replace(". ", " | ")
    s = s.encode().translate(_TO_TOKENS, _IN_WORD).decode()
    if CLAUSE_BREAK in s:
        s = s.replace(CLAUSE_BREAK, " | ")
    if _DIGIT_LETTER.search(s):
        s = _NUMBER_UNIT.sub(r"\1 \2", s)
    tokens = s.split()
    spelled: tuple[tuple[int, str], ...] = ()
    if 1 in map(len, tokens) and list(map(len, tokens)).count(1) >= 3:
        tokens, at = _join_spelled(tokens)
        spelled = tuple((i, _key(tokens[i])) for i in at if not tokens[i].isdigit())
    keys = tuple(map(_KEY_CACHE.get, tokens))  # C-level lookups; misses filled in below
    if None in keys:
        keys = tuple(map(_key, tokens))
    return Normalized(tuple(tokens), keys, spelled, was_folded, "@" in s, {})


# ---- phrase matching ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """A phrase found at tokens [start, end) of a `Normalized` text."""

    phrase: str
    start: int
    end: int
    spelled: bool = False

    def written(self, norm: Normalized) -> str:
        """The matched words as they stand in the normalised text."""
        return " ".join(norm.tokens[self.start:self.end])


def _groupings(keys: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every way to write a phrase with some adjacent words run together.

    >>> _groupings(("rhino", "horn"))
    [('rhino', 'horn'), ('rhinohorn',)]
    """
    out = []
    for joins in product((False, True), repeat=len(keys) - 1):
        words = [keys[0]]
        for join, key in zip(joins, keys[1:]):
            if join:
                words[-1] = _key(words[-1] + key)
            else:
                words.append(key)
        out.append(tuple(words))
    return out


# Words spelled letter by letter are searched for phrases this long or longer
# only: a short key ("ig", "me") turns up inside too many spelled runs by chance.
_MIN_SPELLED_KEY = 3


class PhraseMatcher:
    """A phrase list compiled once; finds its phrases in normalised texts.

    Phrases are written plainly in config ("rhino horn", "fda approved"); the
    matcher also finds them obfuscated, run together, hyphenated, stretched or
    with a plural "s"/"es".

    >>> m = PhraseMatcher(["gun", "rhino horn", "fda approved"])
    >>> [x.phrase for x in m.find(normalized("R h i n o  h o r n powder, FDA-approved"))]
    ['rhino horn', 'fda approved']
    >>> m.find(normalized("It has begun")), m.any(normalized("9mm g.u.n"))
    ([], True)
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        self.phrases = tuple(dict.fromkeys(p for p in phrases if p.strip()))
        index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        compact: dict[str, str] = {}
        # Leetspeak folds digits into letters, so "ar15" would find "Aris":
        # a phrase written with digits needs as many digits in the text.
        self._digits = {p: sum(c.isdigit() for c in p) for p in self.phrases}
        for phrase in self.phrases:
            keys = tuple(k for k in normalized(phrase).keys if k != CLAUSE_BREAK)
            if not keys:
                continue
            for variant in _groupings(keys):
                for last in dict.fromkeys((variant[-1], _key(variant[-1] + "s"), _key(variant[-1] + "es"))):
                    seq = variant[:-1] + (last,)
                    index.setdefault(seq[0], []).append((seq, phrase))
            if len("".join(keys)) >= _MIN_SPELLED_KEY:
                compact.setdefault(_key("".join(keys)), phrase)
        for candidates in index.values():  # longest first: "crack cocaine" before "crack"
            candidates.sort(key=lambda c: -len(c[0]))
        self._index = index
        self._compact = compact
        self.firsts: frozenset[str] = frozenset(index)
        self._in_spelled = re.compile("|".join(map(re.escape, sorted(compact, key=len, reverse=True)))) \
            if compact else None

    def __repr__(self) -> str:
        return f"PhraseMatcher({len(self.phrases)} phrases)"

    def may_match(self, norm: Normalized) -> bool:
        """Cheap pre-check: False means `find` would return nothing."""
        return bool(norm.spelled) or not self.firsts.isdisjoint(norm.keys)

    def find(self, norm: Normalized) -> list[Match]:
        """Every phrase occurrence (longest at each position), in text order."""
        if not self.may_match(norm):
            return []
        keys, tokens, index = norm.keys, norm.tokens, self._index
        found: list[Match] = []
        if not self.firsts.isdisjoint(norm.keys):
            for i, key in enumerate(keys):
                candidates = index.get(key)
                if candidates is None:
                    continue
                for seq, phrase in candidates:
                    end = i + len(seq)
                    if keys[i:end] == seq and self._digits_fit(phrase, tokens[i:end]):
                        found.append(Match(phrase, i, end))
                        break
        if norm.spelled and self._in_spelled is not None:
            taken = {m.start for m in found}
            for i, run in norm.spelled:
                hit = self._in_spelled.search(run)
                if hit and i not in taken:
                    found.append(Match(self._compact[hit.group()], i, i + 1, spelled=True))
            found.sort(key=lambda m: m.start)
        return found

    def _digits_fit(self, phrase: str, written: tuple[str, ...]) -> bool:
        """Digits in the text are leetspeak only inside words, and a phrase's own digits must be there."""
        text = "".join(written)
        if text.isdigit():
            return False
        need = self._digits[phrase]
        return not need or sum(c.isdigit() for c in text) >= need

    def any(self, norm: Normalized) -> bool:
        """True if any phrase occurs."""
        return self.may_match(norm) and bool(self.find(norm))


@lru_cache(maxsize=256)
def phrase_matcher(phrases: tuple[str, ...]) -> PhraseMatcher:
    """A compiled matcher per distinct phrase list (detectors are built once per shard)."""
    return PhraseMatcher(phrases)


def _matcher(phrases: Sequence[str]) -> PhraseMatcher:
    return phrase_matcher(tuple(phrases))


# ---- context around a match -----------------------------------------------------------


def same_clause(norm: Normalized, a: int, b: int) -> bool:
    """No clause break between token positions a and b."""
    return norm.clause_of(a) == norm.clause_of(b)


def _starting(cues: Sequence[Match], lo: int, hi: int) -> Iterable[Match]:
    """The cues (in text order, as `PhraseMatcher.find` gives them) that start within [lo, hi)."""
    for i in range(bisect_left(cues, lo, key=_start), len(cues)):
        if cues[i].start >= hi:
            return
        yield cues[i]


def _start(m: Match) -> int:
    return m.start


def preceded_by(norm: Normalized, start: int, cues: Sequence[Match], window: int) -> bool:
    """A cue (cues in text order) ends within `window` tokens before `start`, in the same clause.

    >>> n = normalized("sorry, we only sell here, no whatsapp")
    >>> neg = PhraseMatcher(["no", "not"]).find(n)
    >>> preceded_by(n, n.tokens.index("whatsapp"), neg, 3)
    True
    """
    return any(m.end <= start and same_clause(norm, m.end, start) for m in _starting(cues, start - window, start + 1))


def followed_by(norm: Normalized, end: int, cues: Sequence[Match], window: int) -> bool:
    """A cue (cues in text order) starts within `window` tokens after `end`, in the same clause."""
    return any(same_clause(norm, end, m.start) for m in _starting(cues, end, end + window))


def overlaps(a: Match, others: Sequence[Match]) -> bool:
    return any(o.start < a.end and a.start < o.end for o in others)


def overlaps_any(a: Match, others: Sequence[Match], longest: int) -> bool:
    """`overlaps` for many `others` in text order, none longer than `longest` tokens: by bisection."""
    return any(o.end > a.start for o in _starting(others, a.start - longest + 1, a.end))


def disguised(original: str, phrase: str, match: Match, norm: Normalized) -> bool:
    """The writer hid the phrase: it does not stand in the text as written."""
    return match.spelled or norm.folded or not norm.written_as(original, phrase)


# ---- what the detectors share ---------------------------------------------------------


@dataclass(slots=True)
class TextFindings:
    """One actor's state in a text detector: when each finding was last issued."""

    actor: str
    cooldown: CoolDown = field(default_factory=lambda: CoolDown(0))


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a text detector found in one text (at tokens `span` of its normalised form)."""

    kind: str
    term: str
    written: str
    confidence: float
    details: dict[str, Any] = field(default_factory=dict)
    span: tuple[int, int] = (0, 0)


# Evidence stays small whatever the text: at most this many matches quoted, and a
# text longer than this many characters is quoted by its beginning and an
# excerpt of EXCERPT_TOKENS tokens either side of each quoted match.
MAX_QUOTED_MATCHES = 10
EVIDENCE_TEXT_CHARS = 1_000
EXCERPT_TOKENS = 12
MAX_WRITTEN_CHARS = 200  # a match as written (a word spelled letter by letter can be a whole text)


@dataclass(frozen=True, slots=True)
class _Said:
    """Whose text an event carries and where it was said or written."""

    actor: str
    text: str
    where: str  # listing id or live id
    source: str  # event type


def _text_of(event: Any) -> str | None:
    """The words an event carries that its actor wrote or said (None for a viewer's comment)."""
    text = getattr(event, "text", None)
    if text is not None:
        return text if type(event) is not LiveComment or event.by_host else None
    return getattr(event, "title", None)


def _said(event: Any, text: str) -> _Said:
    """Who wrote or said `text` (an event `_text_of` accepted), and where."""
    if type(event) is ListingCreated or type(event) is ListingUpdated:
        return _Said(f"seller:{event.seller_id}", text, event.listing_id, event.type)
    return _Said(f"creator:{event.creator_id}", text, event.live_id, event.type)


class _TextDetector:
    """Reads one text per event, finds things in it, issues them once per cool-down."""

    name: ClassVar[str]
    violation_type: ClassVar[str]
    event_types: ClassVar[frozenset[type]]
    _cooldown_ms: int

    def entity(self, event: Any) -> str | None:
        """The actor whose words these are: the seller of a listing, the creator of a LIVE
        (None for a viewer's comment: it is never the creator's violation)."""
        cls = type(event)
        if cls is ListingCreated or cls is ListingUpdated:
            return f"seller:{event.seller_id}"
        if cls is LiveComment and not event.by_host:
            return None
        return f"creator:{event.creator_id}"

    def on_event(self, state: TextFindings | None, event: Any) -> tuple[TextFindings | None, list[Signal]]:
        text = _text_of(event)
        if text is None:
            return state, []
        findings = self.find(text, type(event) is ListingCreated or type(event) is ListingUpdated)
        if not findings:
            return state, []
        said = _said(event, text)
        if state is None:
            state = TextFindings(said.actor, CoolDown(self._cooldown_ms))
        signals = []
        for key, group in self._group(findings).items():
            if state.cooldown.ready(key, event.ts):
                signals.append(self._signal(said, event.ts, key, group))
        return state, signals

    def find(self, text: str, listing: bool = False) -> list[Finding]:
        """Everything this detector finds in one text (pure: no state, no event); `listing`: a listing's title."""
        raise NotImplementedError

    def _group(self, findings: list[Finding]) -> dict[str, list[Finding]]:
        """Findings of one text by cool-down key (default: one per violation type)."""
        return {self.violation_type: findings}

    def _signal(self, said: _Said, ts: int, key: str, group: list[Finding]) -> Signal:
        best = max(group, key=lambda f: f.confidence)
        quoted = group[:MAX_QUOTED_MATCHES]
        evidence = {
            "source": said.source,
            ("listing_id" if said.source.startswith("listing") else "live_id"): said.where,
            "matched": [{"kind": f.kind, "term": f.term, "as_written": _cut(f.written, MAX_WRITTEN_CHARS), **f.details}
                        for f in quoted],
            **_quoted_text(said.text, quoted),
        }
        if len(group) > len(quoted):
            evidence["matched_total"] = len(group)
        return Signal(
            actor=said.actor,
            violation_type=self.violation_type,
            detector=self.name,
            subject=f"{said.where}:{key}",
            detected_at=ts,
            window_start=ts,
            window_end=ts,
            confidence=clamp01(best.confidence),
            evidence=evidence,
            explanation=self._explain(said, best),
        )

    def _explain(self, said: _Said, finding: Finding) -> str:
        raise NotImplementedError


def _quoted_text(text: str, quoted: list[Finding]) -> dict[str, Any]:
    """The text for evidence: whole when short; else its beginning, an excerpt around each match, its length.

    >>> long = "Intro. " * 300 + "Pay me on Venmo now " + "outro " * 300
    >>> q = _quoted_text(long, [Finding("channel", "venmo", "venmo", 0.9, span=(603, 604))])
    >>> q["text_length"], len(q["text"]), q["normalized_text"]
    (3920, 1001, '| intro | intro | intro | intro | pay me on venmo now outro outro outro outro outro outro outro outro outro outro outro')
    """
    norm = normalized(text)
    if len(text) <= EVIDENCE_TEXT_CHARS:
        return {"text": text, "normalized_text": norm.text}
    spans: list[list[int]] = []
    for start, end in sorted(f.span for f in quoted):
        lo, hi = max(0, start - EXCERPT_TOKENS), min(len(norm.tokens), end + EXCERPT_TOKENS)
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    excerpts = [_cut(" ".join(norm.tokens[lo:hi]), 2 * MAX_WRITTEN_CHARS) for lo, hi in spans]
    return {"text": _cut(text, EVIDENCE_TEXT_CHARS), "normalized_text": " … ".join(excerpts), "text_length": len(text)}


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars] + "…"


# ---- prohibited_listing ---------------------------------------------------------------


class BannedItems(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One group of banned items (one `[[detectors.prohibited_listing.items]]` entry).

    Parameters
    ----------
    kind
        The banned class reported in evidence and used as the cool-down key
        (weapons, drugs, wildlife, documents...).
    terms
        Phrases naming a banned item.
    requires_any
        If not empty, a term counts only when one of these words is also in
        the title (for words with an innocent meaning, e.g. "ivory" the colour).
    """

    kind: str
    terms: list[str]
    requires_any: list[str] = []


class ProhibitedListingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Word lists of `ProhibitedListing` (table `[detectors.prohibited_listing]`).

    Parameters
    ----------
    items
        The banned items, by class.
    harmless
        Phrases that contain a banned word but name an allowed product
        ("massage gun", "passport holder"); a term inside one does not count.
    negations
        Words that, just before a term, say the item is not there ("no ivory").
    negation_window_tokens
        How many tokens before a term a negation reaches.
    cooldown_seconds
        One violation per seller (and category) and banned class within this period.
    """

    items: list[BannedItems]
    harmless: list[str]
    negations: list[str]
    negation_window_tokens: int
    cooldown_seconds: float


@register
class ProhibitedListing(_TextDetector):
    """An item the marketplace does not allow, named in a listing title, disguised or not.

    Examples
    --------
    >>> cfg = ProhibitedListingConfig(
    ...     items=[BannedItems("weapons", ["gun", "firearm"]), BannedItems("drugs", ["cocaine"]),
    ...            BannedItems("wildlife", ["ivory"], requires_any=["carved", "genuine"])],
    ...     harmless=["massage gun"], negations=["no"], negation_window_tokens=3, cooldown_seconds=86400)
    >>> det = ProhibitedListing(cfg)
    >>> def listing(i, title):
    ...     return ListingCreated(event_id=f"e{i}", ts=i * 60_000, seller_id="S1", listing_id=f"L{i}",
    ...         title=title, category="sports", price=99.0, currency="USD", brand=None,
    ...         original_price=None, image_hash=None)
    >>> state, found = None, []
    >>> for i, t in enumerate(["Deep tissue massage gun", "Ivory linen tablecloth", "C0C41N3 1g pure",
    ...                        "Genuine i v o r y carved bangle", "cocaine 2g"]):
    ...     state, signals = det.on_event(state, listing(i, t))
    ...     found += signals
    >>> [(s.detected_at, s.evidence["matched"][0]["kind"], s.evidence["matched"][0]["term"]) for s in found]
    [(120000, 'drugs', 'cocaine'), (180000, 'wildlife', 'ivory')]
    """

    name: ClassVar[str] = "prohibited_listing_v1"
    violation_type: ClassVar[str] = "prohibited_listing"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "prohibited_listing"
    Config: ClassVar[type] = ProhibitedListingConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
    event_types: ClassVar[frozenset[type]] = frozenset({ListingCreated, ListingUpdated})

    def __init__(self, config: ProhibitedListingConfig) -> None:
        self.config = config
        self._cooldown_ms = int(config.cooldown_seconds * 1000)
        self._terms = _matcher([t for item in config.items for t in item.terms])
        # term -> (its item, the matcher of the item's qualifiers or None)
        self._item_of: dict[str, tuple[BannedItems, PhraseMatcher | None]] = {}
        for item in config.items:
            qualifiers = _matcher(item.requires_any) if item.requires_any else None
            for term in item.terms:
                self._item_of.setdefault(term, (item, qualifiers))
        self._harmless = _matcher(config.harmless)
        self._negations = _matcher(config.negations)

    def find(self, text: str, listing: bool = False) -> list[Finding]:
        norm = normalized(text)
        if not self._terms.may_match(norm):
            return []
        hits = self._terms.find(norm)
        if not hits:
            return []
        harmless = self._harmless.find(norm)
        longest_harmless = max((m.end - m.start for m in harmless), default=0)
        negations = self._negations.find(norm)
        window = self.config.negation_window_tokens
        found: dict[str, Finding] = {}
        qualifier_of: dict[str, Match | None] = {}  # per banned kind: looked for once per text
        for hit in hits:
            item, qualifiers = self._item_of[hit.phrase]
            if (item.kind in found or overlaps_any(hit, harmless, longest_harmless)
                    or preceded_by(norm, hit.start, negations, window)):
                continue
            qualifier = None
            if qualifiers is not None:
                if item.kind not in qualifier_of:
                    qualifier_of[item.kind] = next(iter(qualifiers.find(norm)), None)
                qualifier = qualifier_of[item.kind]
                if qualifier is None:
                    continue
            hidden = disguised(text, hit.phrase, hit, norm)
            confidence = (0.8 if qualifier else 0.9) + (0.05 if hidden else 0.0)
            details = {"obfuscated": hidden}
            if qualifier is not None:
                details["qualifier"] = qualifier.phrase
            found[item.kind] = Finding(item.kind, hit.phrase, hit.written(norm), confidence, details,
                                       (hit.start, hit.end))
        return list(found.values())

    def _group(self, findings: list[Finding]) -> dict[str, list[Finding]]:
        return {f.kind: [f] for f in findings}

    def _explain(self, said: _Said, finding: Finding) -> str:
        return (f"Your listing {said.where} offers \"{finding.term}\" ({finding.kind}), "
                f"which may not be sold on the marketplace.")


# ---- off_platform_solicitation --------------------------------------------------------


class OffPlatformSolicitationConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Word lists and thresholds of `OffPlatformSolicitation` (table `[detectors.off_platform_solicitation]`).

    Parameters
    ----------
    channels
        Apps and payment rails outside the platform (whatsapp, venmo...). A
        mention counts when the text also shows intent (`intent_cues`, a
        handle, a phone number or an e-mail address).
    off_platform_phrases
        Phrases that steer off the platform on their own ("outside the app").
    intent_cues
        Words that turn a channel mention into steering (me, pay, dm, order...).
    contact_phrases
        Phrases that turn an @handle or e-mail address into steering ("add me").
    phone_cues
        Words that turn a long number into a phone number given out (call, text...).
    number_words
        Spoken digits, for numbers said aloud ("five five five oh one").
    min_phone_digits, max_phone_digits
        Digits in a row (spoken or written) that make a phone number.
    negations
        Words just before a mention that decline or quote it ("no whatsapp",
        "we don't", "someone asked").
    after_negations
        Phrases just after a mention that decline it ("venmo is not allowed").
    negation_window_tokens
        How many tokens a negation reaches.
    disclaimers
        Words that, in the same clause, make a mention a warning ("scammers
        ask you to pay outside the app").
    cooldown_seconds
        One violation per actor within this period.
    better_deal_cues
        A better price ("cheaper", "save", "20% off"): offered together with a
        private contact (`private_contact_cues` or a contact detail), it is a
        deal made off the platform ("cheaper, DM", "@shop_mo for 20% off"),
        whatever channel the text names or hides.
    private_contact_cues
        Words that ask buyers to talk privately ("dm", "message me").
    in_app_cues
        Words that keep a deal inside the app ("code", "cart"): with one of
        them a better price and a DM are an ordinary promotion.
    """

    channels: list[str]
    off_platform_phrases: list[str]
    intent_cues: list[str]
    contact_phrases: list[str]
    phone_cues: list[str]
    number_words: dict[str, str]
    min_phone_digits: int
    max_phone_digits: int
    negations: list[str]
    after_negations: list[str]
    negation_window_tokens: int
    disclaimers: list[str]
    cooldown_seconds: float
    better_deal_cues: list[str] = []
    private_contact_cues: list[str] = []
    in_app_cues: list[str] = []


_EMAIL_END = ("com", "net", "org", "co", "io", "me", "info", "biz", "us", "uk")
_TAKEN_OFF = frozenset(("off", "discount", "cheaper", "less"))
# A user name written without its "@": words joined by an underscore ("moda_pablo69"), which
# ordinary speech never writes.
_BARE_HANDLE = re.compile(r"(?<![\w@])[^\W\d_][^\W_]*(?:_[^\W_]+)+")


@register
class OffPlatformSolicitation(_TextDetector):
    """Steering buyers to pay or talk outside the platform, by a host or in a listing title.

    Examples
    --------
    >>> cfg = OffPlatformSolicitationConfig(
    ...     channels=["whatsapp", "venmo"], off_platform_phrases=["outside the app"],
    ...     intent_cues=["me", "pay"], contact_phrases=["add me"], phone_cues=["call", "text"],
    ...     number_words={"five": "5", "oh": "0", "one": "1", "three": "3", "four": "4", "two": "2"},
    ...     min_phone_digits=7, max_phone_digits=15, negations=["no", "dont"], after_negations=["not allowed"],
    ...     negation_window_tokens=4, disclaimers=["scam"], cooldown_seconds=21600)
    >>> det = OffPlatformSolicitation(cfg)
    >>> def said(i, text, by_host=True):
    ...     return LiveComment(event_id=f"c{i}", ts=i * 1000, live_id="V1", creator_id="C1",
    ...                        user_id="C1" if by_host else "U9", text=text, by_host=by_host)
    >>> state, found = None, []
    >>> for i, (text, host) in enumerate([("do you have whatsapp?", False), ("sorry, no whatsapp, tap the cart", True),
    ...                                   ("text me five five five oh one three four", True),
    ...                                   ("pay me on v3nm0", True)]):
    ...     state, signals = det.on_event(state, said(i, text, host))
    ...     found += signals
    >>> [(s.actor, s.detected_at, s.evidence["matched"][0]["kind"]) for s in found]
    [('creator:C1', 2000, 'phone_number')]
    """

    name: ClassVar[str] = "off_platform_solicitation_v1"
    violation_type: ClassVar[str] = "off_platform_solicitation"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "off_platform_solicitation"
    Config: ClassVar[type] = OffPlatformSolicitationConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
    event_types: ClassVar[frozenset[type]] = frozenset(
        {ListingCreated, ListingUpdated, LiveTranscript, LiveComment, LiveStarted})

    def __init__(self, config: OffPlatformSolicitationConfig) -> None:
        self.config = config
        self._cooldown_ms = int(config.cooldown_seconds * 1000)
        self._channels = _matcher(config.channels)
        self._phrases = _matcher(config.off_platform_phrases)
        self._intent = _matcher(config.intent_cues)
        self._contact = _matcher(config.contact_phrases)
        self._phone_cues = _matcher(config.phone_cues)
        self._negations = _matcher(config.negations)
        self._after_negations = _matcher(config.after_negations)
        self._disclaimers = _matcher(config.disclaimers)
        self._digits = {_key(w): d for w, d in config.number_words.items()}
        self._deals = _matcher(config.better_deal_cues)
        self._private = _matcher(config.private_contact_cues + config.contact_phrases)
        self._in_app = _matcher(config.in_app_cues)
        self._triggers = (self._channels.firsts | self._phrases.firsts | self._phone_cues.firsts
                          | self._deals.firsts)

    def find(self, text: str, listing: bool = False) -> list[Finding]:
        norm = normalized(text)
        if (self._triggers.isdisjoint(norm.keys) and not norm.spelled and not norm.has_at
                and "_" not in text and "%" not in text):
            return []
        handles, emails = self._addresses(norm, text)
        phones = self._phones(norm) if self._phone_cues.any(norm) else []
        channels = self._channels.find(norm)
        phrases = self._phrases.find(norm)
        deals = self._better_deals(norm)
        if not (channels or phrases or phones or handles or emails or deals):
            return []
        negations = self._negations.find(norm)
        after = self._after_negations.find(norm)
        disclaimed = {norm.clause_of(d.start) for d in self._disclaimers.find(norm)}  # clauses with a disclaimer
        window = self.config.negation_window_tokens

        def declined(m: Match) -> bool:
            return (preceded_by(norm, m.start, negations, window)
                    or followed_by(norm, m.end, after, window)
                    or norm.clause_of(m.start) in disclaimed)

        contact = [m for m in phones + handles + emails if not declined(m)]
        asks_contact = self._contact.any(norm)
        intent = bool(contact) or asks_contact or self._intent.any(norm)
        found: list[Finding] = []
        for m in phrases:
            if not declined(m):
                found.append(self._finding("off_platform_phrase", m, text, norm, 0.85))
        for m in channels:
            if intent and not declined(m):
                found.append(self._finding("channel", m, text, norm, 0.9 if contact else 0.85))
        for m in contact:
            if m.phrase == "phone number":
                found.append(self._finding("phone_number", m, text, norm, 0.85))
            elif channels or asks_contact or listing:  # a listing has no reason to carry a contact
                found.append(self._finding("handle" if m.phrase == "@handle" else "email", m, text, norm, 0.85))
        if not found and deals and (contact or self._private.any(norm)) and not self._in_app.any(norm):
            deal = next((m for m in deals if not declined(m)), None)
            if deal is not None:
                found.append(self._finding("private_deal", deal, text, norm, 0.8))
        return found

    def _better_deals(self, norm: Normalized) -> list[Match]:
        """Better-price cues, and percentages taken off ("20% off", "save 10%")."""
        found = self._deals.find(norm) if not self._deals.firsts.isdisjoint(norm.keys) else []
        tokens = norm.tokens
        for i, tok in enumerate(tokens):
            if len(tok) > 1 and tok[-1] == "%" and tok[:-1].isdigit() and (
                    (i + 1 < len(tokens) and tokens[i + 1] in _TAKEN_OFF) or (i and tokens[i - 1] == "save")):
                found.append(Match("percent off", i, i + 1))
        return found

    def _finding(self, kind: str, m: Match, text: str, norm: Normalized, confidence: float) -> Finding:
        hidden = kind not in ("phone_number", "handle", "email") and disguised(text, m.phrase, m, norm)
        return Finding(kind, m.phrase, m.written(norm), min(0.95, confidence + (0.05 if hidden else 0.0)),
                       {"obfuscated": hidden}, (m.start, m.end))

    def _addresses(self, norm: Normalized, text: str) -> tuple[list[Match], list[Match]]:
        """@handles (also written without the "@": `_BARE_HANDLE`) and e-mail addresses
        (the dots of an address are joined by the normaliser)."""
        handles, emails = [], []
        if norm.has_at:
            for i, tok in enumerate(norm.tokens):
                at = tok.find("@")
                if at == 0 and len(tok) >= 4:
                    handles.append(Match("@handle", i, i + 1))
                elif at > 0 and tok.endswith(_EMAIL_END) and len(tok) - at > 4:
                    emails.append(Match("e-mail address", i, i + 1))
        if "_" in text:
            bare = {normalize(m.group()).replace("_", "") for m in _BARE_HANDLE.finditer(text)}
            handles += [Match("@handle", i, i + 1) for i, tok in enumerate(norm.tokens) if tok in bare]
        return handles, emails

    def _phones(self, norm: Normalized) -> list[Match]:
        """Runs of digits, written or spoken, long enough to be a phone number.

        A run of many short written numbers is a list ("sizes 8 9 10 11 12"),
        not a phone number: those are written in groups of 3-4 digits, or said
        digit by digit.
        """
        found = []
        start, digits, short_groups = None, "", 0
        for i, (tok, key) in enumerate(zip(norm.tokens + ("|",), norm.keys + ("|",))):
            d = self._digits.get(key)
            if d is None and (tok[0].isdigit() or tok[0] == "o"):
                spoken = tok.replace("o", "0")  # "555o134": a spelled-out "oh"
                d = spoken if spoken.isdigit() else None
                short_groups += d is not None and len(d) <= 2
            if d is not None:
                start = i if start is None else start
                digits += d
                continue
            if (start is not None and short_groups <= 2
                    and self.config.min_phone_digits <= len(digits) <= self.config.max_phone_digits):
                found.append(Match("phone number", start, i))
            start, digits, short_groups = None, "", 0
        return found

    def _explain(self, said: _Said, finding: Finding) -> str:
        if said.source.startswith("listing"):
            return (f"Your listing {said.where} asks buyers to contact or pay you outside the platform; "
                    f"keep chats and payments in the app.")
        return (f"On LIVE {said.where} you asked buyers to contact or pay you outside the platform; "
                f"keep chats and payments in the app.")


# ---- misleading_claims ----------------------------------------------------------------


class ClaimRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One kind of claim (one `[[detectors.misleading_claims.rules]]` entry).

    Parameters
    ----------
    kind
        medical_cure, weight_loss, earnings, false_certification...
    terms
        Phrases that make the claim, or start it ("cures", "fda approved").
    near_all
        Groups of phrases; one of each group must stand within
        `window_tokens` of the term in the same clause ("cures" near
        "diabetes"). `<money>` is an amount ("$500"), `<number>` any number.
    window_tokens
        How far apart term and `near_all` words may be.
    same_clause
        Whether the `near_all` words must stand in the term's clause (false for
        a claim that backs another across a comma: "Cures X, Clinically Proven").
    unless
        Phrases that anywhere in the text make the claim ordinary
        ("money back guarantee", "hand sanitizer").
    """

    kind: str
    terms: list[str]
    near_all: list[list[str]] = []
    window_tokens: int = 6
    same_clause: bool = True
    unless: list[str] = []


class MisleadingClaimsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Claim rules of `MisleadingClaims` (table `[detectors.misleading_claims]`).

    Parameters
    ----------
    rules
        The kinds of claims that are not allowed.
    negations
        Words just before a claim that deny it ("this won't cure anything").
    negation_window_tokens
        How many tokens before a claim a negation reaches.
    cooldown_seconds
        One violation per actor within this period.
    currency_words
        Words that make the number before them an amount (`<money>`), written
        or said ("200 dollars", "thirty thousand yen").
    """

    rules: list[ClaimRule]
    negations: list[str]
    negation_window_tokens: int
    cooldown_seconds: float
    currency_words: list[str] = []


_SPECIAL = ("<money>", "<number>")


# Numbers said in words, for amounts said aloud ("two hundred", "thirty thousand").
_NUMBER_WORDS = frozenset((
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
    "million grand k "
    # Spanish (es): "quinientos dólares", "treinta mil pesos", "dos palos"
    "un uno una dos tres cuatro cinco seis siete ocho nueve diez veinte treinta cuarenta cincuenta sesenta setenta "
    "ochenta noventa cien ciento doscientos trescientos cuatrocientos quinientos seiscientos setecientos "
    "ochocientos novecientos mil millon millones").split())
_NUMBER_AND = frozenset(("and", "y"))  # "two hundred and fifty", "treinta y cinco mil"
_MONEY_SYMBOLS = "$£€¥₩₹₱"
_MAX_NUMBER_WORDS = 4  # "two hundred and fifty thousand": the longest amount read in words


def _is_number(tok: str) -> bool:
    return tok[0].isdigit() or tok in _NUMBER_WORDS


def _is_money(tokens: tuple[str, ...], i: int, currency: frozenset[str]) -> bool:
    """Whether an amount starts at token `i`: "$500", or a number (digits or words) then a currency word."""
    tok = tokens[i]
    if tok[0] in _MONEY_SYMBOLS and any(c.isdigit() for c in tok):
        return True
    if not _is_number(tok):
        return False
    for j in range(i + 1, min(len(tokens), i + 2 + _MAX_NUMBER_WORDS)):
        if tokens[j] in currency:
            return True
        if not (_is_number(tokens[j]) or tokens[j] in _NUMBER_AND):
            return False
    return False


@dataclass(slots=True)
class _Near:
    """One `near_all` group: its phrases, and whether amounts or numbers count."""

    matcher: PhraseMatcher
    money: bool
    number: bool
    currency: frozenset[str] = frozenset()

    def positions(self, norm: Normalized) -> list[Match]:
        found = self.matcher.find(norm)
        for i, tok in enumerate(norm.tokens):
            if not _is_number(tok) and tok[0] not in _MONEY_SYMBOLS:
                continue
            if (self.number and tok[0].isdigit()) or (self.money and _is_money(norm.tokens, i, self.currency)):
                found.append(Match("<money>" if self.money else "<number>", i, i + 1))
            unit = tok.lstrip("0123456789")  # "10kg": the unit glued to its number
            if unit and tok[0].isdigit() and self.matcher.firsts.intersection((_key(unit),)):
                found.append(Match(unit, i, i + 1))
        return found


class _Nearby:
    """One `near_all` group's matches in one text (`_Near.positions`, found once), looked up near a term."""

    def __init__(self, found: list[Match]) -> None:
        self.found = found
        self.by_start = sorted(range(len(found)), key=lambda k: found[k].start)
        self.starts = [found[k].start for k in self.by_start]
        self.longest = max((m.end - m.start for m in found), default=0)

    def first_close(self, norm: Normalized, term: Match, window: int, clause: bool = True) -> Match | None:
        """The first match (in `found` order) not overlapping `term`, fewer than `window` tokens from it,
        in its clause (if `clause`); only the matches that start near the term are looked at."""
        best = None
        lo = bisect_left(self.starts, term.start - window - self.longest + 1)
        for j in range(lo, len(self.starts)):
            if self.starts[j] >= term.end + window:
                break
            k = self.by_start[j]
            m = self.found[k]
            if best is not None and k > best or overlaps(m, [term]):
                continue
            gap = m.start - term.end if m.start >= term.end else term.start - m.end
            if gap < window and (not clause or same_clause(norm, m.start, term.start)):
                best = k
        return None if best is None else self.found[best]


@dataclass(slots=True)
class _Rule:
    config: ClaimRule
    terms: PhraseMatcher
    near: list[_Near]
    unless: PhraseMatcher


@register
class MisleadingClaims(_TextDetector):
    """Medical, weight-loss, earnings or certification claims a host or a listing may not make.

    Examples
    --------
    >>> cfg = MisleadingClaimsConfig(rules=[
    ...     ClaimRule("medical_cure", ["cure", "heal"], near_all=[["diabetes", "cancer"]], window_tokens=5),
    ...     ClaimRule("false_certification", ["fda approved"])],
    ...     negations=["not", "wont"], negation_window_tokens=3, cooldown_seconds=21600)
    >>> det = MisleadingClaims(cfg)
    >>> def line(i, text):
    ...     return LiveTranscript(event_id=f"t{i}", ts=i * 1000, live_id="V1", creator_id="C1", text=text)
    >>> state, found = None, []
    >>> for i, text in enumerate(["this moisturizer helps dry skin", "it won't cure diabetes, see a doctor",
    ...                           "this tea cures diabetes", "and it's FDA-approved"]):
    ...     state, signals = det.on_event(state, line(i, text))
    ...     found += signals
    >>> [(s.actor, s.detected_at, s.evidence["matched"][0]["kind"]) for s in found]
    [('creator:C1', 2000, 'medical_cure')]
    """

    name: ClassVar[str] = "misleading_claims_v1"
    violation_type: ClassVar[str] = "misleading_claims"
    violation_types: ClassVar[tuple[str, ...]] = (violation_type,)
    table: ClassVar[str] = "misleading_claims"
    Config: ClassVar[type] = MisleadingClaimsConfig
    idle_eviction_ms: ClassVar[int | None] = None  # the job's [job] idle_eviction_seconds
    event_types: ClassVar[frozenset[type]] = frozenset(
        {ListingCreated, ListingUpdated, LiveTranscript, LiveComment, LiveStarted})

    def __init__(self, config: MisleadingClaimsConfig) -> None:
        self.config = config
        self._cooldown_ms = int(config.cooldown_seconds * 1000)
        currency = frozenset(word.lower() for word in config.currency_words)
        self._rules = [
            _Rule(rule, _matcher(rule.terms),
                  [_Near(_matcher([p for p in group if p not in _SPECIAL]), "<money>" in group, "<number>" in group,
                         currency)
                   for group in rule.near_all],
                  _matcher(rule.unless))
            for rule in config.rules
        ]
        self._negations = _matcher(config.negations)
        self._triggers = frozenset().union(*(r.terms.firsts for r in self._rules))

    def find(self, text: str, listing: bool = False) -> list[Finding]:
        norm = normalized(text)
        if self._triggers.isdisjoint(norm.keys) and not norm.spelled:
            return []
        negations: list[Match] | None = None
        nearby: dict[int, _Nearby] = {}  # per near group: its matches in this text, found once
        found: list[Finding] = []
        for rule in self._rules:
            if any(f.kind == rule.config.kind for f in found):
                continue  # one finding per kind of claim
            terms = rule.terms.find(norm)
            if not terms or rule.unless.any(norm):
                continue
            if negations is None:
                negations = self._negations.find(norm)
            for term in terms:
                if preceded_by(norm, term.start, negations, self.config.negation_window_tokens):
                    continue
                context = self._context(norm, term, rule, nearby)
                if context is None:
                    continue
                hidden = disguised(text, term.phrase, term, norm)
                start = min([term.start] + [c.start for c in context])
                end = max([term.end] + [c.end for c in context])
                found.append(Finding(rule.config.kind, term.phrase, " ".join(norm.tokens[start:end]),
                                     0.8 + (0.05 if hidden else 0.0),
                                     {"with": [c.phrase for c in context], "obfuscated": hidden}, (start, end)))
                break
        if len(found) > 1:  # several kinds of claim in one breath: stronger evidence
            found = [Finding(f.kind, f.term, f.written, round(min(0.95, f.confidence + 0.05 * (len(found) - 1)), 3),
                             f.details, f.span) for f in found]
        return found

    @staticmethod
    def _context(norm: Normalized, term: Match, rule: _Rule, nearby: dict[int, _Nearby]) -> list[Match] | None:
        """One match of each `near_all` group close to the term in its clause, or None."""
        context = []
        for near in rule.near:
            group = nearby.get(id(near))
            if group is None:
                group = nearby[id(near)] = _Nearby(near.positions(norm))
            close = group.first_close(norm, term, rule.config.window_tokens, rule.config.same_clause)
            if close is None:
                return None
            context.append(close)
        return context

    def _explain(self, said: _Said, finding: Finding) -> str:
        what = {"medical_cure": "a medical", "weight_loss": "a weight-loss", "earnings": "an earnings",
                "false_certification": "a certification"}.get(finding.kind, "a")
        if said.source.startswith("listing"):
            return (f"Your listing {said.where} makes {what} claim (\"{finding.written}\") "
                    f"that products on the marketplace may not make.")
        return (f"On LIVE {said.where} you made {what} claim (\"{finding.written}\") "
                f"that products on the marketplace may not make.")
