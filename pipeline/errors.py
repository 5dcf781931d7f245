"""The project's one error tree: every error a user can meet says what to do, in one line.

    ShopguardError
    ├── ConfigError     a configuration or policy file is missing, unreadable or invalid
    │   └── PolicyError
    ├── SetupError      the world around the job is not ready: a broker, a topic, a file, a port
    ├── DeliveryError   a sink could not hand over a record it must not lose
    └── ClusterError    a process of a cluster failed

The command line catches `ShopguardError` (also when Bytewax wraps it, see
`find_error`) and prints its message; anything else is a bug and keeps its
traceback. `validation_message` turns msgspec's validation errors into the
`key `a.b`: expected ..., got X` form every config error uses.
"""

from __future__ import annotations

import re
from typing import Any


class ShopguardError(Exception):
    """An expected failure; the message is one line that says what happened and what to do."""


class ConfigError(ShopguardError, ValueError):
    """A configuration file is missing, unreadable or invalid; the message names the file and the key."""


class PolicyError(ConfigError):
    """A policy file is invalid; the message names the file and the key."""


class SetupError(ShopguardError):
    """Something the job needs is not there: a broker, a topic, an input file, a free port."""


class DeliveryError(ShopguardError):
    """A sink could not deliver a record it must not lose; the job stops rather than lose it."""


class ClusterError(ShopguardError):
    """A process of a cluster failed; the message names the process and its error."""


def find_error(err: BaseException | None) -> ShopguardError | None:
    """The `ShopguardError` behind `err`, if any (Bytewax re-raises worker errors as their cause).

    >>> try:
    ...     try:
    ...         raise SetupError("no broker")
    ...     except SetupError as inner:
    ...         raise RuntimeError("error writing output batch") from inner
    ... except RuntimeError as outer:
    ...     print(find_error(outer))
    no broker
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ShopguardError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


# ---- msgspec validation errors, said once for every file -----------------------------------------


def validation_message(err: Exception, data: Any = None, prefix: str = "",
                       allowed: dict[str, tuple[str, ...]] | None = None) -> str:
    """msgspec says ``Expected `int` >= 0, got `-1` - at `$.types.spam.points` ``; say it with the key.

    `prefix` is the path of `data` inside its file (for a table converted on its
    own); `allowed` names the values an enum key may take, by the key's last name.

    >>> import msgspec
    >>> class T(msgspec.Struct, forbid_unknown_fields=True):
    ...     n: int
    >>> for bad in ({"n": "x"}, {}, {"n": 1, "m": 2}):
    ...     try:
    ...         msgspec.convert(bad, T)
    ...     except msgspec.ValidationError as err:
    ...         print(validation_message(err, bad, "job"))
    key `job.n`: expected `int`, got 'x'
    missing key `job.n`
    unknown key `job.m`
    """
    text = str(err)
    message, _, where = text.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    if message.startswith("Object missing required field `"):
        return f"missing key `{join_key(prefix, join_key(path, message.split('`')[1]))}`"
    if message.startswith("Object contains unknown field `"):
        return f"unknown key `{join_key(prefix, join_key(path, message.split('`')[1]))}`"
    key = join_key(prefix, path)
    got = value_at(data, path)
    if message.startswith("Invalid enum value"):
        values = (allowed or {}).get(re.sub(r"\[\d+\]$", "", key).rsplit(".", 1)[-1])
        message = f"expected one of {', '.join(values)}" if values else "not an allowed value"
    else:
        message = message.split(", got `")[0].replace("Expected", "expected", 1)
    suffix = "" if got is _MISSING or isinstance(got, dict) else f", got {got!r}"  # a table: its key says it
    return f"key `{key}`: {message}{suffix}" if key else f"{message}{suffix}"


def join_key(a: str, b: str) -> str:
    """`a.b`, or `a[1]` for an index.

    >>> join_key("ladder", "[1].level"), join_key("", "x"), join_key("job", "")
    ('ladder[1].level', 'x', 'job')
    """
    if not a or not b:
        return a or b
    return f"{a}{b}" if b.startswith("[") else f"{a}.{b}"


_MISSING = object()


def value_at(data: Any, path: str) -> Any:
    """The value at a msgspec path like `ladder[1].threshold` (or a marker when there is none)."""
    node = data
    for part in re.sub(r"\[", ".[", path).split("."):
        if not part:
            continue
        try:
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return _MISSING
    return node
