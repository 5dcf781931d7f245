"""Rust panic noise: held back when the failure behind it is an expected one.

When a step raises, Bytewax prints a Rust panic message on stderr (`thread
'<unnamed>' panicked at src/inputs.rs...`, with `RUST_BACKTRACE` a whole
backtrace) before it re-raises the Python error. For an expected failure
(`ShopguardError`: a broker gone, a record Kafka refused) the command's own
one line says what happened and what to do, so those lines only bury it.
`held_rust_panics` sends the process's stderr (file descriptor 2, where
Rust writes) through a pipe: lines pass on at once until a panic starts;
from there they are held, dropped if the run ends in an expected error and
printed otherwise (a bug keeps everything). Python's own writes (logs,
progress) bypass the pipe, so they are never delayed or lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

from pipeline.errors import find_error

PANIC_START = b" panicked at "


@contextlib.contextmanager
def held_rust_panics():
    """For the life of the block: Rust's panic lines on stderr are held (see the module docstring)."""
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError):  # no usable stderr (a daemon): nothing to tidy
        yield
        return
    python_stderr = os.fdopen(os.dup(real), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    saved, moved = sys.stderr, _move_log_handlers(sys.stderr, python_stderr)
    sys.stderr = python_stderr
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    held: list[bytes] = []
    pump = threading.Thread(target=_pump, args=(read_end, real, held), name="shopguard-stderr", daemon=True)
    pump.start()
    expected = False
    try:
        yield
    except BaseException as err:
        expected = find_error(err) is not None
        raise
    finally:
        os.dup2(real, 2)  # closes the pipe's last write end: the pump reads to its end
        pump.join(timeout=5)
        sys.stderr = saved
        _move_log_handlers(python_stderr, saved, moved)
        python_stderr.close()
        if held and not expected:
            os.write(real, b"".join(held))
        os.close(real)


def _pump(read_end: int, real: int, held: list[bytes]) -> None:
    panicking = False
    with os.fdopen(read_end, "rb") as pipe:
        for line in pipe:
            panicking = panicking or PANIC_START in line
            if panicking:
                held.append(line)
            else:
                os.write(real, line)


def _move_log_handlers(old, new, handlers: list | None = None) -> list:
    """Point the log handlers that write to `old` at `new`; returns them (to move them back)."""
    handlers = handlers if handlers is not None else [
        h for logger in (logging.getLogger(), logging.getLogger("shopguard")) for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is old]
    for handler in handlers:
        handler.setStream(new)
    return handlers
