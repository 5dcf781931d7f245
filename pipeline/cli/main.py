"""The `shopguard` command line: run, replay, simulate, report, diff, console.

Every command explains itself with `--help` and lives in its own module of
this package. Wrong arguments and expected failures (`pipeline.errors`) end
with one line that says what to do, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Sequence

from pipeline.cli.common import PROG, Parser, run_command
from pipeline.cli.console import add_console_command
from pipeline.cli.diff import add_diff_command
from pipeline.cli.evaluate import add_evaluate_command
from pipeline.cli.replay import add_replay_command
from pipeline.cli.report import add_report_command
from pipeline.cli.run import add_run_command
from pipeline.cli.simulate import add_simulate_command

COMMANDS = (add_run_command, add_replay_command, add_simulate_command, add_console_command, add_report_command,
            add_diff_command, add_evaluate_command)


def parser() -> Parser:
    p = Parser(prog=PROG, description="Stream job that keeps a live-commerce marketplace safe.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
