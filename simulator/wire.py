"""Contract events as plain dicts, one builder per type (field order as in CONTRACT.md).

`event_id` is left empty here: the timeline numbers events as they come out.

>>> login(5, "seller:S1", "d-1", "1.2.3.4", "US")["type"]
'account.login'
"""

from __future__ import annotations

from simulator.population import Listing


def listing_upsert(kind: str, ts: int, seller_id: str, listing: Listing, currency: str) -> dict:
    """`listing.created` or `listing.updated`: the listing's full state now."""
    return {"event_id": "", "type": kind, "ts": ts, "seller_id": seller_id, "listing_id": listing.listing_id,
            "title": listing.title, "category": listing.category, "price": listing.price, "currency": currency,
            "brand": listing.brand, "original_price": listing.original_price, "image_hash": listing.image_hash,
            "stock": listing.stock}


def listing_removed(ts: int, seller_id: str, listing_id: str) -> dict:
    return {"event_id": "", "type": "listing.removed", "ts": ts, "seller_id": seller_id, "listing_id": listing_id}


def live_started(ts: int, live_id: str, creator_id: str, seller_id: str | None, title: str) -> dict:
    return {"event_id": "", "type": "live.started", "ts": ts, "live_id": live_id, "creator_id": creator_id,
            "seller_id": seller_id, "title": title}


def live_stats(ts: int, live_id: str, creator_id: str, viewers: int, likes: int, comments: int, shares: int,
               new_followers: int) -> dict:
    return {"event_id": "", "type": "live.stats", "ts": ts, "live_id": live_id, "creator_id": creator_id,
            "viewers": viewers, "likes": likes, "comments": comments, "shares": shares,
            "new_followers": new_followers}


def live_transcript(ts: int, live_id: str, creator_id: str, text: str) -> dict:
    return {"event_id": "", "type": "live.transcript", "ts": ts, "live_id": live_id, "creator_id": creator_id,
            "text": text}


def live_comment(ts: int, live_id: str, creator_id: str, user_id: str, text: str, by_host: bool) -> dict:
    return {"event_id": "", "type": "live.comment", "ts": ts, "live_id": live_id, "creator_id": creator_id,
            "user_id": user_id, "text": text, "by_host": by_host}


def live_ended(ts: int, live_id: str, creator_id: str) -> dict:
    return {"event_id": "", "type": "live.ended", "ts": ts, "live_id": live_id, "creator_id": creator_id}


def order_placed(ts: int, order_id: str, seller_id: str, buyer_id: str, listing_id: str, amount: float,
                 currency: str, creator_id: str | None, live_id: str | None, buyer_account_age_days: int,
                 device_id: str | None, shipping_address_hash: str | None, payment_hash: str | None) -> dict:
    return {"event_id": "", "type": "order.placed", "ts": ts, "order_id": order_id, "seller_id": seller_id,
            "buyer_id": buyer_id, "listing_id": listing_id, "amount": amount, "currency": currency,
            "creator_id": creator_id, "live_id": live_id, "buyer_account_age_days": buyer_account_age_days,
            "device_id": device_id, "shipping_address_hash": shipping_address_hash, "payment_hash": payment_hash}


def order_refunded(ts: int, order_id: str, seller_id: str, buyer_id: str, amount: float,
                   reason: str | None) -> dict:
    return {"event_id": "", "type": "order.refunded", "ts": ts, "order_id": order_id, "seller_id": seller_id,
            "buyer_id": buyer_id, "amount": amount, "reason": reason}


def login(ts: int, actor: str, device_id: str, ip: str, country: str) -> dict:
    return {"event_id": "", "type": "account.login", "ts": ts, "actor": actor, "device_id": device_id, "ip": ip,
            "country": country}


def payout_changed(ts: int, actor: str, payout_hash: str) -> dict:
    return {"event_id": "", "type": "account.payout_changed", "ts": ts, "actor": actor,
            "payout_hash": payout_hash}


def brand_registered(ts: int, brand: str, aliases: list[str]) -> dict:
    """The platform adds a brand to its protected-brand registry (`aliases` left out when there are none)."""
    event = {"event_id": "", "type": "brand.registered", "ts": ts, "brand": brand}
    if aliases:
        event["aliases"] = list(aliases)
    return event
