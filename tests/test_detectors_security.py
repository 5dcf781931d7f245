"""account_takeover (the victim is protected) and linked_accounts (ban evasion)."""

from __future__ import annotations

import pickle

from detectors.security import IdentifierFanOut, IdentifierNote, LinkedAccounts
from pipeline.contract.events import AccountLogin, PayoutChanged
from pipeline.enforce.policy import load_policy, violation_from
from tests.detector_helpers import feed, shipped, through_the_flow

T0 = 1_793_491_200_000
MINUTE = 60_000

_ids = iter(range(10**9))


def login(minute, device="home-phone", country="US", actor="seller:S1", ip=None):
    n = next(_ids)
    return AccountLogin(event_id=f"l{n}", ts=T0 + int(minute * MINUTE), actor=actor, device_id=device,
                        ip=ip or f"24.0.0.{n % 250}", country=country)


def payout(minute, payout_hash="po-new", actor="seller:S1"):
    return PayoutChanged(event_id=f"p{next(_ids)}", ts=T0 + int(minute * MINUTE), actor=actor,
                         payout_hash=payout_hash)


def at_home():
    return [login(0), login(150, device="home-laptop"), login(300)]


# ---- account_takeover ----------------------------------------------------------------


def test_an_unfamiliar_sign_in_then_a_payout_change_is_a_takeover_notice_to_the_victim():
    det = shipped("account_takeover")
    found = feed(det, at_home() + [login(400, device="d-x", country="NG", ip="41.1.2.3"), payout(425)])
    assert len(found) == 1
    s = found[0]
    assert (s.actor, s.violation_type) == ("seller:S1", "account_takeover")
    assert s.detected_at == T0 + 425 * MINUTE and s.window_start == T0 + 400 * MINUTE
    ev = s.evidence
    assert ev["login_device_id"] == "d-x" and ev["login_country"] == "NG"
    assert ev["login_country_new"] and ev["login_network_new"] and ev["login_network"] == "41.1"
    assert ev["minutes_after_login"] == 25 and ev["new_payout_hash"] == "po-new"
    assert set(ev["known_devices"]) == {"home-phone", "home-laptop"} and ev["known_countries"] == ["US"]
    assert 0.7 <= s.confidence <= 1.0
    # A security notice to the owner, not an accusation.
    assert s.explanation.startswith("For your protection") and "if that was not you" in s.explanation
    for word in ("violat", "fraud", "fake", "abuse", "you broke"):
        assert word not in s.explanation.lower()


def test_the_policy_gives_the_victim_no_points_and_a_payout_hold():
    det = shipped("account_takeover")
    signal = feed(det, at_home() + [login(400, device="d-x", country="RU"), payout(410)])[0]
    violation = violation_from(signal, load_policy())
    assert violation.points == 0
    assert load_policy().types["account_takeover"].immediate_actions == ["payout_hold"]


def test_the_very_first_sign_in_is_never_suspicious():
    det = shipped("account_takeover")
    assert feed(det, [login(0, device="d-first", country="BR"), payout(10)]) == []


def test_a_traveller_signing_in_abroad_without_a_payout_change_is_clean():
    det = shipped("account_takeover")
    assert feed(det, at_home() + [login(400, device="hotel-pc", country="JP"), login(460, device="hotel-pc",
                                                                                      country="JP")]) == []


def test_a_payout_change_hours_after_travel_and_back_home_is_clean():
    det = shipped("account_takeover")
    trip = [login(400, device="hotel-pc", country="JP"), login(540), payout(560)]
    assert feed(det, at_home() + trip) == []


def test_a_new_phone_at_home_or_the_own_phone_abroad_is_clean():
    det = shipped("account_takeover")
    assert feed(det, at_home() + [login(400, device="new-phone", country="US"), payout(410)]) == []
    det = shipped("account_takeover")
    assert feed(det, at_home() + [login(400, device="home-phone", country="ES"), payout(410)]) == []


def test_a_stranger_on_a_proxy_in_the_owners_own_country_then_a_payout_change_is_found():
    """The country is hidden behind a proxy; the device and the network are not the owner's."""
    det = shipped("account_takeover")
    found = feed(det, at_home() + [login(400, device="d-x", ip="98.7.6.5"), payout(440, "po-thief")])
    assert len(found) == 1
    s = found[0]
    assert (s.actor, s.detected_at, s.window_start) == ("seller:S1", T0 + 440 * MINUTE, T0 + 400 * MINUTE)
    ev = s.evidence
    assert ev["login_country"] == "US" and not ev["login_country_new"]
    assert ev["login_network"] == "98.7" and ev["login_network_new"] and ev["known_networks"] == ["24.0"]
    assert ev["minutes_after_login"] == 40 and ev["new_payout_hash"] == "po-thief"
    assert "on a network your account has not used" in s.explanation
    # Weaker than a stranger abroad, still a protective hold.
    abroad = feed(shipped("account_takeover"), at_home() + [login(400, device="d-x", country="NG", ip="41.1.2.3"),
                                                            payout(440)])[0]
    assert 0.7 <= s.confidence < abroad.confidence


