"""`shopguard diff`: two policies over the same events, and who would be affected."""

from __future__ import annotations

import json

import pytest

from analysis.diff import diff, render
from pipeline.cli.common import standalone
from pipeline.cli.diff import add_diff_command
from pipeline.config import DEFAULT_POLICY
from tests.test_ledger import marketplace, write_events, write_policy


def shopguard_diff(*argv: str) -> int:
    """`shopguard diff ...` in-process, with the command line's error handling."""
    return standalone(add_diff_command, "diff", list(argv))


@pytest.fixture
def events(tmp_path):
    return str(write_events(tmp_path / "events.jsonl", marketplace()))


@pytest.fixture
def policies(tmp_path):
    default = str(DEFAULT_POLICY)
    strict = str(write_policy(tmp_path / "strict.toml", **{"types.listing_spam.points": "12"}))
    return default, strict


def test_diff_names_the_actors_a_stricter_policy_would_act_on(events, policies):
    report = diff(events, *policies)
    changed = {c["actor"]: c for c in report["changed"]}
    # spam costs 2 points by default (no step reached); 12 under B
    assert set(changed) == {"seller:S1", "seller:S2", "seller:S3"}
    assert changed["seller:S1"]["peak_level"] == ["good", "suspended"]
    assert changed["seller:S1"]["actions"] == {"listing_removal": [0, 1], "live_restriction": [0, 1],
                                              "payout_hold": [0, 1], "suspension": [0, 1], "warning": [0, 1]}
    assert changed["seller:S3"]["final_points"] == [2, 12]
    assert "violations" not in changed["seller:S1"]  # the same violations, only their cost differs
    a, b = report["totals"]["a"], report["totals"]["b"]
    assert (a["violations"], b["violations"]) == (7, 7)
    assert a["reached"] == {"warning": 0, "restricted": 0, "payout_hold": 0, "suspended": 0}
    assert b["reached"] == {"warning": 3, "restricted": 2, "payout_hold": 1, "suspended": 1}
    assert (a["actors_with_actions"], b["actors_with_actions"]) == (0, 3)


def test_the_same_policy_twice_changes_nobody(events, policies):
    report = diff(events, policies[0], policies[0])
    assert report["changed"] == []
    assert "no actor changes" in render(report)


def test_shadow_mode_shows_as_violations_moving_out_of_enforcement(events, policies, tmp_path):
    shadow = str(write_policy(tmp_path / "shadow.toml", **{"types.listing_spam.enforced": "false"}))
    report = diff(events, policies[1], shadow)
    s1 = next(c for c in report["changed"] if c["actor"] == "seller:S1")
    assert s1["violations"] == {"listing_spam": [4, 0]}
    assert s1["shadow_violations"] == {"listing_spam": [0, 4]}
    assert s1["final_level"] == ["suspended", "good"]


def test_the_command_prints_a_table_and_one_line_per_changed_actor(events, policies, capsys):
    assert shopguard_diff(events, "--policy", policies[0], "--policy", policies[1]) == 0
    text = capsys.readouterr().out
    assert "3 of 3 actors with any outcome change under B" in text
    s1 = next(line for line in text.splitlines() if line.strip().startswith("seller:S1"))
    assert "level good -> suspended" in s1 and "points 8 -> 48" in s1 and "+warning" in s1 and "+suspension" in s1
    reached = next(line for line in text.splitlines() if line.strip().startswith("warning"))
    assert reached.split()[1:] == ["0", "3"]


def test_the_command_prints_json_and_can_keep_both_runs(events, policies, capsys, tmp_path):
    keep = tmp_path / "kept"
    assert shopguard_diff(events, "--policy", policies[0], "--policy", policies[1], "--json",
                          "--out", str(keep), "-w", "2") == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["changed"]) == 3
    assert (keep / "a" / "actions.jsonl").read_text() == ""
    assert (keep / "b" / "actions.jsonl").read_text().count("\n") == 9


def test_a_bad_policy_is_named_before_anything_runs(events, policies, tmp_path, capsys):
    bad = write_policy(tmp_path / "bad.toml", **{"types.listing_spam.points": "-3"})
    assert shopguard_diff(events, "--policy", policies[0], "--policy", str(bad)) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "types.listing_spam.points" in err and len(err.strip().splitlines()) == 1


def test_diff_needs_exactly_two_policies(events, policies, capsys):
    with pytest.raises(SystemExit) as exit_:
        shopguard_diff(events, "--policy", policies[0])
    assert exit_.value.code == 2
    assert "give exactly two policies" in capsys.readouterr().err


def test_diff_weighs_incentives_lost_and_the_order_value_of_the_actors_affected(tmp_path, capsys):
    """Enforcing a type that ran in shadow mode: who loses the badge, and what they sell."""
    from tests.test_incentives import order_events
    from tests.test_ledger import T0, HOUR

    events = marketplace()
    for seller in ("S1", "S2", "S3", "S4"):
        events += order_events(seller, 6, T0 - 8 * HOUR)  # 6 orders of 30.00 USD each
    path = str(write_events(tmp_path / "events.jsonl", events))
    shadow = str(write_policy(tmp_path / "shadow.toml", **{"types.listing_spam.enforced": "false"}))
    strict = str(write_policy(tmp_path / "strict.toml", **{"types.listing_spam.points": "12"}))
    report = diff(path, shadow, strict)
    badge = report["incentives"]["programs"]["trusted_seller"]
    assert badge["lose"] == ["seller:S1", "seller:S2", "seller:S3"] and badge["gain"] == []
    assert badge["order_value_losing"] == {"USD": 3 * 6 * 30.0}
    a, b = report["incentives"]["sides"]["a"], report["incentives"]["sides"]["b"]
    assert (a["holding"]["trusted_seller"], b["holding"]["trusted_seller"]) == (4, 1)
    assert (a["actors_restricted"], b["actors_restricted"]) == (0, 3)
    assert a["order_value_affected"] == {} and b["order_value_affected"] == {"USD": 540.0}
    assert shopguard_diff(path, "--policy", shadow, "--policy", strict) == 0
    text = capsys.readouterr().out
    assert "trusted_seller under B: +0 actors gain it, -3 lose it (order value USD 540.00)" in text
    assert "    B: USD 540.00" in text
