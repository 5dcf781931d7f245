"""Online models (detectors/models/): anomaly scores to the review queue, learning from appeals, drift."""

from __future__ import annotations

import pickle
import random
from collections import defaultdict

import msgspec
import pytest

from detectors.models.anomaly import AnomalyModel
from detectors.models.appeals import APPEAL_MODEL, AppealClassifier
from detectors.models.config import ModelsConfig
from detectors.models.drift import DriftMonitor
from detectors.models.features import ActorFeatures, FeatureUpdate
from detectors.models.online import OnlineModels
from pipeline.config import DEFAULT_CONFIG, read_toml
from pipeline.contract.events import AppealDecided, OrderPlaced
from pipeline.contract.records import AppealOutcome, Education, ReviewEntry, Violation
from pipeline.engine.detect import FeatureShard, feature_key
from pipeline.errors import ConfigError, validation_message
from sinks.metrics import Metrics

T0 = 1_793_491_200_000
MINUTE, HOUR = 60_000, 3_600_000


def config(**tables):
    """The shipped [models.*] tables with some keys changed, e.g. config(anomaly={"warmup_updates": 500})."""
    shipped = read_toml(DEFAULT_CONFIG)["models"]
    return models_config({name: {**table, **tables.get(name, {})} for name, table in shipped.items()})


def models_config(tables: dict) -> ModelsConfig:
    """`[models]` converted as the job's config loader does, with its error messages."""
    try:
        return msgspec.convert(tables, ModelsConfig)
    except msgspec.ValidationError as err:
        raise ConfigError(f"config: {validation_message(err, tables, 'models')}") from None


# ---- a small marketplace of honest shops, and a ring ---------------------------------------------


def honest_orders(sellers=120, hours=5.0, seed=1):
    """Shops with their own order rates; buyers mostly established, a few new, now and then a shared laptop."""
    rng = random.Random(seed)
    events, n = [], 0
    for s in range(sellers):
        rate = rng.lognormvariate(1.7, 0.6)  # orders per hour
        t = rng.uniform(0, 30) * MINUTE
        while t < hours * HOUR:
            n += 1
            device = f"d{n}" if rng.random() > 0.03 else f"house-{s}"
            events.append(OrderPlaced(
                event_id=f"o{n}", ts=T0 + int(t), order_id=f"O{n}", seller_id=f"S{s}", buyer_id=f"B{n}",
                listing_id="L1", amount=20.0, currency="USD", creator_id=None, live_id=None,
                buyer_account_age_days=rng.randint(0, 20) if rng.random() < 0.04 else 400,
                device_id=device, shipping_address_hash=f"sa{n}", payment_hash=f"pm{n}"))
            t += rng.expovariate(rate / HOUR)
    return sorted(events, key=lambda e: e.ts)


def ring_burst(start_minute, seller="RING", orders=30):
    """Fresh accounts on two devices and two cards, an order every 30 s."""
    return [OrderPlaced(
        event_id=f"ring-{seller}-{start_minute}-{i}", ts=T0 + int((start_minute + i / 2) * MINUTE),
        order_id=f"R{seller}{start_minute}-{i}", seller_id=seller, buyer_id=f"F{i}", listing_id="L9", amount=3.0,
        currency="USD", creator_id=None, live_id=None, buyer_account_age_days=1, device_id=f"ring-d{i % 2}",
        shipping_address_hash="ring-sa", payment_hash=f"ring-p{i % 2}") for i in range(orders)]


def ring_history(seller="RING"):
    """The ring's shop has an ordinary past: an order every 20 minutes from ordinary buyers."""
    return [OrderPlaced(
        event_id=f"past-{seller}-{m}", ts=T0 + m * MINUTE, order_id=f"P{seller}{m}", seller_id=seller,
        buyer_id=f"PB{m}", listing_id="L1", amount=20.0, currency="USD", creator_id=None, live_id=None,
        buyer_account_age_days=500, device_id=f"pd{m}", shipping_address_hash=f"psa{m}", payment_hash=f"ppm{m}")
        for m in range(0, 240, 20)]


def updates_of(events):
    features_cfg = config().features
    shards: dict[str, FeatureShard] = {}
    out = []
    for event in events:
        if type(event) not in ActorFeatures.RESCORE:  # what the dataflow routes to the feature step
            continue
        key = feature_key(event, 8)
        shard = shards.get(key)
        if shard is None:
            shard = shards[key] = FeatureShard(ActorFeatures(features_cfg), Metrics(), allowed_lateness_ms=300_000,
                                               dedupe_horizon_ms=7_200_000)
        out += shard.on_batch([[event]], now=0.0)
    return out