def test_a_new_phone_on_the_home_network_with_a_new_address_is_clean():
    """Home connections are re-addressed within the provider's block: that is still the owner's network."""
    det = shipped("account_takeover")
    assert feed(det, at_home() + [login(400, device="new-phone", ip="24.0.77.201"), payout(410)]) == []


def test_the_own_phone_on_a_new_network_is_clean():
    det = shipped("account_takeover")
    assert feed(det, at_home() + [login(400, device="home-phone", ip="172.58.3.3"), payout(410)]) == []


def test_a_new_device_the_owner_then_uses_at_home_is_vouched_for():
    """A new laptop first seen at the office, then at home, before the owner changes the payout account."""
    det = shipped("account_takeover")
    events = at_home() + [login(400, device="new-laptop", ip="63.9.1.1"), login(420, device="new-laptop"),
                          payout(430)]
    assert feed(det, events) == []
    det = shipped("account_takeover")  # or the owner's phone on the new network
    events = at_home() + [login(400, device="new-laptop", ip="63.9.1.1"), login(420, ip="63.9.1.2"), payout(430)]
    assert feed(det, events) == []


def test_an_attacker_hopping_between_proxies_vouches_for_nothing():
    det = shipped("account_takeover")
    events = at_home() + [login(400, device="d-x", ip="98.7.6.5"), login(405, device="d-y", ip="51.2.3.4"),
                          login(410, device="d-x", ip="51.2.3.9"), payout(420)]
    found = feed(det, events)
    assert len(found) == 1 and found[0].evidence["login_device_id"] == "d-y"  # the closest unfamiliar sign-in


def test_a_payout_change_just_past_the_window_is_clean():
    det = shipped("account_takeover")
    window_minutes = det.config.payout_window_seconds / 60
    assert feed(det, at_home() + [login(400, device="d-x", country="NG"), payout(400 + window_minutes + 1)]) == []


def test_a_payout_change_before_the_unfamiliar_sign_in_is_clean():
    det = shipped("account_takeover")
    assert feed(det, at_home() + [payout(390), login(400, device="d-x", country="NG")]) == []


def test_a_late_sign_in_that_arrives_after_the_payout_change_is_still_found():
    det = shipped("account_takeover")
    found = feed(det, at_home() + [payout(420), login(400, device="d-x", country="NG")])
    assert len(found) == 1 and found[0].detected_at == T0 + 420 * MINUTE


def test_one_notice_per_cooldown_for_repeated_payout_changes():
    det = shipped("account_takeover")
    events = at_home() + [login(400, device="d-x", country="NG"), login(402, device="d-x", country="NG"),
                          payout(410, "po-a"), payout(415, "po-b")]
    assert len(feed(det, events)) == 1


def test_an_owner_back_after_the_device_memory_is_learned_again_not_flagged():
    det = shipped("account_takeover")
    back = det.config.known_device_days * 24 * 60 + 500
    assert feed(det, at_home() + [login(back, device="home-phone", country="US"), payout(back + 10)]) == []
    det = shipped("account_takeover")
    states: dict = {}
    feed(det, at_home() + [login(back, device="new-phone", country="DE")], states)
    assert list(states["seller:S1"].devices) == ["new-phone"] and states["seller:S1"].logins == 1


def test_takeover_state_stays_bounded():
    det = shipped("account_takeover")
    states: dict = {}
    events = [login(i * 10, device=f"d{i}", ip=f"{i % 250}.{i % 7}.0.1",
                    country=("US", "CA", "MX", "BR", "FR", "DE", "JP", "AU", "IT", "ES", "NL", "GB")[i % 12])
              for i in range(2_000)]
    events += [payout(20_000 + i) for i in range(50)]
    feed(det, events, states)
    state = states["seller:S1"]
    assert len(state.devices) <= det.config.max_known_devices
    assert len(state.countries) <= det.config.max_known_countries
    assert len(state.networks) <= det.config.max_known_devices
    assert len(state.unfamiliar) <= 4 and len(state.payouts) <= 4


def test_takeover_state_survives_pickling():
    det = shipped("account_takeover")
    states: dict = {}
    feed(det, at_home() + [login(400, device="d-x", country="NG")], states)
    restored = pickle.loads(pickle.dumps(states))
    assert len(feed(det, [payout(430)], restored)) == 1


