"""`shopguard evaluate`: detection quality on simulated marketplaces, one world at a time.

For each world and seed it simulates the marketplace, replays it through the
real job, and scores the outputs against the simulator's ground truth:

- per violation type: precision, recall (distinct actor-and-type pairs) and
  the median time to detect (first `detected_at` minus the label's
  `evidence_ts`, in seconds of event time; negative: found before the
  labelled evidence was complete);
- honest actors (every seller and creator of the stream that no label names)
  with any violation, and with an *enforced* one, per 10,000;
- the review queue: of the abusers no rule flagged at all, how many the
  models surfaced, and how many of the queue's actors are real abusers.

The simulator's world `home` is the tuning world: every detector threshold in
`config/shopguard.toml` was set on it. Scores that gate quality come from the
other worlds, which no threshold was set from (`HELD_OUT`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import msgspec

from analysis.scoring import TypeScore, score

TUNING_WORLD = "home"


@dataclass
class QueueScore:
    """What the review queue adds to the rules."""

    actors: int = 0  # distinct actors put on the queue
    abusers: int = 0  # of them, labelled abusers
    missed_by_rules: int = 0  # labelled abusers with no violation at all
    surfaced: int = 0  # of those, put on the queue

    @property
    def precision(self) -> float | None:
        return self.abusers / self.actors if self.actors else None

    @property
    def surfaced_share(self) -> float | None:
        return self.surfaced / self.missed_by_rules if self.missed_by_rules else None


@dataclass
class WorldScore:
    world: str
    seed: int
    events: int
    scores: dict[str, TypeScore]
    honest: int  # honest actors in the stream
    honest_flagged: list[str] = field(default_factory=list)  # with any violation
    honest_enforced: list[str] = field(default_factory=list)  # with an enforced violation
    queue: QueueScore = field(default_factory=QueueScore)

    def per_10k(self, actors: list[str]) -> float:
        return 10_000 * len(actors) / self.honest if self.honest else 0.0


def evaluate(world: str, seed: int, *, hours: float = 6.0, scale: float = 1.0, work: Path | None = None,
             workers: int = 1) -> WorldScore:
    """Simulate `world` with `seed`, replay it through the job, score it."""
    from simulator import SimConfig, write

    work = Path(work or tempfile.mkdtemp(prefix=f"shopguard-eval-{world}-"))
    counts = write(SimConfig(world=world, seed=seed, hours=hours, scale=scale), work / "sim")
    _replay(work / "sim" / "events.jsonl", work / "out", workers)
    return score_outputs(world, seed, counts["events"], work / "sim", work / "out")


def _replay(events: Path, out: Path, workers: int) -> None:
    from pipeline.config import load
    from pipeline.engine.job import read_file, run_job

    config = load(None, {"source": {"kind": "file", "file": {"path": str(events)}}, "output": {"dir": str(out)}})
    run_job(config, source=read_file, replay=True, workers=workers, serve_metrics=False, progress=False)


def score_outputs(world: str, seed: int, events: int, sim: Path, out: Path) -> WorldScore:
    """Score an output folder against the simulation that produced it."""
    labels = _read(sim / "labels.jsonl")
    violations = _read(out / "violations.jsonl")
    abusers = {label["actor"] for label in labels}
    everyone = _actors_in(sim / "events.jsonl")
    flagged = {v["actor"] for v in violations}
    enforced = {v["actor"] for v in violations if v["enforced"]}
    queued = {r["actor"] for r in _read(out / "review_queue.jsonl")}
    missed = abusers - flagged
    result = WorldScore(world, seed, events, score(violations, labels), honest=len(everyone - abusers),
                        honest_flagged=sorted(flagged - abusers), honest_enforced=sorted(enforced - abusers))
    result.queue = QueueScore(actors=len(queued), abusers=len(queued & abusers), missed_by_rules=len(missed),
                              surfaced=len(queued & missed))
    return result


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    decoder = msgspec.json.Decoder()
    with open(path, "rb") as f:
        return [decoder.decode(line) for line in f if line.strip()]


class _Actors(msgspec.Struct):
    seller_id: str | None = None
    creator_id: str | None = None
    actor: str | None = None


def _actors_in(events: Path) -> set[str]:
    """Every seller and creator reference an events file mentions."""
    decoder = msgspec.json.Decoder(_Actors)
    found: set[str] = set()
    with open(events, "rb") as f:
        for line in f:
            try:
                e = decoder.decode(line)
            except msgspec.DecodeError:
                continue
            if e.seller_id:
                found.add(f"seller:{e.seller_id}")
            if e.creator_id:
                found.add(f"creator:{e.creator_id}")
            if e.actor and e.actor.startswith(("seller:", "creator:")):
                found.add(e.actor)
    return found


# ---- reporting ------------------------------------------------------------------------------------


def markdown(results: Iterable[WorldScore]) -> str:
    """One table per world and seed: what the README shows, produced by `shopguard evaluate --markdown`."""
    out: list[str] = []
    for r in results:
        held = "tuning world" if r.world == TUNING_WORLD else "held out"
        out += [f"**{r.world}** ({held}, seed {r.seed}, {r.events:,} events; honest actors "
                f"{r.honest:,}: {r.per_10k(r.honest_flagged):.1f} per 10,000 flagged, "
                f"{r.per_10k(r.honest_enforced):.1f} enforced)", "",
                "| type | labelled | flagged | precision | recall | median TTD s |", "|---|---:|---:|---:|---:|---:|"]
        for s in r.scores.values():
            ttd = "-" if s.median_delay_s is None else f"{s.median_delay_s:.0f}"
            out.append(f"| {s.violation_type} | {s.labelled} | {s.flagged} | {s.precision:.2f} | {s.recall:.2f} | "
                       f"{ttd} |")
        q = r.queue
        share = "-" if q.surfaced_share is None else f"{q.surfaced_share:.2f}"
        precision = "-" if q.precision is None else f"{q.precision:.2f}"
        out += ["", f"Review queue: {q.actors} actors, {precision} of them abusers; "
                    f"{q.surfaced} of {q.missed_by_rules} abusers no rule flagged surfaced ({share}).", ""]
    return "\n".join(out)


def weaknesses(r: WorldScore, *, min_precision: float = 0.97, min_recall: float = 0.95,
               max_ttd_s: float = 60.0) -> list[str]:
    """What keeps a world's scores from the quality bar (empty: it meets it)."""
    found = []
    for s in r.scores.values():
        if s.precision < min_precision or s.recall < min_recall:
            found.append(f"{s.violation_type}: precision {s.precision:.2f} recall {s.recall:.2f} "
                         f"(false positives {s.false_positive_actors[:5]}, missed {s.missed_actors[:5]})")
        if s.median_delay_s is not None and s.median_delay_s > max_ttd_s:
            found.append(f"{s.violation_type}: median time to detect {s.median_delay_s:.0f} s > {max_ttd_s:g} s")
    if r.honest_enforced:
        found.append(f"honest actors with an enforced violation: {r.honest_enforced[:10]}")
    return found
