"""What every `shopguard` command shares: the parser, one-line failures, argument types, config overrides."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

PROG = "shopguard"


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line that points at --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def fail(message: str) -> int:
    """Print one line saying what went wrong and what to do; the exit code of a failed command."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _number(kind: type, text: str, ok: Callable[[Any], bool], rule: str):
    value = kind(text)
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 1, "1 or more")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: v > 0, "greater than 0")


def non_negative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "0 or more")


def address_list(text: str) -> list[str]:
    """`host:port,host:port,...` (Bytewax's runner separates them with `;`: both are taken).

    >>> address_list("a:2101, b:2101;c:2101")
    ['a:2101', 'b:2101', 'c:2101']
    """
    addresses = [a.strip() for a in text.replace(";", ",").split(",") if a.strip()]
    if not addresses:
        raise argparse.ArgumentTypeError("give host:port of every process, comma-separated")
    return addresses


def add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=["text", "json"], help="logs as text (default) or JSON lines")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")


# flag (argparse dest) -> the configuration key it overrides
_OVERRIDES = {
    "out": "output.dir",
    "metrics_port": "metrics.port",
    "source": "source.kind",
    "events": "source.file.path",
    "seed": "source.simulator.seed",
    "hours": "source.simulator.hours",
    "scale": "source.simulator.scale",
    "speedup": "source.simulator.speedup",
    "world": "source.simulator.world",
    "start": "source.simulator.start",
    "feedback": "source.simulator.feedback",
    "recovery_dir": "recovery.dir",
    "policy": "policy_path",
    "process_id": "cluster.process_id",
    "addresses": "cluster.addresses",
    "log_format": "log.format",
    "log_level": "log.level",
    "stop_grace_seconds": "job.stop_grace_seconds",
}


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given on the command line, as a table laid over the configuration file.

    >>> config_overrides(argparse.Namespace(out="o", seed=None, metrics_port=0))
    {'output': {'dir': 'o'}, 'metrics': {'port': 0}}
    """
    table: dict[str, Any] = {}
    for dest, key in _OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        node = table
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return table


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command. Expected failures (`ShopguardError`, also when Bytewax wrapped one
    raised in a worker) end with their one line; anything else is a bug and keeps its traceback."""
    from pipeline.errors import ShopguardError, find_error

    try:
        return args.func(args)
    except ShopguardError as err:
        return fail(str(err))
    except KeyboardInterrupt:
        return fail("interrupted; outputs written so far are complete lines")
    except Exception as err:
        expected = find_error(err)
        if expected is None:
            raise
        return fail(str(expected).splitlines()[0])


def standalone(add_command: Callable[[Any], argparse.ArgumentParser], name: str,
               argv: Sequence[str] | None) -> int:
    """Run one command on its own (`shopguard NAME ARGV...`), with the CLI's error handling."""
    parser = Parser(prog=PROG)
    add_command(parser.add_subparsers(dest="command", required=True, parser_class=Parser))
    return run_command(parser.parse_args([name, *(argv if argv is not None else sys.argv[1:])]))