def test_takeover_runs_through_the_real_flow_with_a_payout_hold(tmp_path):
    events = at_home() + [login(400, device="d-x", country="NG"), payout(425)]
    out = through_the_flow(events, tmp_path)
    takeovers = [v for v in out["violations.jsonl"] if v["violation_type"] == "account_takeover"]
    assert [(v["actor"], v["points"]) for v in takeovers] == [("seller:S1", 0)]
    holds = [a for a in out.get("actions.jsonl", []) if a["action"] == "payout_hold"]
    assert [(a["actor"], a["violation_ids"]) for a in holds] == [("seller:S1", [takeovers[0]["violation_id"]])]


def test_a_proxy_in_the_owners_country_runs_through_the_real_flow(tmp_path):
    events = at_home() + [login(400, device="d-x", ip="98.7.6.5"), payout(430)]
    out = through_the_flow(events, tmp_path)
    takeovers = [v for v in out["violations.jsonl"] if v["violation_type"] == "account_takeover"]
    assert [(v["actor"], v["points"], v["evidence"]["login_network_new"]) for v in takeovers] == [
        ("seller:S1", 0, True)]
    assert [a["action"] for a in out.get("actions.jsonl", []) if a["actor"] == "seller:S1"] == ["payout_hold"]



# ---- linked_accounts --------------------------------------------------------------------


def _linking():
    """The fan-out and the linking class, configured as config/shopguard.toml ships them."""
    link = shipped("linked_accounts")
    return IdentifierFanOut(link.config), link


class Flow:
    """The proposed wiring in miniature: fan-out keyed by actor, linking keyed by identifier."""

    def __init__(self):
        self.fan, self.link = _linking()
        self.actors: dict = {}
        self.identifiers: dict = {}
        self.found: list = []

    def event(self, event):
        state, notes = self.fan.on_account_event(self.actors.get(event.actor), event)
        self.actors[event.actor] = state
        self.notes(notes)
        return self

    def suspend(self, actor, minute):
        state, notes = self.fan.on_suspension(self.actors.get(actor), actor, T0 + int(minute * MINUTE))
        self.actors[actor] = state
        self.notes(notes)
        return self

    def reinstate(self, actor, minute):
        state, notes = self.fan.on_reinstatement(self.actors.get(actor), actor, T0 + int(minute * MINUTE))
        self.actors[actor] = state
        self.notes(notes)
        return self

    def notes(self, notes):
        for note in notes:
            state, signals = self.link.on_event(self.identifiers.get(note.identifier), note)
            self.identifiers[note.identifier] = state
            self.found.extend(signals)


def test_a_new_account_on_a_suspended_sellers_device_is_ban_evasion():
    flow = Flow().event(login(0, "dev-A", actor="seller:A")).event(payout(80, "po-A", actor="seller:A"))
    flow.suspend("seller:A", 200).event(login(240, "dev-A", actor="creator:B"))
    assert len(flow.found) == 1
    s = flow.found[0]
    assert (s.actor, s.violation_type, s.subject) == ("creator:B", "linked_accounts", "linked:seller:A")
    assert s.detected_at == T0 + 240 * MINUTE and s.window_start == T0 + 200 * MINUTE
    assert s.evidence["identifier_kind"] == "device" and s.evidence["identifier"] == "dev-A"
    assert s.evidence["suspended_actor"] == "seller:A" and s.evidence["minutes_after_suspension"] == 40
    assert "seller:A" in s.explanation and "suspended" in s.explanation


def test_a_payout_change_to_a_suspended_sellers_payout_hash_is_ban_evasion():
    flow = Flow().event(login(0, "dev-A", actor="seller:A")).event(payout(80, "po-A", actor="seller:A"))
    flow.suspend("seller:A", 200).event(login(220, "dev-B", actor="seller:B")).event(payout(250, "po-A",
                                                                                         actor="seller:B"))
    assert [(s.actor, s.evidence["identifier_kind"]) for s in flow.found] == [("seller:B", "payout")]
    assert flow.found[0].confidence > 0.8


def test_sharing_a_device_only_before_the_ban_is_allowed():
    flow = Flow().event(login(0, "family-laptop", actor="seller:A")).event(login(30, "family-laptop",
                                                                               actor="seller:B"))
    flow.suspend("seller:A", 200)
    assert flow.found == []
    flow.event(login(260, "family-laptop", actor="seller:B"))  # but trading on through it after the ban is not
    assert [(s.actor, s.detected_at) for s in flow.found] == [("seller:B", T0 + 260 * MINUTE)]


def test_a_notice_arriving_after_the_use_finds_the_first_use_after_the_ban():
    """Replay order: the ledger's suspension comes at the end, after every account event."""
    flow = Flow().event(login(0, "dev-A", actor="seller:A"))
    for minute in (100, 230, 260, 400):
        flow.event(login(minute, "dev-A", actor="seller:B"))
    flow.suspend("seller:A", 200)
    assert [(s.actor, s.detected_at, s.window_start) for s in flow.found] == [
        ("seller:B", T0 + 230 * MINUTE, T0 + 200 * MINUTE)]


