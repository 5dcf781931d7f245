"""`shopguard diff`: what would change, and for whom, if the policy changed.

Runs the real flow over the same events once per policy (exactly as `replay`
does, into two folders) and compares, actor by actor, what each policy
produced: violations (enforced and shadow) by type, enforcement actions by
kind, the highest level reached, and the final level, points and health. It
answers "what happens if we lower this threshold?" before the change ships::

    shopguard diff events.jsonl --policy config/policy.toml --policy strict.toml
    shopguard diff events.jsonl --policy a.toml --policy b.toml --json

Policy A is the baseline; `+` and `-` say what an actor gains or loses under B.

It also weighs what a policy costs the business: per side, the actors that
end up holding each incentive program or not (who would gain or lose it
under B), and the order value (the sum of `order.placed` amounts in the
events, by currency) of the actors each policy restricts or takes an
incentive from, so an analyst sees risk reduced against sales affected.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import load
from pipeline.enforce.policy import Policy, load_policy

GOOD = "good"


@dataclass
class ActorOutcome:
    """What one policy did to one actor over the whole file."""

    violations: Counter = field(default_factory=Counter)  # enforced, by type
    shadow: Counter = field(default_factory=Counter)  # shadow mode, by type
    actions: Counter = field(default_factory=Counter)  # by action kind
    peak_step: int = -1  # highest ladder step reached (-1: never left good standing)
    peak_level: str = GOOD
    final_level: str = GOOD
    final_points: int = 0
    final_health: int = 1000
    restricted: bool = False  # any restriction in force at some point (or a listing removed)
    programs: set = field(default_factory=set)  # incentive programs held at the end (shadow ones apart)
    lost: set = field(default_factory=set)  # programs revoked at some point and not held at the end

    def as_dict(self) -> dict[str, Any]:
        return {
            "violations": dict(sorted(self.violations.items())), "shadow_violations": dict(sorted(self.shadow.items())),
            "actions": dict(sorted(self.actions.items())), "peak_level": self.peak_level,
            "final_level": self.final_level, "final_points": self.final_points, "final_health": self.final_health,
        }


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()]


def outcomes(out_dir: Path, policy: Policy) -> dict[str, ActorOutcome]:
    """Each actor's outcome from the output files of one run under `policy`."""
    by_actor: dict[str, ActorOutcome] = {}

    def get(actor: str) -> ActorOutcome:
        return by_actor.setdefault(actor, ActorOutcome())

    for v in _read_jsonl(out_dir / "violations.jsonl"):
        (get(v["actor"]).violations if v["enforced"] else get(v["actor"]).shadow)[v["violation_type"]] += 1
    for a in _read_jsonl(out_dir / "actions.jsonl"):
        get(a["actor"]).actions[a["action"]] += 1
        if a["action"] == "listing_removal":
            get(a["actor"]).restricted = True
    steps = {rung.level: i for i, rung in enumerate(policy.ladder)}
    standings = sorted(_read_jsonl(out_dir / "standing.jsonl"), key=lambda s: s["ts"])  # stable: per-actor order kept
    for s in standings:
        o = get(s["actor"])
        step = steps.get(s["level"], -1)
        if step > o.peak_step:
            o.peak_step, o.peak_level = step, s["level"]
        o.final_level, o.final_points, o.final_health = s["level"], s["active_points"], s["health"]
        o.restricted = o.restricted or bool(s["restrictions"])
    incentives = sorted(_read_jsonl(out_dir / "incentives.jsonl"), key=lambda r: r["ts"])
    for r in incentives:
        if r.get("shadow"):
            continue  # a shadow program is computed, not in force: it costs nobody anything
        o = get(r["actor"])
        if r["change"] == "revoked":
            o.programs.discard(r["program"])
            o.lost.add(r["program"])
        else:
            o.programs.add(r["program"])
    for o in by_actor.values():
        o.lost -= o.programs
    return by_actor


def order_value(events: str) -> dict[str, dict[str, float]]:
    """Each actor's order value in the events (by currency): sellers their orders, creators the ones credited to them.

    Reads `order.placed` lines only; the replay has dead-lettered anything else wrong with them.
    """
    value: dict[str, dict[str, float]] = {}
    with open(events, "rb") as f:
        for line in f:
            if b'"order.placed"' not in line:
                continue
            try:
                e = json.loads(line)
                amount, currency = float(e["amount"]), str(e["currency"])
                actors = ["seller:" + e["seller_id"]] + (["creator:" + e["creator_id"]] if e.get("creator_id") else [])
            except (ValueError, KeyError, TypeError):
                continue
            for actor in actors:
                per = value.setdefault(actor, {})
                per[currency] = per.get(currency, 0.0) + amount
    return value


