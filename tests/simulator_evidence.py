"""Does each label's evidence event show what `simulator/abuse.py` documents? Checks that read the stream
like a reviewer would (in any world), shared by the simulator tests.

`insufficient_evidence(world, labels, by_actor)` lists the labels whose evidence is missing or does not
show the abuse; `untrue_price_talk` the honest price-talk lines that are not true.
"""

from __future__ import annotations

import collections
import re
import statistics
from collections.abc import Callable

from simulator.world import Currency, World

MINUTE = 60_000

STR, INT, NUM, BOOL, NONE = (str,), (int,), (int, float), (bool,), (type(None),)
LIST = (list,)
# The contract, as a table: field -> allowed Python types (brand.registered: see simulator/__init__.py).
FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "listing.created": {"seller_id": STR, "listing_id": STR, "title": STR, "category": STR, "price": NUM,
                        "currency": STR, "brand": STR + NONE, "original_price": NUM + NONE,
                        "image_hash": STR + NONE, "stock": INT},
    "listing.removed": {"seller_id": STR, "listing_id": STR},
    "brand.registered": {"brand": STR, "aliases": LIST},
    "live.started": {"live_id": STR, "creator_id": STR, "seller_id": STR + NONE, "title": STR},
    "live.stats": {"live_id": STR, "creator_id": STR, "viewers": INT, "likes": INT, "comments": INT,
                   "shares": INT, "new_followers": INT},
    "live.transcript": {"live_id": STR, "creator_id": STR, "text": STR},
    "live.comment": {"live_id": STR, "creator_id": STR, "user_id": STR, "text": STR, "by_host": BOOL},
    "live.ended": {"live_id": STR, "creator_id": STR},
    "order.placed": {"order_id": STR, "seller_id": STR, "buyer_id": STR, "listing_id": STR, "amount": NUM,
                     "currency": STR, "creator_id": STR + NONE, "live_id": STR + NONE,
                     "buyer_account_age_days": INT, "device_id": STR + NONE,
                     "shipping_address_hash": STR + NONE, "payment_hash": STR + NONE},
    "order.refunded": {"order_id": STR, "seller_id": STR, "buyer_id": STR, "amount": NUM, "reason": STR + NONE},
    "account.login": {"actor": STR, "device_id": STR, "ip": STR, "country": STR},
    "account.payout_changed": {"actor": STR, "payout_hash": STR},
}
FIELDS["listing.updated"] = FIELDS["listing.created"]
OPTIONAL = {"aliases"}
POSITIVE = {"price", "amount"}
NON_NEGATIVE = {"stock", "viewers", "likes", "comments", "shares", "new_followers", "buyer_account_age_days"}
PATTERNS = {"image_hash": re.compile(r"[0-9a-f]{16}"), "currency": re.compile(r"[A-Z]{3}"),
            "country": re.compile(r"[A-Z]{2}"), "actor": re.compile(r"(seller|creator):[^\s:]+")}


def contract_problems(event: dict) -> list[str]:
    """What is wrong with one event, per the table above (empty when it is fine)."""
    fields = FIELDS.get(event.get("type"))
    if fields is None:
        return [f"unknown type {event.get('type')!r}"]
    problems = []
    if not isinstance(event.get("event_id"), str) or not 1 <= len(event["event_id"]) <= 128:
        problems.append("event_id")
    if type(event.get("ts")) is not int:
        problems.append("ts")
    expected = set(fields) | {"event_id", "type", "ts"}
    if not expected - OPTIONAL <= set(event) <= expected:
        problems.append(f"fields {sorted(set(event) ^ expected)}")
    for name, types in fields.items():
        if name not in event and name in OPTIONAL:
            continue
        value = event.get(name)
        if type(value) not in types:  # exact types: a bool is not an int here
            problems.append(f"{name}={value!r}")
        elif name in POSITIVE and not value > 0 or name in NON_NEGATIVE and value < 0:
            problems.append(f"{name}={value!r} out of range")
        elif name in PATTERNS and value is not None and not PATTERNS[name].fullmatch(value):
            problems.append(f"{name}={value!r} malformed")
    return problems


def actors_of(event: dict) -> set[str]:
    kind = event["type"]
    if kind.startswith("account."):
        return {event["actor"]}
    if kind.startswith("live."):
        return {f"creator:{event['creator_id']}"}
    if kind.startswith("brand."):
        return set()
    return {f"seller:{event['seller_id']}"}