@pytest.fixture(scope="module")
def market():
    """Feature updates of 120 honest shops over 5 hours, with a ring burst at hour 4."""
    events = sorted(honest_orders() + ring_history() + ring_burst(240), key=lambda e: e.ts)
    return updates_of(events)


WARM = {"anomaly": {"warmup_updates": 800}}  # the small market has ~3,000 updates


def reviews(records):
    return [r for r in records if isinstance(r, ReviewEntry)]


# ---- the anomaly model --------------------------------------------------------------------------------


def test_a_ring_burst_reaches_the_review_queue_with_the_features_that_show_it(market):
    models = OnlineModels(config(**WARM))
    queue = reviews(models.process(market))
    ring = [r for r in queue if r.actor == "seller:RING"]
    assert len(ring) == 1  # once per cool-down, however long the burst lasts
    entry = ring[0]
    assert entry.model == "seller_anomaly_v1" and 0.0 < entry.score <= 1.0
    assert T0 + 240 * MINUTE <= entry.ts <= T0 + 255 * MINUTE  # during the burst
    assert set(entry.features) & {"new_buyer_share", "devices_per_order", "payments_per_order"}
    for name, contribution in entry.features.items():
        assert set(contribution) == {"value", "usual", "z"} and abs(contribution["z"]) >= 2.0
    new_buyers = entry.features.get("new_buyer_share")
    if new_buyers:
        assert new_buyers["value"] > new_buyers["usual"]
    # The ring is among the few actors the queue names, not one of many.
    assert len({r.actor for r in queue}) <= 8


def test_the_burst_scores_above_every_honest_shop(market):
    model = AnomalyModel(config(**WARM).anomaly)
    best = defaultdict(float)
    for u in market:
        scored = model.score(u.actor, u.role, u.features, u.ts)
        best[u.actor] = max(best[u.actor], scored.score)
    honest = sorted(v for actor, v in best.items() if actor != "seller:RING")
    assert best["seller:RING"] > honest[-1]


def test_what_was_flagged_is_not_learned(market):
    model = AnomalyModel(config(**WARM).anomaly)
    for u in market[:2000]:
        model.score(u.actor, u.role, u.features, u.ts)
    seller = model.state["seller"]
    learned, moments = seller.learned, pickle.dumps(seller.moments)
    ring = {"orders_per_hour": 60.0, "order_growth": 9.0, "new_buyer_share": 0.85, "devices_per_order": 0.2,
            "payments_per_order": 0.2, "refund_rate": 0.0, "login_novelty": 0.0, "payout_changes": 0.0}
    scored = model.score("seller:X", "seller", ring, T0 + 5 * HOUR)
    assert scored.flagged and scored.review is not None
    assert seller.learned == learned and pickle.dumps(seller.moments) == moments


def test_one_review_entry_per_actor_per_cool_down():
    model = AnomalyModel(msgspec.structs.replace(config().anomaly, warmup_updates=300, cooldown_hours=1.0))
    rng = random.Random(3)
    for i in range(1500):
        usual = {"orders_per_hour": rng.uniform(2, 10), "new_buyer_share": rng.uniform(0, 0.1),
                 "devices_per_order": rng.uniform(0.9, 1.0)}
        model.score(f"seller:S{i % 40}", "seller", usual, T0 + i * 1000)
    odd = {"orders_per_hour": 80.0, "new_buyer_share": 0.9, "devices_per_order": 0.1}
    entries = [model.score("seller:X", "seller", odd, T0 + 2 * HOUR + m * MINUTE).review for m in range(0, 130, 10)]
    assert [m * 10 for m, e in enumerate(entries) if e is not None] == [0, 60, 120]


def test_half_space_trees_can_be_chosen_and_also_ranks_the_burst_first(market):
    model = AnomalyModel(config(anomaly={"detector": "half_space_trees", "warmup_updates": 800}).anomaly)
    best = defaultdict(float)
    for u in market:
        best[u.actor] = max(best[u.actor], model.score(u.actor, u.role, u.features, u.ts).score)
    honest = sorted(v for actor, v in best.items() if actor != "seller:RING")
    assert all(0.0 <= v <= 1.0 for v in best.values())
    assert best["seller:RING"] >= honest[int(0.95 * len(honest))]


