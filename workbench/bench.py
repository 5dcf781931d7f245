"""How fast the workbench is on a big store: load time and page response times.

    python -m workbench.bench [--violations 30000] [--dir DIR] [--requests 20]

Writes an output folder with `--violations` violations (copies of the shapes
the detectors issue, spread over 50,000 actors, all types, a week of event
time), one action and one standing record per violation, a review queue of
one entry per ten violations, and a governance file with an appeal on 2% of
the violations (half of them decided, with reasons); loads it into a fresh
store (timed), adds 5,000 audit-log lines and a few hundred claimed cases;
then serves the console on a free local port and times each page over HTTP
(median and p95 of `--requests` requests each, signed in as a reviewer); and
times how long the follower takes to read 1,000 more violations appended to
the files.

Example (small):

>>> import tempfile
>>> folder = write_outputs(Path(tempfile.mkdtemp()), violations=300, actors=40, seed=1)
>>> sum(1 for _ in open(folder / "violations.jsonl"))
300
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from pipeline.enforce.policy import load_policy
from pipeline.contract.records import Action, Education, ReviewEntry, Standing, Violation

START_TS = 1793491200000  # 2026-11-01T00:00:00Z, the simulator's default start
REVIEWER_TOKEN = "bench-reviewer-token-0123456789abcdefghij"
ACTOR_TOKEN = "bench-actor-token-0123456789abcdefghijkl"
WEEK_MS = 7 * 86_400_000
DETECTOR_VERSIONS = ("v1", "v2")


def _actor(rng: random.Random, actors: int) -> str:
    n = rng.randrange(actors)
    return f"seller:S{n}" if n % 3 else f"creator:C{n}"


def write_outputs(out: Path, *, violations: int, actors: int = 50_000, review: int | None = None,
                  seed: int = 7) -> Path:
    """An output folder with `violations` violations and matching actions, standing and review entries."""
    out.mkdir(parents=True, exist_ok=True)
    policy = load_policy()
    types = sorted(policy.types)
    rng = random.Random(seed)
    enc = msgspec.json.Encoder()
    review = violations // 10 if review is None else review
    points: dict[str, int] = {}
    with open(out / "violations.jsonl", "wb") as vf, open(out / "actions.jsonl", "wb") as af, \
            open(out / "standing.jsonl", "wb") as sf:
        for i in range(violations):
            vtype = rng.choice(types)
            rule = policy.types[vtype]
            actor = _actor(rng, actors)
            ts = START_TS + rng.randrange(WEEK_MS)
            vid = f"v-{i:08x}{rng.getrandbits(32):08x}"
            v = Violation(
                violation_id=vid, actor=actor, violation_type=vtype, policy_id=rule.policy_id,
                severity=rule.severity, points=rule.points, detector=f"{vtype}_{rng.choice(DETECTOR_VERSIONS)}",
                confidence=round(rng.uniform(0.6, 1.0), 2), detected_at=ts, window_start=ts - 60_000,
                window_end=ts, evidence={"listing_id": f"L{i}", "count": rng.randrange(1, 50),
                                         "threshold": 5, "matched": ["example text"]},
                explanation=f"Your listing L{i} broke the rule on {vtype.replace('_', ' ')}.",
                education=Education(rule.education.module_id, rule.education.title, rule.education.url),
                enforced=rng.random() > 0.1)
            vf.write(enc.encode(v) + b"\n")
            points[actor] = points.get(actor, 0) + (rule.points if v.enforced else 0)
            p = points[actor]
            step = policy.step_for(p)
            level = policy.ladder[step].level if step >= 0 else "good"
            restrictions = list(policy.ladder[step].restrictions) if step >= 0 else []
            af.write(enc.encode(Action(action_id=f"a-{i:08x}", actor=actor, action="warning", active_points=p,
                                       violation_ids=[vid], ts=ts, reason=f"{vtype}: {p} active points")) + b"\n")
            sf.write(enc.encode(Standing(actor=actor, active_points=p, level=level, health=max(0, 1000 - 8 * p),
                                         restrictions=restrictions, ts=ts)) + b"\n")
    with open(out / "review_queue.jsonl", "wb") as rf:
        for i in range(review):
            features = {f"f{k}": {"value": rng.random() * 100, "usual": 10.0, "z": round(rng.gauss(0, 3), 1)}
                        for k in range(6)}
            rf.write(enc.encode(ReviewEntry(actor=_actor(rng, actors), score=round(rng.random(), 4),
                                            model="anomaly_hst_v1", features=features,
                                            ts=START_TS + rng.randrange(WEEK_MS))) + b"\n")
    (out / "dead_letter.jsonl").write_bytes(b"")
    _write_appeals(out, rng)
    return out


GOVERNANCE_FILE = "governance-events.jsonl"


def _write_appeals(out: Path, rng: random.Random) -> None:
    """Appeals on 2% of the violations, every other one decided with a reason."""
    from workbench.publish import appeal_decided, appeal_filed

    enc = msgspec.json.Encoder()
    with open(out / "violations.jsonl", "rb") as vf, open(out / GOVERNANCE_FILE, "wb") as gf:
        for n, line in enumerate(vf):
            if rng.random() >= 0.02:
                continue
            v = msgspec.json.decode(line)
            filed = appeal_filed(v["violation_id"], v["actor"], "These goods are genuine.", ts=v["detected_at"] + 1)
            gf.write(enc.encode(filed) + b"\n")
            if n % 2:
                gf.write(enc.encode(appeal_decided(filed["appeal_id"], v["violation_id"], v["actor"],
                                                   rng.choice(["upheld", "overturned"]), "rev-bench",
                                                   ts=filed["ts"] + 1, reason="Checked the listing.")) + b"\n")


def _write_reviewer_work(store: Any, rng: random.Random, lines: int = 5000) -> None:
    """What a team of reviewers leaves behind: audit lines and claimed cases."""
    now = time.time()
    actors = [r["actor"] for r in store.queue(limit=300)]
    with store.transaction() as db:
        db.executemany("INSERT INTO wb_audit (at, who, role, action, target, detail) "
                       "VALUES (?, ?, 'reviewer', ?, ?, '')",
                       [(now - rng.uniform(0, 14 * 86400), f"rev-{i % 7}", rng.choice(
                           ["claimed", "noted", "decided_upheld", "decided_overturned", "review_dismissed"]),
                         f"case-{i}") for i in range(lines)])
        db.executemany("INSERT INTO wb_cases VALUES (?, 'review', ?, ?, ?, ?, 'rev-0')",
                       [(f"review:{a}", a, rng.choice(["in_review", "decided", "escalated"]), f"rev-{i % 7}", now)
                        for i, a in enumerate(actors)])


def _timed(fn, n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def bench(out: Path, requests: int = 20) -> dict[str, Any]:
    """Load `out` into a fresh store and time the pages; returns the numbers."""
    import httpx

    from workbench.site import create_app
    from workbench.auth import Tokens
    from workbench.publish import FilePublisher
    from workbench.serve import serve_in_thread
    from workbench.charts import CHARTS
    from workbench.store import FileFeed, Store

    db = out / "bench.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    store = Store(db, FileFeed(out, [out / GOVERNANCE_FILE]))
    t0 = time.perf_counter()
    counts = store.sync()
    load_s = time.perf_counter() - t0
    actor = store.violations(limit=1)[0]["actor"]
    some_type = store.facets()["violation_type"][0]
    Tokens(store).load_configured({"rev-bench": REVIEWER_TOKEN}, {actor: ACTOR_TOKEN}, "config")
    _write_reviewer_work(store, random.Random(3))
    app = create_app(store, FilePublisher(out / GOVERNANCE_FILE), load_policy(), session_secret="bench-secret")
    results: dict[str, Any] = {"violations": counts["violations"], "load_seconds": round(load_s, 2),
                               "db_mb": round(db.stat().st_size / 1e6, 1), "pages": {}}
    with serve_in_thread(app) as base:
        with httpx.Client(base_url=base) as client:
            _sign_in(client, REVIEWER_TOKEN)
            last = store.violations(limit=50)[-1]
            listing = store.violations(limit=1)[0]["evidence"]["listing_id"]
            pages = {
                "review queue (page 1)": "/queue",
                "review queue (page 20)": "/queue?page=20",
                "violations, no filter": "/violations",
                "violations, next page": f"/violations?before={last['detected_at']}:{last['id']}",
                "violations by type": f"/violations?type={some_type}",
                "violations by type+severity+shadow": f"/violations?type={some_type}&severity=critical&enforced=no",
                "violations in a 1 h window": f"/violations?since={_iso(START_TS + 3_600_000)}"
                                              f"&until={_iso(START_TS + 7_200_000)}",
                "violations by listing id": f"/violations?ref={listing}",
                "violations by actor prefix": "/violations?actor_prefix=seller:S12",
                "actor history": f"/actors/{actor}",
                "review queue, in review": "/queue?status=in_review",
                "appeals waiting": "/appeals",
                "appeals decided, by type": f"/appeals?state=decided&type={some_type}",
                "search (actor prefix)": "/search?q=S123",
                "search (listing id)": f"/search?q={listing}",
                "audit log": "/audit",
                "audit log, one reviewer": "/audit?who=rev-3",
                "charts page": "/charts",
                **{f"chart {name}": f"/charts/{name}.svg" for name in CHARTS},
            }
            for name, url in pages.items():
                assert client.get(url).status_code == 200, url
                med, p95 = _timed(lambda: client.get(url).raise_for_status(), requests)
                results["pages"][name] = {"url": url, "median_ms": round(med, 1), "p95_ms": round(p95, 1)}
        with httpx.Client(base_url=base) as client:
            _sign_in(client, ACTOR_TOKEN)
            url = f"/standing/{actor}"
            med, p95 = _timed(lambda: client.get(url).raise_for_status(), requests)
            results["pages"]["standing page (actor)"] = {"url": url, "median_ms": round(med, 1),
                                                         "p95_ms": round(p95, 1)}
    results["sync_1000_new_ms"] = round(_append_and_sync(store, out), 1)
    store.close()
    return results


def _append_and_sync(store: Any, out: Path) -> float:
    """What the follower does while the job runs: read 1,000 new violations (and their actions and standing)."""
    more = write_outputs(Path(tempfile.mkdtemp(prefix="workbench-more-")), violations=1000, seed=99)
    for name in ("violations.jsonl", "actions.jsonl", "standing.jsonl"):
        with open(out / name, "ab") as f:
            f.write((more / name).read_bytes().replace(b'"action_id":"a-', b'"action_id":"a-more-'))
    t0 = time.perf_counter()
    added = store.sync()
    elapsed = (time.perf_counter() - t0) * 1000
    assert added["violations"] == 1000, added
    return elapsed


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(ms / 1000))


def _sign_in(client, token: str) -> None:
    import re

    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"csrf_token": csrf, "token": token})
    if r.status_code != 303:
        raise RuntimeError(f"sign-in failed: {r.status_code}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workbench.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--violations", type=int, default=30_000)
    p.add_argument("--dir", help="output folder to write and load (default: a temporary folder)")
    p.add_argument("--requests", type=int, default=20, help="requests per page")
    args = p.parse_args(argv)
    out = Path(args.dir or tempfile.mkdtemp(prefix="workbench-bench-"))
    t0 = time.perf_counter()
    write_outputs(out, violations=args.violations)
    print(f"wrote {args.violations:,} violations to {out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    r = bench(out, args.requests)
    print(f"store: {r['violations']:,} violations loaded in {r['load_seconds']} s ({r['db_mb']} MB)")
    print(f"{'page':<40}{'median ms':>10}{'p95 ms':>10}")
    for name, t in r["pages"].items():
        print(f"{name:<40}{t['median_ms']:>10}{t['p95_ms']:>10}")
    print(f"following: 1,000 new violations (+ actions, standing) read into the store in {r['sync_1000_new_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