def test_a_tie_through_device_and_payout_is_one_violation():
    flow = Flow().event(login(0, "dev-A", actor="seller:A")).event(payout(80, "po-A", actor="seller:A"))
    flow.suspend("seller:A", 200)
    flow.event(login(240, "dev-A", actor="seller:B")).event(payout(260, "po-A", actor="seller:B"))
    policy = load_policy()
    assert len(flow.found) == 2
    assert len({violation_from(s, policy).violation_id for s in flow.found}) == 1
    assert violation_from(flow.found[0], policy).points == 48


def test_a_shared_public_device_links_nobody():
    flow = Flow().event(login(0, "shop-tablet", actor="seller:A"))
    for k in range(6):
        flow.event(login(10 + k, "shop-tablet", actor=f"seller:X{k}"))
    flow.suspend("seller:A", 200).event(login(240, "shop-tablet", actor="seller:B"))
    assert flow.found == []


def test_a_reinstated_seller_links_nobody_afterwards():
    flow = Flow().event(login(0, "dev-A", actor="seller:A")).suspend("seller:A", 200)
    flow.reinstate("seller:A", 300).event(login(400, "dev-A", actor="seller:B"))
    assert flow.found == []


def test_the_suspended_actors_own_use_and_another_suspended_account_are_not_linked():
    flow = Flow().event(login(0, "dev-A", actor="seller:A")).event(login(5, "dev-A", actor="seller:C"))
    flow.suspend("seller:A", 200).suspend("seller:C", 200)
    flow.event(login(240, "dev-A", actor="seller:A")).event(login(250, "dev-A", actor="seller:C"))
    assert flow.found == []


def test_a_device_first_seen_after_the_suspension_is_watched_too():
    flow = Flow().event(login(0, "dev-A", actor="seller:A")).suspend("seller:A", 200)
    flow.event(login(220, "dev-A2", actor="seller:A")).event(login(300, "dev-A2", actor="seller:B"))
    assert [(s.actor, s.evidence["identifier"]) for s in flow.found] == [("seller:B", "dev-A2")]


def test_one_linked_violation_per_cooldown_for_repeated_use():
    flow = Flow().event(login(0, "dev-A", actor="seller:A")).suspend("seller:A", 200)
    for minute in range(240, 600, 30):
        flow.event(login(minute, "dev-A", actor="seller:B"))
    assert len(flow.found) == 1


def test_an_unknown_note_kind_is_an_error():
    _, link = _linking()
    try:
        link.on_event(None, IdentifierNote("banned", "device:d", "seller:A", 0))
    except ValueError as err:
        assert "unknown IdentifierNote kind 'banned'" in str(err)
    else:
        raise AssertionError("expected ValueError")


def test_linking_state_stays_bounded():
    flow = Flow()
    for k in range(500):  # one busy actor on many devices
        flow.event(login(k, f"dev{k}", actor="seller:A"))
    for k in range(500):  # one device used many times
        flow.event(login(600 + k, "dev-shared", actor="seller:B"))
    cfg = flow.link.config
    assert len(flow.actors["seller:A"].identifiers) <= cfg.max_identifiers_per_actor
    shared = flow.identifiers["device:dev-shared"]
    assert all(len(uses) <= 8 for uses in shared.users.values())
    for k in range(50):  # many actors on one identifier
        flow.event(login(2_000 + k, "dev-kiosk", actor=f"seller:K{k}"))
    kiosk = flow.identifiers["device:dev-kiosk"]
    assert len(kiosk.users) <= cfg.max_actors_per_identifier and kiosk.crowded


def test_old_uses_and_suspensions_are_forgotten_after_the_memory():
    flow = Flow().event(login(0, "dev-A", actor="seller:A")).suspend("seller:A", 10)
    memory_minutes = flow.link.config.memory_days * 24 * 60
    flow.event(login(memory_minutes + 100, "dev-A", actor="seller:B"))
    state = flow.identifiers["device:dev-A"]
    assert flow.found == [] and "seller:A" not in state.suspended and list(state.users) == ["seller:B"]
    assert flow.link.expires_at(state) == state.newest + int(flow.link.config.memory_days * 86_400_000)


def test_linking_state_survives_pickling():
    flow = Flow().event(login(0, "dev-A", actor="seller:A")).suspend("seller:A", 200)
    flow.actors = pickle.loads(pickle.dumps(flow.actors))
    flow.identifiers = pickle.loads(pickle.dumps(flow.identifiers))
    flow.event(login(240, "dev-A", actor="seller:B"))
    assert len(flow.found) == 1


def test_no_detect_step_builds_the_linked_accounts_detector():
    from detectors.registry import registry

    assert registry()["linked_accounts"].cls is LinkedAccounts and LinkedAccounts.event_types == frozenset()
