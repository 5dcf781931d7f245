"""The command line as a user meets it: help on every command, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.cli.main import main


def shopguard(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], capture_output=True, input=stdin,
                          timeout=120)


@pytest.mark.parametrize("command", ["run", "replay", "simulate"])
def test_every_command_explains_itself(command):
    result = shopguard(command, "--help")
    assert result.returncode == 0
    assert b"usage: shopguard " + command.encode() in result.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["replay"], "the following arguments are required: EVENTS"),
        (["replay", "x.jsonl"], "--out"),
        (["replay", "missing.jsonl", "--out", "o"], "missing.jsonl: no such events file"),
        (["simulate", "--out", "o", "--hours", "-1"], "must be greater than 0"),
        (["replay", "x.jsonl", "--out", "o", "--workers", "0"], "must be 1 or more"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_wrong_arguments_give_one_line_that_says_what_to_do(tmp_path, args, words):
    result = subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], capture_output=True, cwd=tmp_path,
                            timeout=60)
    assert result.returncode == 2
    err = result.stderr.decode().strip()
    assert len(err.splitlines()) == 1, err
    assert words in err and "Traceback" not in err


def test_a_bad_config_key_is_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[detectors.listing_spam]\nmin_listings = 'five'\n")
    events = tmp_path / "e.jsonl"
    events.write_text("")
    result = shopguard("replay", str(events), "--out", str(tmp_path / "o"), "--config", str(bad))
    err = result.stderr.decode()
    assert result.returncode == 2
    assert "key `detectors.listing_spam.min_listings`: expected `int`, got 'five'" in err
    assert "Traceback" not in err


def test_an_unknown_config_key_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[job]\nshard = 3\n")
    assert main(["replay", "-", "--out", str(tmp_path / "o"), "--config", str(bad)]) == 2
    assert "unknown key `job.shard`" in capsys.readouterr().err


def test_replay_reads_stdin(tmp_path, sample_events):
    result = shopguard("replay", "-", "--out", str(tmp_path / "o"), stdin=sample_events.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert b"events read      16" in result.stderr
    assert b"duplicates       1" in result.stderr