def test_state_restored_from_a_snapshot_continues_where_it_was(market):
    cfg = config(**WARM)
    whole = OnlineModels(cfg)
    expected = whole.process(market)
    half = len(market) // 2
    first = OnlineModels(cfg)
    before = first.process(market[:half])
    snapshot = pickle.dumps(first.state, protocol=pickle.HIGHEST_PROTOCOL)
    resumed = OnlineModels(cfg, resume=pickle.loads(snapshot))
    assert resumed.anomaly.state["seller"].learned == first.anomaly.state["seller"].learned > 800  # not reset
    assert before + resumed.process(market[half:]) == expected
    # And its first score after the restart is a real score, not a cold model's 0.
    u = market[half]
    assert OnlineModels(cfg, resume=pickle.loads(snapshot)).anomaly.score(u.actor, u.role, u.features, u.ts).warm


def test_the_same_inputs_give_the_same_outputs(market):
    cfg = config(**WARM)
    assert OnlineModels(cfg).process(market) == OnlineModels(cfg).process(market)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 11])
def test_simulated_abusers_rank_above_honest_actors(seed):
    from pipeline.contract.events import AnyEvent
    from simulator import SimConfig, iter_events, labels

    sim = SimConfig(seed=seed, scale=0.5)
    events = [msgspec.convert(e, AnyEvent) for e in iter_events(sim)]
    model = AnomalyModel(config().anomaly)
    best = defaultdict(float)
    actors = set()
    for u in updates_of(events):
        actors.add(u.actor)
        scored = model.score(u.actor, u.role, u.features, u.ts)
        if scored.warm:
            best[u.actor] = max(best[u.actor], scored.score)
    abused: dict[str, set] = defaultdict(set)
    for label in labels(sim):
        abused[label["actor"]].add(label["violation_type"])
    # Abuse that shows in behaviour (not only in words: text is the text detectors' job).
    behavioural = {"engagement_inflation", "order_brushing", "price_gouging", "fake_discount",
                   "counterfeit_listing", "prohibited_listing", "listing_spam", "account_takeover"}
    honest = [best[a] for a in actors if a not in abused]
    shows = [best[a] for a in actors if abused.get(a, set()) & behavioural]
    everyone = [best[a] for a in actors if a in abused]
    assert roc_auc(shows, honest) >= 0.90
    # Every abuser, those whose abuse is only words included (#14's worlds added text-only tactics the
    # behavioural features cannot see): 0.777 on seed 11 when this floor was set.
    assert roc_auc(everyone, honest) >= 0.75