def index_by_actor(events: list[dict]) -> dict[str, list[dict]]:
    """Each actor's events (first deliveries only) in event-time order."""
    seen, out = set(), collections.defaultdict(list)
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        for actor in actors_of(event):
            out[actor].append(event)
    for events in out.values():
        events.sort(key=lambda e: e["ts"])
    return out


# ---- reading prices, titles and histories --------------------------------------------------------------


def amounts(text: str, currency: Currency) -> list[float]:
    """The amounts said in `text` in one of the world's spoken formats ("$9.99", "1,480 yen", "14,90 €"),
    in the order said (numbers that are not prices, like "SPF 50", are left out)."""
    found: dict[int, float] = {}
    for fmt in currency.say:
        thousands = re.escape(fmt.thousands if fmt.thousands is not None else currency.thousands)
        decimal = re.escape(fmt.decimal if fmt.decimal is not None else currency.decimal)
        number = rf"(\d{{1,3}}(?:{thousands}\d{{3}})+|\d+)(?:{decimal}(\d{{2}}))?"
        head, _, tail = fmt.text.partition("{amount}")
        for match in re.finditer(re.escape(head) + number + re.escape(tail), text):
            whole = re.sub(r"\D", "", match.group(1))
            found.setdefault(match.start(1), float(f"{whole}.{match.group(2) or 0}"))
    return [found[at] for at in sorted(found)]


def _tokens(text: str) -> list[str]:
    """Lower-case words, a possessive "'s" left out ("the dog lead's only £8")."""
    return re.findall(r"[^\W_]+(?:[-'’][^\W_]+)*", re.sub(r"['’]s\b", "", text.lower()))


def _words(text: str) -> set[str]:
    return set(_tokens(text))


def listings_at(events: list[dict], ts: int) -> dict[str, list[dict]]:
    """listing_id -> its listing events up to `ts` (an active listing's last one is its state)."""
    out: dict[str, list[dict]] = collections.defaultdict(list)
    for e in events:
        if e["ts"] > ts:
            break
        if e["type"].startswith("listing."):
            out[e["listing_id"]].append(e)
    return {k: v for k, v in out.items() if v[-1]["type"] != "listing.removed"}


def product_rate(world: World, event: dict) -> float:
    """The going rate of the listing's product type (its category's when no type name is in the title)."""
    category = world.category[event["category"]]
    named = [t for t in category.types if t.name.lower() in event["title"].lower()]
    return category.going_rate * (category.factor(max(named, key=lambda t: len(t.name))) if named else 1.0)


def _evidence_event(label: dict, by_actor: dict, kinds: tuple[str, ...]) -> dict:
    return next(e for e in by_actor[label["actor"]] if e["ts"] == label["evidence_ts"] and e["type"] in kinds)


def _price_history(label: dict, by_actor: dict, listing_id: str) -> list[dict]:
    return [e for e in by_actor[label["actor"]] if e["type"].startswith("listing.")
            and e.get("listing_id") == listing_id and e["ts"] < label["evidence_ts"] and "price" in e]


# ---- one check per type ---------------------------------------------------------------------------


def _engagement_is_bought(world, label, by_actor) -> bool:
    stats = _evidence_event(label, by_actor, ("live.stats",))
    live = [e for e in by_actor[label["actor"]] if e["type"] == "live.stats" and e["live_id"] == stats["live_id"]]
    at = live.index(stats)
    before = live[max(0, at - 15):at - 6] or live[max(0, at - 15):at]
    viewers = statistics.median(e["viewers"] for e in before)
    likes = statistics.mean(e["likes"] for e in before)
    follows = statistics.mean(e["new_followers"] for e in before)
    bought_viewers = stats["viewers"] >= 3 * viewers and stats["likes"] <= 3 * likes + 10
    bought_follows = stats["new_followers"] >= max(5, 8 * follows) and stats["viewers"] <= 2 * viewers
    bought_likes = stats["likes"] >= 5 * max(likes, 1) and stats["viewers"] <= 2 * viewers
    return bought_viewers or bought_follows or bought_likes


