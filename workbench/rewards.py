"""What the standing pages show of an actor's rewards: credits, each program, what is missing and by when.

The ledger writes the facts into each standing (`credits`, `programs`,
`program_gaps`); the policy says what each program is and asks for. Both
pages (the seller's or creator's own, and the reviewer's actor page) show
the same view, next to the lessons, so an actor learns how to keep or
regain a reward.
"""

from __future__ import annotations

from typing import Any

from pipeline.enforce.incentives import requirements
from pipeline.enforce.policy import Policy


def rewards_view(actor: str, now: dict[str, Any] | None, history: list[dict[str, Any]],
                 policy: Policy) -> dict[str, Any] | None:
    """The rewards card of `actor`: None when the policy has no incentives for its role."""
    incentives = policy.incentives
    role = actor.partition(":")[0]
    programs = {n: p for n, p in (incentives.programs.items() if incentives else ()) if p.role == role and p.enforced}
    if not programs:
        return None
    rewards = (now or {}).get("rewards") or {}
    held = set(rewards.get("programs", []))
    gaps = {g["program"]: g for g in rewards.get("program_gaps", [])}
    shown = []
    for name, program in programs.items():
        gap = gaps.get(name, {})
        shown.append({
            "name": name, "title": program.title, "benefit": program.benefit, "requires": requirements(program),
            "held": name in held, "missing": gap.get("missing", []), "regain_at": gap.get("regain_at"),
            "known": bool(rewards),  # a standing with rewards was written: what is missing is known
        })
    credits = incentives.credits
    activity = (f"at least {max(1, credits.min_orders)} order(s)" if role == "seller"
                else f"at least {max(1, credits.min_lives)} LIVE(s)")
    return {
        "credits": rewards.get("credits", 0),
        "how_to_earn": (f"You earn {credits.per_clean_period} credits for every {credits.period_days}-day period "
                        f"with {activity} and no enforced violation, up to {credits.cap}. A violation takes "
                        f"some away ({credits.forfeit.low} to {credits.forfeit.critical} by severity); an "
                        f"overturned appeal gives them back."),
        "programs": shown,
        "history": [{**h, "title": programs[h["program"]].title if h["program"] in programs else h["program"]}
                    for h in history[:20]],
    }