def roc_auc(positives, negatives):
    """Probability that a random positive outscores a random negative (ties count half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


# ---- learning from appeals ----------------------------------------------------------------------------


_n = iter(range(10**9))


def violation(was_ratio, vtype="fake_discount", confidence=0.8, enforced=True, at=0):
    i = next(_n)
    return Violation(
        violation_id=f"v{i}", actor=f"seller:S{i}", violation_type=vtype, policy_id="SG-PRC-002",
        severity="medium", points=4, detector=f"{vtype}_v1", confidence=confidence, detected_at=T0 + at,
        window_start=T0 + at, window_end=T0 + at, evidence={"was_ratio": was_ratio, "listing_id": "L1"},
        explanation="x", education=Education("m", "t", "https://e.example"), enforced=enforced)


def decided(v, decision):
    return AppealDecided(event_id=f"ad-{v.violation_id}", ts=v.detected_at + HOUR, appeal_id=f"A{v.violation_id}",
                         violation_id=v.violation_id, actor=v.actor, decision=decision, reviewer_id="R1")


def teach(models, n=80, low_wrong=True):
    """Reviewers overturn violations whose "was" price is barely above (ratio 1.5) and uphold blatant ones (6x)."""
    out = []
    for i in range(n):
        low = i % 2 == 0
        v = violation(1.5 if low else 6.0, at=i * MINUTE)
        out += models.process([v, decided(v, "overturned" if low == low_wrong else "upheld")])
    return out


def test_appeal_outcomes_move_the_confidence_in_the_expected_direction():
    models = OnlineModels(config())
    fresh = models.process([violation(1.5)])[0]
    assert fresh.confidence == 0.8 and "appeal_model" not in fresh.evidence  # too few outcomes yet
    teach(models)
    weak, blatant = models.process([violation(1.5, at=HOUR * 3), violation(6.0, at=HOUR * 3)])
    assert weak.confidence < 0.8 < blatant.confidence
    assert weak.evidence["appeal_model"]["p_overturned"] > 0.6 > 0.3 > blatant.evidence["appeal_model"]["p_overturned"]
    assert weak.evidence["appeal_model"]["detector_confidence"] == 0.8 and weak.enforced
    assert models.appeals.state.outcomes == {"fake_discount": 80}


def test_the_opposite_outcomes_move_it_the_other_way():
    models = OnlineModels(config())
    teach(models, low_wrong=False)
    weak, blatant = models.process([violation(1.5, at=HOUR * 3), violation(6.0, at=HOUR * 3)])
    assert weak.confidence > 0.8 > blatant.confidence


def test_a_likely_wrong_violation_goes_to_review_instead_of_enforcement_when_enabled():
    models = OnlineModels(config(appeal_classifier={"review_types": ["fake_discount"], "review_threshold": 0.6}))
    teach(models)
    out = models.process([violation(1.5, at=HOUR * 3), violation(6.0, at=HOUR * 3),
                          violation(1.5, vtype="price_gouging", at=HOUR * 3)])
    weak, review, blatant, other = out
    assert not weak.enforced and weak.points == 0 and weak.evidence["appeal_model"]["routed_to_review"]
    assert isinstance(review, ReviewEntry) and review.model == APPEAL_MODEL and review.actor == weak.actor
    assert review.features["violation_id"] == weak.violation_id and review.score >= 0.6
    assert blatant.enforced and blatant.points == 4
    assert other.enforced and "appeal_model" not in other.evidence  # no outcomes of that type: untouched


def test_routing_is_off_unless_the_type_is_listed():
    models = OnlineModels(config())
    teach(models)
    out = models.process([violation(1.5, at=HOUR * 3)])
    assert len(out) == 1 and out[0].enforced


def test_a_decision_that_arrives_before_its_violation_is_learned_when_the_violation_arrives():
    models = OnlineModels(config())
    v = violation(1.5)
    models.process([decided(v, "overturned")])
    assert models.appeals.state.outcomes == {}
    models.process([v])
    assert models.appeals.state.outcomes == {"fake_discount": 1}


def test_the_ledgers_appeal_outcome_teaches_the_same_way():
    clf = AppealClassifier(config().appeal_classifier)
    v = violation(1.5)
    clf.learn_outcome(AppealOutcome(
        appeal_id="A1", violation_id=v.violation_id, actor=v.actor, violation_type=v.violation_type,
        detector=v.detector, outcome="overturned", confidence=0.8, enforced=True, features={"was_ratio": 1.5},
        evidence=v.evidence, detected_at=v.detected_at, filed_at=None, decided_at=v.detected_at + HOUR,
        reviewer_id="R1"))
    assert clf.state.outcomes == {"fake_discount": 1}


def test_appeal_accuracy_is_measured_before_learning_and_exported():
    models = OnlineModels(config(appeal_classifier={"metric_window": 40}))
    teach(models, n=120)
    quality = models.quality()
    assert quality[(APPEAL_MODEL, "outcomes_learned")] == 120
    assert quality[(APPEAL_MODEL, "accuracy")] >= 0.9  # the last 40 outcomes, each predicted before learned
    assert quality[(APPEAL_MODEL, "roc_auc")] >= 0.9


# ---- drift ------------------------------------------------------------------------------------------------


def rate(monitor, per_minute, minutes, start=0, vtype="listing_spam"):
    alarms = []
    for minute in range(start, start + minutes):
        for k in range(per_minute(minute)):
            alarms += monitor.observe_violation(vtype, T0 + minute * MINUTE + k)
    return alarms


def test_a_forced_rate_change_raises_drift_for_that_type():
    monitor = DriftMonitor(config().drift)
    assert rate(monitor, lambda m: 1 + (m % 3 == 0), 240) == []  # steady: 1-2 a minute for 4 hours
    alarms = rate(monitor, lambda m: 15, 30, start=240)
    assert "violation_rate:listing_spam" in alarms


def test_a_detector_that_goes_silent_drifts_too():
    monitor = DriftMonitor(config().drift)
    rate(monitor, lambda m: 5, 180)
    alarms = rate(monitor, lambda m: 0, 60, start=180, vtype="listing_spam")
    alarms += monitor.observe_violation("order_brushing", T0 + 240 * MINUTE)  # time moves on
    assert "violation_rate:listing_spam" in alarms


def test_a_shift_in_anomaly_scores_raises_drift():
    monitor = DriftMonitor(config().drift)
    rng = random.Random(5)
    alarms = []
    for second in range(0, 6 * 3600, 5):
        level = 0.2 if second < 4 * 3600 else 0.6
        alarms += monitor.observe_score("seller_anomaly_v1", rng.gauss(level, 0.05), T0 + second * 1000)
    assert "anomaly_score:seller_anomaly_v1" in alarms


def test_drift_and_quality_reach_prometheus():
    models = OnlineModels(config())
    metrics = Metrics()
    for minute in range(300):
        models.process([violation(2.0, vtype="price_gouging", at=minute * MINUTE)
                        for _ in range(1 if minute < 240 else 20)])
        models.publish(metrics)
    assert metrics.by_label(metrics.drift, "signal").get("violation_rate:price_gouging", 0) >= 1
    teach(models)
    models.publish(metrics)
    gauges = {tuple(s.labels.values()): s.value for m in metrics.model_quality.collect() for s in m.samples}
    assert gauges[(APPEAL_MODEL, "outcomes_learned")] == 80


def test_anomaly_scores_and_review_entries_are_exported(market):
    models = OnlineModels(config(**WARM))
    metrics = Metrics()
    queue = reviews(models.process(market))
    models.publish(metrics)
    scored = [s.value for m in metrics.anomaly_score.collect() for s in m.samples
              if s.name.endswith("_count") and s.labels["model"] == "seller_anomaly_v1"]
    assert scored == [models.anomaly.state["seller"].scored]
    assert metrics.total(metrics.review_queue) == len(queue)


# ---- configuration -------------------------------------------------------------------------------------------


def test_config_errors_name_the_table_and_key():
    shipped = read_toml(DEFAULT_CONFIG)["models"]
    with pytest.raises(ConfigError, match=r"unknown key `models.anomaly.treshold`"):
        models_config({**shipped, "anomaly": {**shipped["anomaly"], "treshold": 0.9}})
    with pytest.raises(ConfigError, match=r"key `models.anomaly.detector`: not an allowed value"):
        models_config({**shipped, "anomaly": {**shipped["anomaly"], "detector": "forest"}})
    with pytest.raises(ConfigError, match=r"unknown key `models.anomly`"):
        models_config({**shipped, "anomly": {}})
    with pytest.raises(ConfigError, match=r"key `models.anomaly.threshold_quantile`: expected `float` < 1.0, got 1.5"):
        models_config({**shipped, "anomaly": {**shipped["anomaly"], "threshold_quantile": 1.5}})
    with pytest.raises(ConfigError, match=r"review_types: 'fake_discounts' is not a violation type"):
        models_config({**shipped, "appeal_classifier": {**shipped["appeal_classifier"],
                                                        "review_types": ["fake_discounts"]}})


def test_feature_updates_of_an_unknown_role_are_ignored():
    models = OnlineModels(config())
    assert models.process([FeatureUpdate(actor="buyer:B1", role="buyer", ts=T0, trigger="x", features={})]) == []


def test_model_state_stays_bounded_over_many_actors_and_violations():
    model = AnomalyModel(msgspec.structs.replace(config().anomaly, warmup_updates=200, cooldown_hours=1.0))
    rng = random.Random(9)
    for i in range(20_000):  # a day and a half of updates, some of them odd, from ever new actors
        odd = rng.random() < 0.02
        features = {"orders_per_hour": 80.0 if odd else rng.uniform(2, 10), "new_buyer_share": rng.uniform(0, 0.1)}
        model.score(f"seller:S{i}", "seller", features, T0 + i * 6_000)
    assert len(model.state["seller"].last_review) < 100  # only the last hour's entries are remembered
    clf = AppealClassifier(msgspec.structs.replace(config().appeal_classifier, max_remembered_violations=500,
                                                   max_waiting_decisions=50))
    for i in range(3000):
        clf.assess(violation(2.0, at=i * MINUTE))
        clf.learn_decision(decided(violation(2.0), "upheld"))  # decisions of violations never seen
    assert len(clf.state.remembered) <= 500 and len(clf.state.waiting) <= 50
