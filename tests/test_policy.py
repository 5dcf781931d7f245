"""Policy as data: the shipped default, validation with errors that name the key, shadow mode."""

from __future__ import annotations

import copy
import re
import tomllib

import pytest

from detectors.base import Signal
from pipeline.cli.main import main
from pipeline.config import DEFAULT_POLICY
from pipeline.errors import ConfigError
from detectors.registry import registry
from pipeline.enforce.policy import PolicyError, load_policy, parse_policy, violation_from
from tests.test_ledger import write_policy

DEFAULT = tomllib.loads(DEFAULT_POLICY.read_text())


def check(edit) -> str:
    """The error a copy of the default policy gives after `edit(data)`."""
    data = copy.deepcopy(DEFAULT)
    edit(data)
    with pytest.raises(PolicyError) as err:
        parse_policy(data, "p.toml")
    return str(err.value)


def test_the_default_policy_follows_marketplace_practice():
    policy = load_policy()
    assert set(policy.types) == set(registry().catalog)
    assert policy.expiry_days == 90
    assert [(s.threshold, s.level) for s in policy.ladder] == [
        (12, "warning"), (24, "restricted"), (36, "payout_hold"), (48, "suspended")]
    points = {name: rule.points for name, rule in policy.types.items()}
    assert 1 <= points["listing_spam"] <= 4 and 1 <= points["fake_discount"] <= 4
    assert 12 <= points["counterfeit_listing"] <= 48 and 12 <= points["prohibited_listing"] <= 48
    assert points["linked_accounts"] == 48
    assert policy.types["counterfeit_listing"].immediate_actions == ["listing_removal"]
    assert policy.types["prohibited_listing"].immediate_actions == ["listing_removal"]
    # A new detector starts in shadow mode until its appeals show it is right.
    assert [name for name, rule in policy.types.items() if not rule.enforced] == ["misleading_price_claim"]
    assert len({rule.education.module_id for rule in policy.types.values()}) == len(registry().catalog)


def test_every_key_of_the_default_policy_is_documented():
    text = DEFAULT_POLICY.read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    keys = {line.split("=")[0].strip() for line in text.splitlines() if re.match(r"^[a-z_]+ = ", line)}
    keys |= {"module_id", "title", "url"}  # inside the inline education tables
    assert keys - {"low", "medium", "high", "critical"} == {
        "expiry_days", "education_credit_points", "education_credit_days", "threshold", "level", "actions",
        "restrictions", "lesson_credit", "policy_id", "severity", "points", "enforced", "immediate_actions",
        "education", "module_id", "title", "url",
        # [incentives]
        "period_days", "per_clean_period", "cap", "min_orders", "min_lives", "benefit", "role", "min_health",
        "clean_days", "clean_of", "activity_days", "min_credits"}
    undocumented = [k for k in sorted(keys) if not re.search(rf"\b{k}\b", comments)]
    assert undocumented == []
    assert "health = round(1000 - penalty + credit)" in comments


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["types"]["listing_spam"].__setitem__("points", -1),
     "p.toml: key `types.listing_spam.points`: expected `int` >= 0, got -1"),
    (lambda d: d["types"]["listing_spam"].__setitem__("pionts", 2),
     "p.toml: unknown key `types.listing_spam.pionts`"),
    (lambda d: d["types"]["fake_discount"].pop("enforced"),
     "p.toml: missing key `types.fake_discount.enforced`"),
    (lambda d: d["types"]["listing_spam"].__setitem__("severity", "huge"),
     "p.toml: key `types.listing_spam.severity`: expected one of low, medium, high, critical, got 'huge'"),
    (lambda d: d["types"]["counterfeit_listing"].__setitem__("immediate_actions", ["ban"]),
     "p.toml: key `types.counterfeit_listing.immediate_actions[0]`: expected one of warning, listing_removal, "
     "live_restriction, payout_hold, suspension, got 'ban'"),
    (lambda d: d["types"]["listing_spam"]["education"].__setitem__("url", "academy"),
     "p.toml: key `types.listing_spam.education.url`"),
    (lambda d: d["ladder"][2].__setitem__("threshold", 20),
     "p.toml: key `ladder[2].threshold`: thresholds must increase step by step, got 20 after 24"),
    (lambda d: d["ladder"][1].__setitem__("threshold", "24"),
     "p.toml: key `ladder[1].threshold`: expected `int`, got '24'"),
    (lambda d: d["ladder"][0].__setitem__("restrictions", ["nap"]),
     "p.toml: key `ladder[0].restrictions[0]`: expected one of listing_limit, live_restriction, payout_hold, "
     "temporary_suspension, suspension, got 'nap'"),
    (lambda d: d["ladder"][3].__setitem__("level", "warning"),
     "p.toml: key `ladder[3].level`: level names must be unique and not `good`, got 'warning'"),
    (lambda d: d["health"]["severity_penalty"].__setitem__("critical", 5000),
     "p.toml: key `health.severity_penalty.critical`: expected `int` <= 1000, got 5000"),
    (lambda d: d.__setitem__("expiry_days", 0), "p.toml: key `expiry_days`: expected `float` > 0.0, got 0"),
    (lambda d: d["types"].pop("order_brushing"),
     "p.toml: missing table `types.order_brushing`: every catalog type needs a policy"),
    (lambda d: d["types"].__setitem__("spam", d["types"]["listing_spam"]),
     "p.toml: unknown violation type `types.spam`"),
    (lambda d: d["types"]["fake_discount"].__setitem__("policy_id", "SG-LST-001"),
     "is already the policy id of `types.listing_spam`"),
])
def test_an_invalid_policy_names_the_bad_key(edit, message):
    assert message in check(edit)


def test_a_bad_policy_file_stops_the_job_with_one_line(tmp_path, capsys):
    bad = write_policy(tmp_path / "bad.toml", **{"types.listing_spam.severity": '"huge"'})
    events = tmp_path / "e.jsonl"
    events.write_text("")
    assert main(["replay", str(events), "--out", str(tmp_path / "o"), "--policy", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.toml" in err and "types.listing_spam.severity" in err


def test_a_policy_file_that_is_not_toml_names_the_file(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("expiry_days = = 3\n")
    with pytest.raises(ConfigError) as err:
        load_policy(bad)
    assert "broken.toml: not valid TOML" in str(err.value)


def test_shadow_mode_violations_carry_no_points(tmp_path):
    policy = load_policy(write_policy(tmp_path / "p.toml", **{"types.listing_spam.enforced": "false"}))
    signal = Signal("seller:S1", "listing_spam", "listing_spam_v1", "img:ab", 10, 0, 10, 0.9, {}, "x")
    v = violation_from(signal, policy)
    assert (v.enforced, v.points, v.policy_id, v.education.module_id) == (
        False, 0, "SG-LST-001", "edu-listing-quality")
