"""`shopguard console --out DIR`: the reviewer console and the standing pages (`workbench/`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from pipeline.cli.common import standalone
from workbench.console import DEFAULT_EVENTS_OUT


def add_console_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `console` to the `shopguard` command line's subparsers."""
    p = subparsers.add_parser(
        "console", help="web workbench: reviewer console and sellers' and creators' standing pages",
        description="Serve the reviewer console (review queue, violations, actor history, appeal decisions) and "
                    "each seller's or creator's standing page over an output folder, following it while the job "
                    "runs. Decisions and lessons are written as governance events the job reads.")
    p.add_argument("--out", metavar="DIR", help="output folder of `shopguard replay` or `run` (required)")
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
    p.add_argument("--https-only", action="store_true",
                   help="mark the session cookie Secure (behind a TLS proxy; also [workbench] https_only)")
    p.set_defaults(func=cmd_console)
    sub = p.add_subparsers(dest="console_command", metavar="token")
    t = sub.add_parser("token", help="mint, revoke or list sign-in tokens",
                       description="Mint a sign-in token for a reviewer (rev-NAME) or a seller/creator (seller:ID, "
                                   "creator:ID), stored as a salted digest in the console's store; the token is "
                                   "printed once. A new token replaces the person's previous minted one.")
    t.add_argument("id", nargs="?", help="reviewer id or actor reference")
    t.add_argument("--out", metavar="DIR", help="the console's output folder (its store is DIR/workbench.sqlite)")
    t.add_argument("--db", metavar="FILE", help="the console's store, if not in DIR")
    t.add_argument("--revoke", action="store_true", help="remove the id's minted tokens (their sessions end)")
    t.add_argument("--list", action="store_true", help="list who has a token (never the tokens)")
    t.set_defaults(func=cmd_token)
    return p


def cmd_console(args: argparse.Namespace) -> int:
    from workbench.console import run_console

    return run_console(args)


def cmd_token(args: argparse.Namespace) -> int:
    from workbench.console import run_token

    return run_token(args)


def main(argv: Sequence[str] | None = None) -> int:
    """`shopguard console ...` on its own: `main(["--out", "out/", "--port", "0"])`."""
    return standalone(add_console_command, "console", argv)


if __name__ == "__main__":
    sys.exit(main())
