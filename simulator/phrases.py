"""Words people say: ordinary LIVE talk, and the abusive texts with their obfuscations.

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


# ---- ordinary LIVE talk --------------------------------------------------------

HOST_LINES = (
    "tap the cart to grab it", "link in the shop tab", "use the coupon in the live",
    "only a few left in stock so don't wait", "this one comes in three colors", "shipping is free today",
    "let me show you the inside", "welcome in everyone, say hi in the comments", "we'll do a giveaway at 1k likes",
    "this is our best seller by far", "I'm wearing a size medium here", "that price is only for the next ten minutes",
    "hit follow so you see the next drop", "let me read some comments", "okay next item, this one is new",
    "look at the stitching on this", "it fits true to size", "the coupon stacks with the bundle deal",
    "we restock on Fridays", "if it's sold out add it to your wishlist", "this comes gift wrapped",
    "I'll pin it at the top of the cart", "let me zoom in so you can see the texture", "thanks for the follow!",
    "we ship within two days", "returns are free within 30 days", "okay let's do a quick poll",
)
HOST_COMMENTS = (
    "welcome everyone!", "coupon code LIVE10 is in the cart", "pinned the link in the shop tab",
    "thanks for the support ❤️", "giveaway winner announced at the end!", "sizes are in the listing photos",
    "restock coming Friday", "next item in 2 minutes",
)
VIEWER_COMMENTS = (
    "how much?", "does it come in black?", "❤️❤️❤️", "just ordered!", "size?", "shipping to Texas?",
    "love this", "first time here 👋", "can you show the back?", "is this real leather?", "😍😍",
    "price pls", "restock when?", "bought two!", "hi from London", "what's the material?", "so cute",
    "can you try it on?", "is the coupon still working?", "mine arrived yesterday, love it", "🔥🔥🔥",
    "which color is best?", "do you ship to Canada?", "got it!", "how long is shipping?", "wow",
    "is it machine washable?", "hello!!", "add to cart done ✅", "can you show it next to your hand?",
)
LIVE_TITLES = (
    "{cat} haul and deals", "Friday flash deals", "New drops: {cat}", "Q&A + giveaway", "Restock day! {cat}",
    "Try-on live", "Late night {cat} sale", "Unboxing new arrivals", "Weekend markdowns", "Best sellers live",
)
LIKE_GOAL_LINES = ("let's hit 10k likes and I'll drop a coupon", "tap tap tap, like goal time!")
FOLLOW_PUSH_LINES = ("follow for part two!", "new followers get a surprise, hit follow")

# ---- hard negatives -----------------------------------------------------------------

VIEWER_CONTACT_ASKS = (
    "do you have whatsapp?", "can I pay on venmo?", "what's your telegram", "can I message you outside the app?",
    "do you have a number I can text?", "whatsapp pls",
)
HOST_DECLINES_COMMENTS = (
    "sorry, we only take orders here in the shop 🙏", "everything goes through the cart so you're protected",
    "no outside orders, sorry! tap the cart", "please order in the live, that's the only way we sell",
)
HOST_DECLINES_LINES = (
    "we don't do outside chats, everything goes through the cart so you're protected",
    "I can't take orders anywhere else, please use the shop tab",
    "for your safety all orders go through the app, I won't message you privately",
)
HONEST_HEALTH_LINES = (
    "this moisturizer helps dry skin", "it's gentle enough for sensitive skin",
    "I put this on after the gym when my shoulders are sore", "the SPF 30 is nice for everyday wear",
    "this vitamin C serum gives a nice glow", "chamomile tea, I drink it before bed to wind down",
    "the foam roller feels great on tight calves", "it's fragrance free so it won't irritate",
    "I take the magnesium at night, it's part of my routine", "aloe gel is soothing after too much sun",
)
HONEST_HEALTH_TITLES = (  # (title, category)
    ("Moisturizing Hand Cream for Dry, Cracked Skin", "beauty"), ("Soothing Aloe Vera Gel - After Sun Care", "beauty"),
    ("Fragrance-Free Body Lotion for Sensitive Skin", "beauty"), ("Chamomile Bedtime Herbal Tea, 20 Bags", "health"),
    ("Cooling Muscle Rub for Sore Muscles After Workouts", "health"),
)

# ---- off-platform solicitation ------------------------------------------------------

SOLICITATION_HOST_LINES = (
    "DM me on whatsapp for the real price", "pay via venmo and I ship today, no app fees",
    "call me 555 0134 two two and we sort it out", "add me on telegram @{handle}, it's cheaper there",
    "message me on instagram and we do it outside the app", "send it by cashapp {handle} and get ten percent off",
    "join my whatsapp group, the link is in my bio", "text me five five five oh one three four for wholesale",
    "pay with paypal friends and family and skip the fees",
)
SOLICITATION_HOST_COMMENTS = (
    "DM me on whatsapp +1 555 013 4422", "venmo @{handle} for 20% off", "telegram: @{handle} for the real deals",
    "cheaper if you pay by zelle, message me", "whatsapp me, number in my bio",
)
SOLICITATION_TITLE_SUFFIXES = (
    "text me on WhatsApp for better price", "DM telegram @{handle} for wholesale", "pay via zelle, save 10%",
    "cheaper direct, call 555 0134 22", "order on whatsapp only",
)
# The contact words an abuser disguises (each appears in lower case above).
SOLICITATION_KEYWORDS = ("whatsapp", "telegram", "venmo", "zelle", "cashapp", "instagram", "paypal")

# ---- misleading claims -------------------------------------------------------------------

MISLEADING_HOST_LINES = (
    "this tea cures diabetes, my aunt stopped her meds", "you will lose 10kg in a week, guaranteed",
    "guaranteed $500 a day with this course, I'm serious", "it's FDA approved so it's totally safe for everyone",
    "it kills 99% of viruses inside your body", "this serum reverses hair loss in 3 days",
    "doctors don't want you to know this cures cancer", "clinically proven to cure anxiety in a week",
    "you'll make back the price in one day, guaranteed income",
)
MISLEADING_TITLES = (  # (title, category)
    ("Slim Detox Tea - Lose 10kg in a Week", "health"), ("Herbal Blood Sugar Capsules - Cures Diabetes", "health"),
    ("FDA Approved Immune Booster Gummies", "health"), ("Passive Income Course - Guaranteed $500 a Day", "books"),
    ("Miracle Hair Serum - Regrow Hair in 7 Days Guaranteed", "beauty"),
    ("Anti-Virus Mineral Drops - Kills 99% of Viruses", "health"),
    ("Keto Burn Pills - Lose 20 lbs Without Diet", "health"),
    ("Arthritis Cure Copper Bracelet, Clinically Proven", "jewelry"),
)

# ---- counterfeit and prohibited listings ----------------------------------------------

REPLICA_WORDS = ("Replica", "1:1", "AAA quality", "mirror copy", "inspired", "dupe", "high copy", "master copy")

# (banned class, keyword that gets disguised, title template with {kw}, listing category, price range USD)
PROHIBITED_ITEMS = (
    ("weapons", "gun", "9mm {kw} pistol with ammo", "sports", (350, 900)),
    ("weapons", "firearm", "{kw} parts kit, untraceable", "sports", (200, 600)),
    ("weapons", "switchblade", "{kw} automatic knife", "sports", (40, 120)),
    ("weapons", "silencer", "{kw} kit for rifle, fits most", "sports", (150, 450)),
    ("drugs", "cocaine", "{kw} 1g pure, discreet shipping", "health", (60, 150)),
    ("drugs", "xanax", "{kw} bars 2mg no prescription", "health", (30, 90)),
    ("drugs", "oxycodone", "{kw} 30mg pills x20", "health", (80, 300)),
    ("drugs", "fentanyl", "{kw} patches", "health", (50, 200)),
    ("wildlife", "ivory", "genuine {kw} carved bangle", "jewelry", (200, 1200)),
    ("wildlife", "rhino horn", "{kw} powder 10g", "health", (300, 2000)),
    ("wildlife", "tiger skin", "real {kw} rug", "home", (900, 4000)),
    ("wildlife", "pangolin", "{kw} scales for medicine", "health", (100, 500)),
    ("documents", "fake id", "{kw} any state, scannable", "collectibles", (80, 250)),
    ("documents", "passport", "real registered {kw}, any country", "collectibles", (900, 3000)),
    ("documents", "counterfeit money", "{kw} 1:1 bills, passes pen test", "collectibles", (100, 400)),
)


def handle(rng: random.Random) -> str:
    """An outside-app username, e.g. "deals_by_mia22"."""
    first = rng.choice(("deals", "shop", "real", "vip", "plug", "lux"))
    second = rng.choice(("mia", "tony", "kay", "zed", "lux", "ace"))
    return f"{first}_{second}{rng.randint(1, 99)}"


def disguise_contact(text: str, style: str) -> str:
    """Disguise the first contact keyword found in `text` (any letter case).

    >>> disguise_contact("text me on WhatsApp now", "spaced")
    'text me on W h a t s A p p now'
    """
    lowered = text.lower()
    for keyword in SOLICITATION_KEYWORDS:
        at = lowered.find(keyword)
        if at >= 0:
            end = at + len(keyword)
            return text[:at] + obfuscate(text[at:end], style) + text[end:]
    return text
