"""The README's two commands on a fresh machine: `make test` and `make run` install what they need.

scripts/system-packages.sh is what the Makefile calls before setting up;
CI (.ci/run) runs `make test` and nothing else, so CI proves this path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "system-packages.sh"
MISSING = "shopguard-no-such-package"


def makefile_list(name: str) -> list[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    words = re.search(rf"^{name} := (.*)$", text, re.M).group(1).split()
    return [p for w in words for p in (makefile_list(w[2:-1]) if w.startswith("$(") else [w])]


def as_unprivileged(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv is missing (util-linux): it runs the script as an unprivileged user")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert steps == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "make test"]
    assert "make test" in (ROOT / "README.md").read_text()


def test_make_test_installs_what_the_suite_drives():
    packages = set(makefile_list("TEST_PACKAGES"))
    assert {"python3-venv", "prometheus", "prometheus-alertmanager", "openjdk-17-jre-headless", "maven",
            "docker-compose", "chromium", "fonts-dejavu-core"} <= packages
    assert set(makefile_list("RUN_PACKAGES")) == {"python3-venv"}
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: system-packages-test setup$", makefile, re.M)
    assert re.search(r"^setup: system-packages-run ", makefile, re.M)


def test_nothing_to_do_when_every_package_is_there():
    if shutil.which("dpkg-query") is None:
        pytest.fail("not a Debian machine: this test checks the Debian path of scripts/system-packages.sh")
    proc = subprocess.run(["sh", str(SCRIPT), *makefile_list("TEST_PACKAGES")], capture_output=True, text=True,
                          timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), proc.stderr


def test_without_root_it_says_exactly_what_to_install_in_one_line():
    proc = subprocess.run(as_unprivileged(["sh", str(SCRIPT), "prometheus", MISSING]), capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line == (f"missing system packages: {MISSING}; install them with: sudo apt-get update && "
                    f"sudo apt-get install -y --no-install-recommends {MISSING}")
