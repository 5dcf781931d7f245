"""`shopguard run` as a subprocess the way an operator runs it, for the service tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent


def start_run(log_path: Path, *args: str) -> subprocess.Popen:
    """`shopguard run ARGS...`; both output streams go to `log_path` (`job.log()` reads it)."""
    with open(log_path, "wb") as log:
        job = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "run", "-q", *args], cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    job.log = log_path.read_text
    return job


def wait_until(condition: Callable[[], object], job: subprocess.Popen, what: str, timeout: float = 120) -> object:
    """Poll `condition` until it is truthy; fails if the job ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if job.poll() is not None:
            raise AssertionError(f"the job ended (exit {job.returncode}) before {what}:\n{job.log()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout:g} s:\n{job.log()[-3000:]}")


def lines(path: Path) -> list[dict]:
    """The complete JSON lines of an output file (none if it does not exist yet)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def summary_count(log: str, what: str) -> int:
    """A count from the closing summary (`  events read      12,345`)."""
    match = re.search(rf"^  {what}\s+([\d,]+)", log, re.MULTILINE)
    assert match, f"no `{what}` in the summary:\n{log[-2000:]}"
    return int(match.group(1).replace(",", ""))