def _brushing_is_visible(world, label, by_actor) -> bool:
    """>= 10 orders by then, within the ring's span, paid with three or fewer cards."""
    orders = [e for e in by_actor[label["actor"]] if e["type"] == "order.placed"
              and label["evidence_ts"] - 100 * MINUTE <= e["ts"] <= label["evidence_ts"]]
    cards = collections.Counter(e["payment_hash"] for e in orders)
    return sum(n for _, n in cards.most_common(3)) >= 10


def _gouged(world, label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created", "listing.updated"))
    history = [e for e in _price_history(label, by_actor, event["listing_id"])
               if e["ts"] >= label["evidence_ts"] - 120 * MINUTE] or _price_history(label, by_actor, event["listing_id"])[-1:]
    if event["type"] == "listing.updated" and history:
        return event["price"] >= 2.4 * min(e["price"] for e in history) and event["stock"] > 0
    return event["price"] >= 3.3 * product_rate(world, event)


def _invented_was_price(world, label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created", "listing.updated"))
    history = _price_history(label, by_actor, event["listing_id"])
    was = event["original_price"]
    if not history:
        return was >= 2.4 * product_rate(world, event)
    charged = [e["price"] for e in history]
    if was > max(charged):
        return was >= 1.09 * max(charged)
    # raise-then-discount: the "was" was charged only briefly, right before, well above the price before it
    raised_at = next(e["ts"] for e in history if e["price"] == was)
    before = [e["price"] for e in history if e["ts"] < raised_at]
    return label["evidence_ts"] - raised_at <= 95 * MINUTE and bool(before) and before[-1] * 1.3 <= was \
        and event["price"] <= 1.02 * before[-1]


def _protected_brand(world: World, event: dict) -> str | None:
    if event["brand"] in world.protected:
        return event["brand"]
    title = event["title"].lower()
    return next((b.name for b in world.protected.values()
                 if any(name.lower() in title for name in [b.name, *b.aliases])), None)


def _counterfeit(world, label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created",))
    brand = _protected_brand(world, event)
    if brand is None:
        return False
    category = world.category[event["category"]]
    rate = world.premium_rate(event["category"], brand) * product_rate(world, event) / category.going_rate
    return event["price"] <= 0.21 * rate or any(word in event["title"] for word in world.wording.replica_words)


def _prohibited(world, label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created",))
    tails = [part.strip() for item in world.wording.prohibited_items for part in item.template.split("{kw}")
             if len(part.strip()) >= 2]
    return any(tail in event["title"] or tail.capitalize() in event["title"] for tail in tails)


def _spam_burst(world, label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("listing.created",))
    near = int(event["image_hash"], 16)
    same = [e for e in by_actor[label["actor"]] if e["type"] == "listing.created" and e["image_hash"]
            and bin(int(e["image_hash"], 16) ^ near).count("1") <= 8
            and label["evidence_ts"] - 180 * MINUTE <= e["ts"] <= event["ts"]]
    return len(same) >= 5


def _said_by_host_or_titled(world, label, by_actor) -> bool:
    event = _evidence_event(label, by_actor, ("live.transcript", "live.comment", "listing.created"))
    return event["type"] != "live.comment" or event["by_host"]


def _taken_over(world, label, by_actor) -> bool:
    """A sign-in from a device never seen for the actor, then (within 95 minutes) the payout change."""
    events = by_actor[label["actor"]]
    _evidence_event(label, by_actor, ("account.payout_changed",))
    logins = [e for e in events if e["type"] == "account.login" and e["ts"] <= label["evidence_ts"]]
    for login in logins:
        if label["evidence_ts"] - 95 * MINUTE <= login["ts"] < label["evidence_ts"]:
            earlier = [e for e in logins if e["ts"] < login["ts"]]
            if earlier and all(e["device_id"] != login["device_id"] for e in earlier):
                return True
    return False


def _tied_to_an_earlier_abuser(world, label, by_actor, all_labels) -> bool:
    event = _evidence_event(label, by_actor, ("account.login", "account.payout_changed"))
    key, value = ("device_id", event["device_id"]) if event["type"] == "account.login" else \
        ("payout_hash", event["payout_hash"])
    owners = {e["actor"] for events in by_actor.values() for e in events
              if e.get(key) == value and e["ts"] < event["ts"] and e.get("actor") not in (None, label["actor"])}
    severe = {x["actor"] for x in all_labels if x["violation_type"] in ("prohibited_listing", "counterfeit_listing")
              and x["evidence_ts"] < label["evidence_ts"]}
    first_seen = by_actor[label["actor"]][0]["ts"]
    return bool(owners & severe) and first_seen >= min(x["evidence_ts"] for x in all_labels if x["actor"] in owners)


def talked_listing(world: World, line: dict, by_actor: dict) -> list[dict] | None:
    """The events of the one shop listing that the line names: a run of the line's words that are all
    words of its title and not all of any other title of the shop (as `simulator/price_talk.py` says)."""
    started = next(e for e in by_actor[f"creator:{line['creator_id']}"]
                   if e["type"] == "live.started" and e["live_id"] == line["live_id"])
    shop = listings_at(by_actor[f"seller:{started['seller_id']}"], line["ts"])
    titles = {listing_id: _words(history[-1]["title"]) for listing_id, history in shop.items()}
    said = _tokens(line["text"])
    named = [listing_id for listing_id, title in titles.items()
             if any(not any(set(run) <= other for other_id, other in titles.items() if other_id != listing_id)
                    for run in _runs(said, title) if len(run) >= 2 or len(run[0]) > 3)]
    return shop[named[0]] if len(named) == 1 else None


def _runs(words: list[str], within: set[str]) -> list[list[str]]:
    """Maximal runs of consecutive `words` that are all in `within`."""
    runs, run = [], []
    for word in words + [""]:
        if word in within:
            run.append(word)
        elif run:
            runs.append(run)
            run = []
    return runs


def _false_price_claim(world, label, by_actor) -> bool:
    line = _evidence_event(label, by_actor, ("live.transcript", "live.comment"))
    if line["type"] == "live.comment" and not line["by_host"]:
        return False
    history = talked_listing(world, line, by_actor)
    if history is None:
        return False
    price = history[-1]["price"]
    said = amounts(line["text"], world.currency)
    charged = {e["price"] for e in history}
    below = any(a < price for a in said)
    invented_was = len(said) >= 2 and said[0] not in charged and said[0] > max(charged)
    return below or invented_was


EvidenceCheck = Callable[[World, dict, dict], bool]
CHECKS: dict[str, EvidenceCheck] = {
    "engagement_inflation": _engagement_is_bought, "order_brushing": _brushing_is_visible,
    "price_gouging": _gouged, "fake_discount": _invented_was_price, "counterfeit_listing": _counterfeit,
    "prohibited_listing": _prohibited, "listing_spam": _spam_burst,
    "off_platform_solicitation": _said_by_host_or_titled, "misleading_claims": _said_by_host_or_titled,
    "account_takeover": _taken_over, "misleading_price_claim": _false_price_claim,
}


def insufficient_evidence(world: World, all_labels: list[dict], by_actor: dict[str, list[dict]]) -> list[dict]:
    """Labels whose evidence event is missing or does not show what `simulator/abuse.py` documents."""

    def shows(label: dict) -> bool:
        if label["violation_type"] == "linked_accounts":
            return _tied_to_an_earlier_abuser(world, label, by_actor, all_labels)
        return CHECKS[label["violation_type"]](world, label, by_actor)

    return [label for label in all_labels
            if not any(e["ts"] == label["evidence_ts"] for e in by_actor[label["actor"]]) or not shows(label)]


def untrue_price_talk(world: World, negatives: list[dict], by_actor: dict[str, list[dict]]) -> list[str]:
    """Honest price-talk lines whose amounts are not true of the listing they name (empty: all true)."""
    kinds = {"exact_price_talk", "rounded_up_price_talk", "real_former_price_talk"}
    problems = []
    for entry in negatives:
        if entry["scenario"] not in kinds:
            continue
        for line in by_actor[entry["actor"]]:
            if line["type"] not in ("live.transcript", "live.comment") or not amounts(line["text"], world.currency):
                continue
            if line["type"] == "live.comment" and not line["by_host"]:
                continue
            history = talked_listing(world, line, by_actor)
            if history is None:
                continue  # ordinary talk ("shipping is free over 20")
            price, said = history[-1]["price"], amounts(line["text"], world.currency)
            charged = {e["price"] for e in history}
            if any(a < price for a in said[-1:]) or (len(said) >= 2 and said[0] not in charged):
                problems.append(f"{entry['scenario']}: {line['text']!r} (price {price}, charged {sorted(charged)})")
    return problems
