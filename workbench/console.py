"""`shopguard console --out DIR`: serve the workbench over the job's outputs (options: `pipeline/cli/console.py`).

    shopguard console --out DIR [--port P] [--addr A] [--events-out FILE] [--governance-in FILE]...
                      [--db FILE] [--rebuild] [--from files|kafka] [--https-only] [--config FILE] [--policy FILE]
    shopguard console token ID --out DIR [--db FILE] [--revoke | --list]

Loads the outputs into the store (`DIR/workbench.sqlite`), keeps following
them while the job runs, and serves the reviewer console and the standing
pages on http://127.0.0.1:8470/ (`[workbench]` in the configuration). Appeal
decisions and lessons are appended to `--events-out` (default
`DIR/governance-events.jsonl`), which the job reads, for example

    cat events.jsonl DIR/governance-events.jsonl | shopguard replay - --out DIR

With `--from kafka` (the default when `output.kind = "kafka"`) the store
follows the output topics and the events go to the `governance-events` topic.

Sign-in tokens: `shopguard console token rev-NAME --out DIR` mints one
(printed once; the store keeps a salted digest), or `[workbench.reviewers]` /
`[workbench.actors]` and the environment (SHOPGUARD_WORKBENCH_REVIEWERS /
SHOPGUARD_WORKBENCH_ACTORS, "id=token,..."), 32+ characters each; without a
reviewer token the console stops and says how to add one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.config import load
from pipeline.errors import SetupError

DEFAULT_EVENTS_OUT = "governance-events.jsonl"


def run_console(args: argparse.Namespace) -> int:
    """Serve the workbench; `args` are the options of `shopguard console` (`pipeline/cli/console.py`)."""
    from pipeline.enforce.policy import load_policy
    from workbench.site import create_app
    from workbench.auth import Tokens, configured_tokens
    from workbench.serve import base_url, bind, server
    from workbench.store import Follower, Store, default_db_path

    if not args.out:
        raise SetupError("say which output folder to serve: shopguard console --out DIR")
    config = load(args.config, {"policy_path": args.policy} if args.policy else None)
    wb = config.workbench
    out = Path(args.out)
    source = args.source or ("kafka" if config.output.kind == "kafka" else "files")
    if source == "files" and not out.is_dir():
        raise SetupError(f"no outputs in {out}: no such folder; run `shopguard replay EVENTS --out {out}` first")
    for path in args.governance_in:
        if not Path(path).is_file():
            raise SetupError(f"{path}: no such file for --governance-in")
    policy = load_policy(config.policy_path or None)
    feed, publisher = _feed_and_publisher(config, source, out, args)
    store = Store(args.db or default_db_path(out), feed)
    tokens = Tokens(store)
    try:
        configured_tokens(tokens, wb, os.environ)
        if not tokens.counts()[0]:
            raise SetupError(f"no reviewer can sign in: mint a token with `shopguard console token rev-NAME --out "
                             f"{out}`, or set SHOPGUARD_WORKBENCH_REVIEWERS=\"rev-NAME=TOKEN\" (32+ random "
                             "characters)")
    except BaseException:
        store.close()
        publisher.close()
        raise
    started = time.monotonic()
    counts = store.rebuild() if args.rebuild else store.sync()
    total = store.counts()
    print(f"store {store.path}: {total['violations']:,} violations, {total['standing_now']:,} actors "
          f"({sum(counts.values()):,} records read in {time.monotonic() - started:.1f} s)", file=sys.stderr)
    follower = Follower(store, wb.follow_seconds).start()
    secret = wb.session_secret or os.environ.get("SHOPGUARD_WORKBENCH_SESSION_SECRET", "")
    app = create_app(store, publisher, policy, session_secret=secret, https_only=wb.https_only or args.https_only,
                     session_hours=wb.session_hours, event_time_mode=wb.event_time,
                     status=lambda: {"last_error": follower.last_error})
    addr = args.addr or wb.addr
    port = wb.port if args.port is None else args.port
    try:
        sock = bind(addr, port)
    except OSError as err:
        follower.stop()
        store.close()
        raise SetupError(f"cannot listen on {addr}:{port} ({err.strerror}): pass another --port") from None
    reviewers, actors = tokens.counts()
    print(f"governance events (appeals, decisions, lessons) go to {publisher.name}", file=sys.stderr)
    print(f"sign-in tokens: {reviewers} reviewer(s), {actors} seller(s)/creator(s)", file=sys.stderr)
    print(f"shopguard console on {base_url(sock)}/  (Ctrl-C stops it)", flush=True)
    try:
        server(app).run(sockets=[sock])
    finally:
        follower.stop()
        store.close()
        publisher.close()
        sock.close()
    return 0


def _feed_and_publisher(config: Any, source: str, out: Path, args: argparse.Namespace) -> tuple[Any, Any]:
    from workbench.publish import FilePublisher, KafkaPublisher
    from workbench.store import FileFeed, KafkaFeed, kafka_topics

    if source == "kafka":
        from pipeline.kafka import consumer_settings, preflight, producer_settings

        topics = kafka_topics(config)
        preflight(consumer_settings(config.kafka), topics)
        feed = KafkaFeed(consumer_settings(config.kafka), topics)
        return feed, KafkaPublisher(producer_settings(config.kafka))
    events_out = Path(args.events_out) if args.events_out else out / DEFAULT_EVENTS_OUT
    return FileFeed(out, [events_out, *args.governance_in]), FilePublisher(events_out)


def run_token(args: argparse.Namespace) -> int:
    """`shopguard console token ID`: mint (or revoke, or list) sign-in tokens in the console's store."""
    from workbench.auth import ACTOR_RE, Tokens
    from workbench.store import Store, default_db_path

    if not args.out and not args.db:
        raise SetupError("say which console's store holds the tokens: --out DIR (or --db FILE)")
    feed = _NoFeed()
    store = Store(args.db or default_db_path(Path(args.out)), feed)
    try:
        tokens = Tokens(store)
        if args.list:
            for t in tokens.listing():
                print(f"{t['role']:<9} {t['who']:<40} {t['source']:<12} key {t['key'][:40]}")
            return 0
        if not args.id:
            raise SetupError("name whose token it is: shopguard console token rev-NAME (or seller:ID, creator:ID)")
        if args.revoke:
            n = tokens.revoke(args.id)
            print(f"revoked {n} token(s) of {args.id}; their sessions have ended", file=sys.stderr)
            return 0
        role = "actor" if ACTOR_RE.match(args.id) else "reviewer"
        token = tokens.mint(role, args.id)
        print(f"new {role} token for {args.id} (shown once; the store keeps only a salted digest, and any "
              f"earlier minted token of {args.id} no longer signs in):", file=sys.stderr)
        print(token)
        return 0
    finally:
        store.close()


class _NoFeed:
    """The token command touches only the store's own tables: it reads no outputs."""

    def batches(self, cursors):  # noqa: ANN001, ANN201
        return iter(())

    def close(self) -> None:
        pass