def _value_of(actors: set[str], value: dict[str, dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for actor in actors:
        for currency, amount in value.get(actor, {}).items():
            total[currency] = round(total.get(currency, 0.0) + amount, 2)
    return dict(sorted(total.items()))


def incentive_impact(results: tuple[dict[str, ActorOutcome], dict[str, ActorOutcome]],
                     value: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per side: holders and losers of each program, and the order value of the actors restricted or losing one;
    per program, the actors who would gain or lose it under B."""
    sides = {}
    for label, result in zip("ab", results):
        restricted = {a for a, o in result.items() if o.restricted}
        losing = {a for a, o in result.items() if o.lost}
        programs = sorted({p for o in result.values() for p in o.programs | o.lost})
        sides[label] = {
            "holding": {p: sum(1 for o in result.values() if p in o.programs) for p in programs},
            "losing": {p: sum(1 for o in result.values() if p in o.lost) for p in programs},
            "actors_restricted": len(restricted), "actors_losing_incentives": len(losing),
            "order_value_restricted": _value_of(restricted, value),
            "order_value_losing_incentives": _value_of(losing, value),
            "order_value_affected": _value_of(restricted | losing, value),
        }
    a, b = results
    programs = sorted({p for r in results for o in r.values() for p in o.programs})
    changes = {}
    for program in programs:
        held_a = {x for x, o in a.items() if program in o.programs}
        held_b = {x for x, o in b.items() if program in o.programs}
        if held_a != held_b:
            changes[program] = {"gain": sorted(held_b - held_a), "lose": sorted(held_a - held_b),
                                "order_value_losing": _value_of(held_a - held_b, value)}
    return {"sides": sides, "programs": changes}


def run_policy(events: str, policy_path: str, out_dir: Path, *, config_path: str | None = None,
               workers: int = 1) -> dict[str, ActorOutcome]:
    """Replay `events` under one policy into `out_dir`; return each actor's outcome."""
    from pipeline.engine.job import read_file, run_job

    overrides = {"source": {"kind": "file", "file": {"path": events}}, "output": {"dir": str(out_dir)},
                 "policy_path": policy_path}
    config = load(config_path, overrides)
    run_job(config, source=read_file, replay=True, workers=workers, serve_metrics=False, progress=False)
    return outcomes(out_dir, load_policy(policy_path))


def _counter_change(a: Counter, b: Counter) -> dict[str, list[int]]:
    return {k: [a[k], b[k]] for k in sorted(set(a) | set(b)) if a[k] != b[k]}


def compare(a: dict[str, ActorOutcome], b: dict[str, ActorOutcome]) -> list[dict[str, Any]]:
    """Actors whose violations, actions or levels differ between A and B (each as `[A, B]`)."""
    changed = []
    for actor in sorted(set(a) | set(b)):
        x, y = a.get(actor, ActorOutcome()), b.get(actor, ActorOutcome())
        change: dict[str, Any] = {"actor": actor}
        for name, cx, cy in (("violations", x.violations, y.violations), ("shadow_violations", x.shadow, y.shadow),
                             ("actions", x.actions, y.actions)):
            delta = _counter_change(cx, cy)
            if delta:
                change[name] = delta
        for name in ("peak_level", "final_level", "final_points"):
            if getattr(x, name) != getattr(y, name):
                change[name] = [getattr(x, name), getattr(y, name)]
        if len(change) > 1:
            change["final_health"] = [x.final_health, y.final_health]
            changed.append(change)
    return changed


def _totals(result: dict[str, ActorOutcome], policy: Policy) -> dict[str, Any]:
    return {
        "violations": sum(sum(o.violations.values()) for o in result.values()),
        "shadow_violations": sum(sum(o.shadow.values()) for o in result.values()),
        "actions": sum(sum(o.actions.values()) for o in result.values()),
        "actors_with_actions": sum(1 for o in result.values() if o.actions),
        # actors that reached each step (at some point), lowest step first
        "reached": {rung.level: sum(1 for o in result.values() if o.peak_step >= i)
                    for i, rung in enumerate(policy.ladder)},
    }


def diff(events: str, policy_a: str, policy_b: str, *, config_path: str | None = None, workers: int = 1,
         keep: Path | None = None) -> dict[str, Any]:
    """Run both policies over `events` and compare them (the report `--json` prints)."""
    policies = (load_policy(policy_a), load_policy(policy_b))  # fail on a bad file before running anything
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="shopguard-diff-"))
    try:
        source = events
        if events == "-":  # stdin can be read once; both runs need it
            source = str(work / "events.jsonl")
            work.mkdir(parents=True, exist_ok=True)
            Path(source).write_bytes(sys.stdin.buffer.read())
        results = [run_policy(source, path, work / label, config_path=config_path, workers=workers)
                   for label, path in (("a", policy_a), ("b", policy_b))]
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    changed = compare(*results)
    incentives = incentive_impact(tuple(results), order_value(source))
    return {
        "events": events,
        "policies": {"a": policy_a, "b": policy_b},
        "totals": {"a": _totals(results[0], policies[0]), "b": _totals(results[1], policies[1])},
        "actors": len(set(results[0]) | set(results[1])),
        "changed": changed,
        "incentives": incentives,
        "outputs": {"a": str(work / "a"), "b": str(work / "b")} if keep else None,
    }


# ---- presenting it ---------------------------------------------------------------------------------


def _signed(delta: dict[str, list[int]]) -> str:
    parts = []
    for name, (x, y) in delta.items():
        n = y - x
        parts.append(f"{'+' if n > 0 else '-'}{abs(n) if abs(n) > 1 else ''}{name}")
    return " ".join(parts)


def render(report: dict[str, Any]) -> str:
    """The report as a person reads it: totals side by side, then one line per changed actor."""
    ta, tb = report["totals"]["a"], report["totals"]["b"]
    lines = [
        f"shopguard diff {report['events']}",
        f"  A = {report['policies']['a']}",
        f"  B = {report['policies']['b']}",
        "",
        f"  {'':<32}{'A':>8}{'B':>8}",
    ]
    for key, label in (("violations", "violations (enforced)"), ("shadow_violations", "violations (shadow)"),
                       ("actions", "actions"), ("actors_with_actions", "actors with any action")):
        lines.append(f"  {label:<32}{ta[key]:>8,}{tb[key]:>8,}")
    lines.append("  actors that reached")
    levels_a, levels_b = list(ta["reached"]), list(tb["reached"])
    for i in range(max(len(levels_a), len(levels_b))):
        la = levels_a[i] if i < len(levels_a) else None
        lb = levels_b[i] if i < len(levels_b) else None
        name = la if la == lb else f"{la or '-'} / {lb or '-'}"
        na = f"{ta['reached'][la]:,}" if la else "-"
        nb = f"{tb['reached'][lb]:,}" if lb else "-"
        lines.append(f"    {name:<30}{na:>8}{nb:>8}")
    lines += _render_incentives(report.get("incentives"))
    changed = report["changed"]
    lines.append("")
    if not changed:
        lines.append(f"no actor changes ({report['actors']:,} actors compared)")
        return "\n".join(lines)
    lines.append(f"{len(changed):,} of {report['actors']:,} actors with any outcome change under B "
                 "(+ gains, - loses):")
    for c in changed:
        parts = []
        if c.get("peak_level") and c.get("peak_level") == c.get("final_level"):
            parts.append(f"level {c['peak_level'][0]} -> {c['peak_level'][1]}")
        else:
            if "peak_level" in c:
                parts.append(f"peak level {c['peak_level'][0]} -> {c['peak_level'][1]}")
            if "final_level" in c:
                parts.append(f"final level {c['final_level'][0]} -> {c['final_level'][1]}")
        if "final_points" in c:
            parts.append(f"points {c['final_points'][0]} -> {c['final_points'][1]}")
        for key, label in (("actions", "actions"), ("violations", "violations"), ("shadow_violations", "shadow")):
            if key in c:
                parts.append(f"{label} {_signed(c[key])}")
        lines.append(f"  {c['actor']:<24} " + "; ".join(parts))
    return "\n".join(lines)


def _money(value: dict[str, float]) -> str:
    return ", ".join(f"{currency} {amount:,.2f}" for currency, amount in value.items()) or "0"


def _render_incentives(incentives: dict[str, Any] | None) -> list[str]:
    """Incentives and the business side: who holds each program, who loses it, and the sales affected."""
    if not incentives:
        return []
    a, b = incentives["sides"]["a"], incentives["sides"]["b"]
    lines = ["", "  incentives (programs held at the end / lost on the way)"]
    for program in sorted(set(a["holding"]) | set(b["holding"])):
        held = f"{a['holding'].get(program, 0):,} / {a['losing'].get(program, 0):,}"
        held_b = f"{b['holding'].get(program, 0):,} / {b['losing'].get(program, 0):,}"
        lines.append(f"    {program:<28}{held:>14}{held_b:>14}")
    lines.append(f"  {'actors restricted':<32}{a['actors_restricted']:>8,}{b['actors_restricted']:>8,}")
    lines.append(f"  {'actors losing an incentive':<32}{a['actors_losing_incentives']:>8,}"
                 f"{b['actors_losing_incentives']:>8,}")
    lines.append("  order value of the actors restricted or losing an incentive (sum of order.placed amounts):")
    lines.append(f"    A: {_money(a['order_value_affected'])}")
    lines.append(f"    B: {_money(b['order_value_affected'])}")
    for program, change in incentives["programs"].items():
        lines.append(f"  {program} under B: +{len(change['gain'])} actors gain it, -{len(change['lose'])} lose it "
                     f"(order value {_money(change['order_value_losing'])}): "
                     + " ".join([f"+{x}" for x in change["gain"][:10]] + [f"-{x}" for x in change["lose"][:10]])
                     + (" ..." if len(change["gain"]) > 10 or len(change["lose"]) > 10 else ""))
    return lines
