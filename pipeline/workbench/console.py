"""`shopguard console --out DIR`: serve the workbench over the job's outputs.

    shopguard console --out DIR [--port P] [--addr A] [--events-out FILE] [--governance-in FILE]...
                      [--db FILE] [--rebuild] [--from files|kafka] [--config FILE] [--policy FILE]

Loads the outputs into the store (`DIR/workbench.sqlite`), keeps following
them while the job runs, and serves the reviewer console and the standing
pages on http://127.0.0.1:8470/ (`[workbench]` in the configuration). Appeal
decisions and lessons are appended to `--events-out` (default
`DIR/governance-events.jsonl`), which the job reads, for example

    cat events.jsonl DIR/governance-events.jsonl | shopguard replay - --out DIR

With `--from kafka` (the default when `output.kind = "kafka"`) the store
follows the output topics and the events go to the `governance-events` topic.

Sign-in tokens come from `[workbench.reviewers]` / `[workbench.actors]` and
the environment (SHOPGUARD_WORKBENCH_REVIEWERS / SHOPGUARD_WORKBENCH_ACTORS,
"id=token,..."); without any, the console stops and says how to add one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from pipeline.config import ConfigError, load

DEFAULT_EVENTS_OUT = "governance-events.jsonl"


def add_console_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `console` to the `shopguard` command line's subparsers."""
    p = subparsers.add_parser(
        "console", help="web workbench: reviewer console and sellers' and creators' standing pages",
        description="Serve the reviewer console (review queue, violations, actor history, appeal decisions) and "
                    "each seller's or creator's standing page over an output folder, following it while the job "
                    "runs. Decisions and lessons are written as governance events the job reads.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder of `shopguard replay` or `run`")
    p.add_argument("--port", type=int, metavar="P", help="port to listen on (default [workbench] port, 8470; "
                                                         "0 = any free port)")
    p.add_argument("--addr", metavar="A", help="address to listen on (default [workbench] addr, 127.0.0.1)")
    p.add_argument("--events-out", metavar="FILE",
                   help=f"governance events file the job reads (default DIR/{DEFAULT_EVENTS_OUT})")
    p.add_argument("--governance-in", metavar="FILE", action="append", default=[],
                   help="also read appeals and lessons from this NDJSON file (e.g. the job's events file); "
                        "repeatable")
    p.add_argument("--db", metavar="FILE", help="the store (default DIR/workbench.sqlite)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the store from the outputs first")
    p.add_argument("--from", dest="source", choices=["files", "kafka"],
                   help="read the outputs from DIR's files or the Kafka output topics (default: output.kind)")
    p.add_argument("--config", metavar="FILE", help="TOML laid over config/shopguard.toml")
    p.add_argument("--policy", metavar="FILE", help="policy TOML (default config/policy.toml)")
    p.set_defaults(func=cmd_console)
    return p


def _fail(message: str) -> int:
    print(f"shopguard: error: {message}", file=sys.stderr)
    return 2


def cmd_console(args: argparse.Namespace) -> int:
    from pipeline.policy import load_policy
    from pipeline.workbench.app import Access, AccessError, create_app
    from pipeline.workbench.serve import base_url, bind, server
    from pipeline.workbench.store import Follower, Store, default_db_path

    config = load(args.config, {"policy_path": args.policy} if args.policy else None)
    wb = config.workbench
    try:
        access = Access.from_config(wb, os.environ)
    except AccessError as err:
        return _fail(str(err))
    if not access.counts()[0]:
        return _fail("no reviewer can sign in: add `[workbench.reviewers]` `rev-NAME = \"TOKEN\"` (16+ characters) "
                     "to a --config file, or set SHOPGUARD_WORKBENCH_REVIEWERS=\"rev-NAME=TOKEN\"")
    out = Path(args.out)
    source = args.source or ("kafka" if config.output.kind == "kafka" else "files")
    if source == "files" and not out.is_dir():
        return _fail(f"no outputs in {out}: no such folder; run `shopguard replay EVENTS --out {out}` first")
    for path in args.governance_in:
        if not Path(path).is_file():
            return _fail(f"{path}: no such file for --governance-in")
    policy = load_policy(config.policy_path or None)
    feed, publisher = _feed_and_publisher(config, source, out, args)
    store = Store(args.db or default_db_path(out), feed)
    started = time.monotonic()
    counts = store.rebuild() if args.rebuild else store.sync()
    total = store.counts()
    print(f"store {store.path}: {total['violations']:,} violations, {total['standing_now']:,} actors "
          f"({sum(counts.values()):,} records read in {time.monotonic() - started:.1f} s)", file=sys.stderr)
    follower = Follower(store, wb.follow_seconds).start()
    secret = wb.session_secret or os.environ.get("SHOPGUARD_WORKBENCH_SESSION_SECRET", "")
    app = create_app(store, publisher, policy, access, session_secret=secret, https_only=wb.https_only,
                     session_hours=wb.session_hours, event_time_mode=wb.event_time,
                     status=lambda: {"last_error": follower.last_error})
    addr = args.addr or wb.addr
    port = wb.port if args.port is None else args.port
    try:
        sock = bind(addr, port)
    except OSError as err:
        follower.stop()
        store.close()
        return _fail(f"cannot listen on {addr}:{port} ({err.strerror}): pass another --port")
    reviewers, actors = access.counts()
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
    from pipeline.workbench.publish import FilePublisher, KafkaPublisher
    from pipeline.workbench.store import FileFeed, KafkaFeed, kafka_topics

    if source == "kafka":
        from pipeline.kafka import consumer_settings, preflight, producer_settings

        topics = kafka_topics(config)
        preflight(consumer_settings(config.kafka), topics)
        feed = KafkaFeed(consumer_settings(config.kafka), topics)
        return feed, KafkaPublisher(producer_settings(config.kafka))
    events_out = Path(args.events_out) if args.events_out else out / DEFAULT_EVENTS_OUT
    return FileFeed(out, [events_out, *args.governance_in]), FilePublisher(events_out)


def main(argv: Sequence[str] | None = None) -> int:
    """`shopguard console ...` on its own: `main(["--out", "out/", "--port", "0"])`."""
    from pipeline.cli import _Parser

    parser = _Parser(prog="shopguard")
    add_console_command(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    args = parser.parse_args(["console", *(argv if argv is not None else sys.argv[1:])])
    try:
        return args.func(args)
    except ConfigError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
