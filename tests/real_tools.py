"""Helpers for the tests that drive real programs: promtool, Prometheus, Alertmanager, the shopguard CLI.

A missing program is a failure that says how to install it, never a skip:
`make test` installs them on Debian (see the Makefile's `system-packages`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The Debian package that brings each program.
PACKAGE_OF = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "docker-compose": "docker-compose",
}


def tool(name: str) -> str:
    """Path of a program, or a failure that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run `make system-packages` as root "
                    f"(or `apt-get install {PACKAGE_OF.get(name, name)}`) and re-run the tests")
    return path


def run(cmd: list[str], timeout: float = 120, cwd: Path = ROOT, env: dict | None = None
        ) -> subprocess.CompletedProcess:
    """Run a program; fail with its full output unless it exits 0."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` exited {proc.returncode}\n"
                    f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}", pytrace=False)
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_consecutive_ports(count: int, attempts: int = 50) -> int:
    """The first of `count` consecutive free loopback ports (a cluster serves metrics on port + i)."""
    for _ in range(attempts):
        first = free_port()
        if first + count <= 65535 and all(_is_free(first + i) for i in range(1, count)):
            return first
    pytest.fail(f"found no {count} consecutive free ports on 127.0.0.1 in {attempts} attempts")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def http_json(url: str, data: bytes | None = None, timeout: float = 5):
    """GET (or POST `data`) and decode the JSON answer; an HTTP error's JSON body is returned with `http`."""
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as err:  # Prometheus puts the error in a JSON body
        return json.loads(err.read() or b"{}") | {"status": "error", "http": err.code}
    return json.loads(body) if body else None


def wait_until(predicate, timeout: float, what: str, logs=()) -> None:
    """Poll `predicate` until it is true; fail with the logs' tails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.25)
    tails = "\n".join(f"--- {p} ---\n{tail(p)}" for p in logs)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}", pytrace=False)


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def start(cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    """Start a program in the background with its output in `log`."""
    with open(log, "w") as out:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def shopguard_cli() -> str:
    """The CLI of this checkout's virtualenv (SHOPGUARD_CLI=path overrides it)."""
    if os.environ.get("SHOPGUARD_CLI"):
        return os.environ["SHOPGUARD_CLI"]
    for candidate in (Path(sys.executable).parent / "shopguard", ROOT / ".venv" / "bin" / "shopguard"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("shopguard")
    if not found:
        pytest.fail("the `shopguard` command is not installed: run `make setup` (pip install -e . in .venv)")
    return found
