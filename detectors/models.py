"""Online models (river): anomaly scores to the review queue, learning from appeals, drift alarms.

Rules catch what the policy team already knows; these models catch what it
does not yet know, and tell reviewers where to look. Everything here is plain
Python with explicit, picklable state (Bytewax recovery snapshots pickle
`OnlineModels.state`); nothing reads the wall clock; every river model is
seeded, so the same inputs in the same order give the same outputs.

`AnomalyModel`
    Scores each `FeatureUpdate` (from `detectors/features.py`) with one model
    per role (`seller_anomaly_v1`, `creator_anomaly_v1`). Each feature is put
    on a log scale (`FEATURE_KIND`) and compared with its running mean in
    running standard deviations, on its risk side only (`RISK_SIDE`: orders
    slowing down or a price cut are not suspicious), clipped at +-`z_clip`.
    The default `detector = "deviation"` scores an update by its `top_k`
    largest deviations (sum / (top_k * z_clip), in 0..1): one unusual number
    counts, several at once count more. `detector = "half_space_trees"` feeds
    the same deviations to river's `HalfSpaceTrees` instead.

    Why the default: on the simulator (seeds 7, 11 and 23, each actor's
    highest score, abusers whose abuse shows in behaviour vs honest actors)
    the deviation score reaches a ROC AUC of 0.94-0.96 (0.84-0.87 counting the
    abusers who only break text rules too); HalfSpaceTrees on the same
    deviations 0.84 (0.75-0.79), and `MinMaxScaler | HalfSpaceTrees` on the
    log-scale features 0.81-0.84 (0.71-0.76): trees of a bounded depth over
    11-15 features barely split on any one of them, so a price 8x its usual
    level and one 1.5x land in the same leaf. LODA did worse (0.72-0.79).

    A score above the online `threshold_quantile` of all scores so far
    (`river.stats.Quantile`, not a constant) puts the actor on the review
    queue, at most once per `cooldown_hours`, with its top contributing
    features. **Score first, then learn**, and never learn from an update
    that was flagged (river's `protect_anomaly_detector`): an abuser's burst
    must not become the new normal.

    *Contribution* of a feature = its risk-side deviation from the running
    mean in standard deviations, on the model's scale (the numbers the model
    scores); the review entry names the `top_features` with |z| >= `min_z`,
    largest first, each as `{"value", "usual", "z"}` (`usual` is the running
    mean in the feature's own unit).

`AppealClassifier`
    Logistic regression (river) on a violation's numeric evidence (as
    `pipeline.enforce.ledger.evidence_features` reads it, signed-log scaled, prefixed
    by type) plus a one-hot of its type and the detector's confidence. It
    learns from decided appeals (upheld = the violation was right,
    overturned = wrong) and predicts P(overturned) for each new violation.
    Once a type has `min_outcomes` outcomes, the violation's confidence
    becomes a blend of the detector's and 1 - P(overturned), weighted by how
    many outcomes back it; for types in `review_types`, a violation with
    P(overturned) >= `review_threshold` is issued unenforced (`enforced`
    false, no points: recorded and appealable) and put on the review queue
    instead. What the model said is in `evidence["appeal_model"]`.

`DriftMonitor`
    river `ADWIN` on each violation type's rate (violations per
    `bucket_seconds` of event time) and on each anomaly model's mean score per
    bucket; a change raises a drift signal (metric `shopguard_drift_total`).

Quality (progressive validation: predict, then learn)
    The appeal classifier's rolling accuracy and ROC AUC on appeal outcomes,
    each scored before the model learns the outcome. The anomaly models have
    no reviewer labels online, so their quality is their agreement with the
    rules: a sample of scores is labelled, `label_horizon_hours` later,
    positive if the actor got a rule violation within that horizon, and fed to
    a rolling ROC AUC (`rule_agreement_auc`). Also exported: each anomaly
    model's current threshold and flag rate. `OnlineModels.quality()` returns
    them as `{(model, metric): value}` for the `shopguard_model_quality` gauge.

`OnlineModels` hosts all of them as one keyed dataflow step (one key: the
models are global) and `publish(metrics)` exports what happened to Prometheus.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterable, Literal

import msgspec
from river import anomaly, drift, linear_model, metrics, optim, preprocessing, stats, utils

from detectors.base import clamp01
from detectors.features import FEATURE_KIND, FEATURES_OF_ROLE, RISK_SIDE, ActorFeaturesConfig, FeatureUpdate
from pipeline.config import DEFAULT_CONFIG, read_toml
from pipeline.errors import ConfigError
from pipeline.contract.events import AppealDecided, ReviewDecided, ViolationOverturned
from pipeline.enforce.ledger import AppealOutcome, evidence_features
from pipeline.contract.records import ReviewEntry, Violation

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
ANOMALY_MODELS = {"seller": "seller_anomaly_v1", "creator": "creator_anomaly_v1"}
APPEAL_MODEL = "appeal_classifier_v1"


# ---- configuration ([models.*] in config/shopguard.toml) ------------------------------------


class _Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


Positive = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
Probability = Annotated[float, msgspec.Meta(gt=0, lt=1)]


class AnomalyConfig(_Table):
    """`[models.anomaly]`: the anomaly scorer and when it puts an actor on the review queue.

    Parameters
    ----------
    enabled
        False: no feature step, no anomaly scores, no review entries from it.
    detector
        "deviation": the score is the sum of the `top_k` largest risk-side
        deviations (in standard deviations, clipped at `z_clip`) over `top_k *
        z_clip`; "half_space_trees": river `HalfSpaceTrees` on the same
        deviations (see the module docstring for the measurements behind the default).
    top_k
        Deviations summed by the "deviation" detector.
    n_trees, height, window_size, seed
        river `HalfSpaceTrees`: trees, depth, updates per reference window, random seed.
    z_clip
        Deviations are clipped to +-z_clip standard deviations.
    memory_updates
        Running means and variances weigh the last ~this many updates (a running
        mean until then), so "usual" follows a slowly changing marketplace.
    warmup_updates
        Updates a role's model learns before its scores can flag anyone.
    threshold_quantile
        An update scoring above this online quantile of all scores flags its actor.
    cooldown_hours
        One review entry per actor within this period (event time).
    min_flag_z
        An update flags its actor only if, besides beating the quantile, one feature
        deviates at least this many standard deviations: the top 0.5% of a quiet
        day's scores is not news, and an entry must name what is unusual.
    top_features
        Features named in a review entry (the largest deviations).
    min_z
        A feature is named only if it deviates at least this many standard deviations.
    """

    enabled: bool
    detector: Literal["deviation", "half_space_trees"]
    top_k: AtLeastOne
    n_trees: AtLeastOne
    height: AtLeastOne
    window_size: AtLeastOne
    seed: int
    z_clip: Positive
    memory_updates: AtLeastOne
    warmup_updates: Count
    threshold_quantile: Probability
    cooldown_hours: Annotated[float, msgspec.Meta(ge=0)]
    min_flag_z: Annotated[float, msgspec.Meta(ge=0)]
    top_features: Count
    min_z: Annotated[float, msgspec.Meta(ge=0)]


class AppealClassifierConfig(_Table):
    """`[models.appeal_classifier]`: learning from appeal outcomes.

    Parameters
    ----------
    enabled
        False: violations pass through unchanged and appeals teach nothing.
    learning_rate, l2
        SGD step and L2 penalty of the logistic regression.
    min_outcomes
        Outcomes of a type needed before the model touches that type's violations.
    prior_outcomes
        Weight of the detector's own confidence, in outcomes: with n outcomes the
        model's say is n / (n + prior_outcomes).
    review_threshold
        P(overturned) at or above which a violation of a `review_types` type goes
        to the review queue instead of being enforced.
    review_types
        Violation types for which that routing is enabled (empty: never route).
    remember_days, max_remembered_violations
        Violations are remembered this long (event time), at most this many, so a
        later appeal decision can be joined to their evidence.
    max_waiting_decisions
        Decisions that arrived before their violation, kept until it arrives.
    metric_window
        Outcomes in the rolling accuracy and ROC AUC.
    """

    enabled: bool
    learning_rate: Positive
    l2: Annotated[float, msgspec.Meta(ge=0)]
    min_outcomes: Count
    prior_outcomes: Annotated[float, msgspec.Meta(ge=0)]
    review_threshold: Probability
    review_types: list[str]
    remember_days: Positive
    max_remembered_violations: AtLeastOne
    max_waiting_decisions: AtLeastOne
    metric_window: AtLeastOne


class DriftConfig(_Table):
    """`[models.drift]`: ADWIN on violation rates and anomaly scores.

    Parameters
    ----------
    enabled
        False: no drift signals.
    bucket_seconds
        Rates are violations per bucket of this much event time; scores are averaged per bucket.
    delta
        ADWIN confidence: smaller raises fewer, surer alarms.
    min_buckets
        Buckets a signal needs before it can raise an alarm (ADWIN grace period).
    max_gap_buckets
        Empty buckets fed at most after a pause in the stream (the rest are skipped).
    """

    enabled: bool
    bucket_seconds: Positive
    delta: Probability
    min_buckets: AtLeastOne
    max_gap_buckets: Count


class QualityConfig(_Table):
    """`[models.quality]`: progressive-validation metrics of the anomaly models.

    Parameters
    ----------
    label_horizon_hours
        A scored update is labelled positive if its actor got a rule violation
        within this long before or after it (decided this long after the score).
    sample_every
        One warm score in this many is kept for labelling (bounds the work).
    max_pending
        Scores waiting for their label, at most.
    metric_window
        Labelled scores in the rolling ROC AUC.
    """

    label_horizon_hours: Positive
    sample_every: AtLeastOne
    max_pending: AtLeastOne
    metric_window: AtLeastOne


class ModelsConfig(msgspec.Struct, frozen=True):
    features: ActorFeaturesConfig
    anomaly: AnomalyConfig
    appeal_classifier: AppealClassifierConfig
    drift: DriftConfig
    quality: QualityConfig


def models_config(tables: dict[str, dict[str, Any]] | None = None) -> ModelsConfig:
    """Typed `[models.*]` tables (default: those of config/shopguard.toml); errors name the table and key.

    >>> models_config().anomaly.threshold_quantile > 0.9
    True
    >>> try:
    ...     models_config({**read_toml(DEFAULT_CONFIG)["models"], "drift": {"delta": 0.1}})
    ... except ConfigError as err:
    ...     print(err)
    config: [models.drift]: missing key `enabled`
    """
    if tables is None:
        tables = read_toml(DEFAULT_CONFIG).get("models", {})
    unknown = sorted(set(tables) - set(_TABLES))
    if unknown:
        raise ConfigError(f"config: unknown table [models.{unknown[0]}]; known: {', '.join(_TABLES)}")
    parts = {}
    for name, type_ in _TABLES.items():
        table = tables.get(name)
        if table is None:
            raise ConfigError(f"config: missing table [models.{name}]; copy it from {DEFAULT_CONFIG}")
        try:
            parts[name] = msgspec.convert(table, type_)
        except msgspec.ValidationError as err:
            raise ConfigError(f"config: [models.{name}]: {_where(err)}") from None
    from pipeline.enforce.policy import CATALOG

    strange = [t for t in parts["appeal_classifier"].review_types if t not in CATALOG]
    if strange:
        raise ConfigError(f"config: [models.appeal_classifier]: key `review_types`: {strange[0]!r} is not a "
                          f"violation type; the catalog is {', '.join(CATALOG)}")
    features = parts["features"]
    if features.recent_seconds < features.bucket_seconds or features.burst_seconds > features.recent_seconds:
        raise ConfigError("config: [models.features]: need bucket_seconds <= burst_seconds <= recent_seconds")
    return ModelsConfig(**parts)


_TABLES: dict[str, type] = {
    "features": ActorFeaturesConfig, "anomaly": AnomalyConfig, "appeal_classifier": AppealClassifierConfig,
    "drift": DriftConfig, "quality": QualityConfig,
}


def _where(err: msgspec.ValidationError) -> str:
    text = str(err)
    if text.startswith("Object missing required field `"):
        return f"missing key `{text.split('`')[1]}`"
    if text.startswith("Object contains unknown field `"):
        return f"unknown key `{text.split('`')[1]}`"
    if " - at `$." in text:
        message, path = text.split(" - at `$.", 1)
        return f"key `{path.rstrip('`')}`: {message}"
    return text


# ---- the anomaly model ------------------------------------------------------------------------


def model_space(name: str, value: float) -> float:
    """A feature on the model's scale: log of ratios, log1p of counts, shares as they are.

    >>> model_space("order_growth", 1.0), round(model_space("orders_per_hour", math.e - 1), 3)
    (0.0, 1.0)
    """
    kind = FEATURE_KIND.get(name, "count")
    if kind == "ratio":
        return math.log(max(value, 1e-3))
    if kind == "count":
        return math.log1p(max(value, 0.0))
    return value


def feature_space(name: str, value: float) -> float:
    """The inverse of `model_space`: a model-scale value in the feature's own unit."""
    kind = FEATURE_KIND.get(name, "count")
    if kind == "ratio":
        return math.exp(value)
    if kind == "count":
        return math.expm1(value)
    return value


# kind of a feature -> code for `model_space` on the hot path
_KIND_CODE = {"ratio": 0, "count": 1, "share": 2}


@dataclass(slots=True)
class RoleModelState:
    """One role's anomaly model: running moments, the detector, the threshold, the cool-down."""

    name: str
    # feature -> [weight of history, mean, variance] on the model's scale
    moments: dict[str, list[float]]
    trees: anomaly.HalfSpaceTrees | None  # None: the "deviation" detector (no learned state of its own)
    threshold: stats.Quantile
    learned: int = 0
    scored: int = 0
    flagged: int = 0
    last_review: dict[str, int] = field(default_factory=dict)  # actor -> ts of its last review entry, oldest first
    verdicts: dict[str, int] = field(default_factory=dict)  # reviewers' "dismissed"/"escalated" counts


@dataclass(slots=True)
class Scored:
    """What `AnomalyModel.score` found for one update."""

    model: str
    score: float
    warm: bool
    flagged: bool
    review: ReviewEntry | None


class AnomalyModel:
    """Anomaly score per actor update; the unusual ones go to the review queue.

    Examples
    --------
    >>> model = AnomalyModel(msgspec.structs.replace(models_config().anomaly, warmup_updates=1000))
    >>> for i in range(3000):  # usual sellers: a few orders an hour from established buyers
    ...     wobble = 1.0 + 0.3 * ((i * 7919) % 11 - 5) / 5
    ...     usual = {"orders_per_hour": 6.0 * wobble, "new_buyer_share": 0.04 * wobble, "devices_per_order": 1.0}
    ...     _ = model.score_and_learn("seller:S%d" % (i % 50), usual, i * 1000)
    >>> entry = model.score_and_learn("seller:S99", {"orders_per_hour": 90.0, "new_buyer_share": 0.9,
    ...                                              "devices_per_order": 0.1}, 3_000_000)
    >>> entry.model, entry.actor, list(entry.features)
    ('seller_anomaly_v1', 'seller:S99', ['devices_per_order', 'new_buyer_share', 'orders_per_hour'])
    >>> entry.features["new_buyer_share"]
    {'value': 0.9, 'usual': 0.04, 'z': 10.0}
    """

    def __init__(self, config: AnomalyConfig, resume: dict[str, RoleModelState] | None = None) -> None:
        self.config = config
        self._cooldown_ms = int(config.cooldown_hours * HOUR_MS)
        self._forget = 1.0 / config.memory_updates
        self._scale = 1.0 / (config.top_k * config.z_clip)
        self._min_scored = math.ceil(1.0 / (1.0 - config.threshold_quantile))
        self._specs = {
            role: [(name, _KIND_CODE[FEATURE_KIND[name]], RISK_SIDE[name]) for name in names]
            for role, names in FEATURES_OF_ROLE.items()
        }
        self.state: dict[str, RoleModelState] = resume if resume is not None else {
            role: self._new_role_model(role) for role in ANOMALY_MODELS
        }

    def _new_role_model(self, role: str) -> RoleModelState:
        cfg = self.config
        trees = None
        if cfg.detector == "half_space_trees":
            clip = cfg.z_clip
            limits = {name: (0.0 if side > 0 else -clip, 0.0 if side < 0 else clip)
                      for name, _, side in self._specs[role]}
            trees = anomaly.HalfSpaceTrees(n_trees=cfg.n_trees, height=cfg.height, window_size=cfg.window_size,
                                           limits=limits, seed=cfg.seed)
        return RoleModelState(
            name=ANOMALY_MODELS[role],
            moments={name: [0.0, 0.0, 0.0] for name in FEATURES_OF_ROLE[role]},
            trees=trees,
            threshold=stats.Quantile(cfg.threshold_quantile),
        )

    def score_and_learn(self, actor: str, features: dict[str, float], ts: int) -> ReviewEntry | None:
        """Score one update (then learn it unless flagged); a review entry if the actor is put on the queue."""
        return self.score(actor, actor.split(":", 1)[0], features, ts).review

    def score(self, actor: str, role: str, features: dict[str, float], ts: int) -> Scored:
        cfg, model = self.config, self.state[role]
        x, z = self._deviations(role, model, features)
        warm = model.learned >= cfg.warmup_updates
        score, largest = 0.0, 0.0
        if warm:
            deviations = sorted(map(abs, z.values()), reverse=True)
            largest = deviations[0] if deviations else 0.0
            if model.trees is not None:
                score = model.trees.score_one(z)
            else:
                score = sum(deviations[: cfg.top_k]) * self._scale
        threshold = model.threshold.get()
        # The quantile needs about 1 / (1 - q) scores before it means anything.
        flagged = (warm and model.scored >= self._min_scored and threshold is not None and score > threshold
                   and largest >= cfg.min_flag_z)
        if warm:
            model.threshold.update(score)
            model.scored += 1
        review = None
        if flagged:
            model.flagged += 1
            if self._cooldown_ready(model, actor, ts):
                review = self._review(model, actor, features, z, score, ts)
        else:  # score first, then learn; never from what was flagged
            self._learn(model, x)
            if model.trees is not None:
                model.trees.learn_one(z)
            model.learned += 1
        return Scored(model.name, score, warm, flagged, review)

    def _deviations(self, role: str, model: RoleModelState, features: dict[str, float]):
        """Each feature on the model's scale, and its risk-side deviation from the running mean in
        standard deviations, clipped (0 when missing, on the harmless side, or not yet learned)."""
        clip, moments = self.config.z_clip, model.moments
        x: dict[str, float] = {}
        z: dict[str, float] = {}
        for name, kind, side in self._specs[role]:
            value = features.get(name)
            if value is None:
                z[name] = 0.0
                continue
            v = math.log(value if value > 1e-3 else 1e-3) if kind == 0 else \
                math.log1p(value if value > 0.0 else 0.0) if kind == 1 else value
            x[name] = v
            weight, mean, var = moments[name]
            if weight < 2.0:
                z[name] = 0.0
                continue
            # The spread has a floor: a feature that never moved must move for real to count.
            d = (v - mean) / (math.sqrt(var) + 0.05)
            if side > 0:
                d = 0.0 if d < 0.0 else clip if d > clip else d
            elif side < 0:
                d = 0.0 if d > 0.0 else -clip if d < -clip else d
            else:
                d = -clip if d < -clip else clip if d > clip else d
            z[name] = d
        return x, z

    def _learn(self, model: RoleModelState, x: dict[str, float]) -> None:
        """Exponentially weighted mean and variance (a running mean and variance at first)."""
        for name, v in x.items():
            m = model.moments[name]
            m[0] += 1.0
            a = max(1.0 / m[0], self._forget)
            delta = v - m[1]
            m[1] += a * delta
            m[2] = (1.0 - a) * (m[2] + a * delta * delta)

    def learn_verdict(self, verdict: ReviewDecided) -> bool:
        """A reviewer's verdict on one of this model's review entries; False if it is another model's.

        A dismissed entry was usual behaviour after all: its features are learned now (the guard that
        keeps flagged updates out of the moments is lifted by a reviewer's word, never by the model's own).
        """
        role = verdict.actor.split(":", 1)[0]
        model = self.state.get(role)
        if model is None or model.name != verdict.model:
            return False
        model.verdicts[verdict.decision] = model.verdicts.get(verdict.decision, 0) + 1
        if verdict.decision == "dismissed":
            x, _z = self._deviations(role, model, verdict.features)
            self._learn(model, x)
        return True

    def _cooldown_ready(self, model: RoleModelState, actor: str, ts: int) -> bool:
        last = model.last_review
        while last:  # forget actors whose cool-down is over (dict in time order): bounded
            oldest = next(iter(last))
            if last[oldest] > ts - self._cooldown_ms:
                break
            del last[oldest]
        if actor in last:
            return False
        last[actor] = ts
        return True

    def _review(self, model: RoleModelState, actor: str, features: dict[str, float], z: dict[str, float],
                score: float, ts: int) -> ReviewEntry:
        named = sorted((name for name in features if abs(z.get(name, 0.0)) >= self.config.min_z),
                       key=lambda name: (-abs(z[name]), name))[: self.config.top_features]
        top = {
            name: {"value": round(features[name], 3),
                   "usual": round(feature_space(name, model.moments[name][1]), 3),
                   "z": round(z[name], 1)}
            for name in named
        }
        return ReviewEntry(actor=actor, score=round(score, 4), model=model.name, features=top, ts=ts)


# ---- learning from appeals ----------------------------------------------------------------------


def signed_log(x: float) -> float:
    """Evidence numbers span prices, counts and ratios: compress them symmetrically.

    >>> signed_log(0.0), round(signed_log(-(math.e - 1)), 3)
    (0.0, -1.0)
    """
    return math.copysign(math.log1p(abs(x)), x)


@dataclass(slots=True)
class AppealState:
    scaler: preprocessing.StandardScaler  # of the evidence numbers (the type one-hot stays 0/1)
    model: linear_model.LogisticRegression
    outcomes: dict[str, int] = field(default_factory=dict)  # violation type -> outcomes learned
    accuracy: Any = None  # rolling accuracy, scored before learning
    roc_auc: Any = None
    # violation id -> (detected_at, type, evidence features, detector confidence), oldest first
    remembered: dict[str, tuple[int, str, dict[str, float], float]] = field(default_factory=dict)
    waiting: dict[str, AppealDecided] = field(default_factory=dict)  # decisions ahead of their violation


class AppealClassifier:
    """P(overturned) of a violation, learned from decided appeals.

    Examples
    --------
    >>> from pipeline.contract.records import Education
    >>> clf = AppealClassifier(models_config().appeal_classifier)
    >>> def violation(i, ratio):
    ...     return Violation(violation_id=f"v{i}", actor="seller:S1", violation_type="price_gouging",
    ...         policy_id="P", severity="medium", points=6, detector="price_gouging_v1", confidence=0.8,
    ...         detected_at=i, window_start=i, window_end=i, evidence={"price_ratio": ratio},
    ...         explanation="x", education=Education("m", "t", "https://e"), enforced=True)
    >>> before = clf.assess(violation(0, 3.1)).confidence
    >>> for i in range(1, 60):  # reviewers keep overturning the violations with a low ratio
    ...     _ = clf.learn(violation(i, 3.0 + i % 2 * 5), "overturned" if i % 2 == 0 else "upheld")
    >>> after_low, after_high = clf.assess(violation(98, 3.0)).confidence, clf.assess(violation(99, 8.0)).confidence
    >>> after_low < before < after_high
    True
    """

    def __init__(self, config: AppealClassifierConfig, resume: AppealState | None = None) -> None:
        self.config = config
        self._remember_ms = int(config.remember_days * DAY_MS)
        self.review_types = frozenset(config.review_types)
        self.state = resume or AppealState(
            scaler=preprocessing.StandardScaler(),
            model=linear_model.LogisticRegression(optimizer=optim.SGD(config.learning_rate), l2=config.l2),
            accuracy=utils.Rolling(metrics.Accuracy, window_size=config.metric_window),
            roc_auc=utils.Rolling(metrics.ROCAUC, window_size=config.metric_window, n_thresholds=50),
        )

    @staticmethod
    def evidence_inputs(violation_type: str, features: dict[str, float]) -> dict[str, float]:
        """The evidence numbers, signed-log scaled and named by type (a ratio of one type is not of another)."""
        return {f"{violation_type}.{key}": signed_log(value) for key, value in features.items()}

    def inputs(self, violation_type: str, evidence: dict[str, float], detector_confidence: float) -> dict:
        """The model's input: standardised evidence, the type one-hot and the detector's confidence."""
        x = self.state.scaler.transform_one(evidence)
        x[f"type={violation_type}"] = 1.0
        x["detector_confidence"] = detector_confidence
        return x

    def p_overturned(self, violation_type: str, features: dict[str, float], detector_confidence: float) -> float:
        x = self.inputs(violation_type, self.evidence_inputs(violation_type, features), detector_confidence)
        return float(self.state.model.predict_proba_one(x).get(True, 0.5))

    # ---- new violations ------------------------------------------------------------------------

    def assess(self, violation: Violation) -> Violation:
        """The violation with its confidence set by the model (and unenforced if routed to review)."""
        return self.assess_and_route(violation)[0]

    def assess_and_route(self, violation: Violation) -> tuple[Violation, ReviewEntry | None]:
        features = evidence_features(violation.evidence)
        self._remember(violation, features)
        n = self.state.outcomes.get(violation.violation_type, 0)
        if n < self.config.min_outcomes:
            return violation, None
        p = self.p_overturned(violation.violation_type, features, violation.confidence)
        weight = n / (n + self.config.prior_outcomes)
        confidence = round(clamp01((1.0 - weight) * violation.confidence + weight * (1.0 - p)), 3)
        routed = (violation.enforced and violation.violation_type in self.review_types
                  and p >= self.config.review_threshold)
        note = {"p_overturned": round(p, 3), "detector_confidence": violation.confidence,
                "outcomes_learned": n, "routed_to_review": routed}
        assessed = msgspec.structs.replace(
            violation, confidence=confidence, evidence={**violation.evidence, "appeal_model": note},
            **({"enforced": False, "points": 0} if routed else {}))
        if not routed:
            return assessed, None
        review = ReviewEntry(
            actor=violation.actor, score=round(p, 4), model=APPEAL_MODEL, ts=violation.detected_at,
            features={"violation_id": violation.violation_id, "violation_type": violation.violation_type,
                      "p_overturned": round(p, 3), "detector_confidence": violation.confidence})
        return assessed, review

    def _remember(self, violation: Violation, features: dict[str, float]) -> None:
        remembered = self.state.remembered
        remembered.pop(violation.violation_id, None)
        remembered[violation.violation_id] = (violation.detected_at, violation.violation_type, features,
                                              violation.confidence)
        horizon = violation.detected_at - self._remember_ms
        while remembered:
            oldest = next(iter(remembered))
            if len(remembered) <= self.config.max_remembered_violations and remembered[oldest][0] >= horizon:
                break
            del remembered[oldest]

    # ---- outcomes ---------------------------------------------------------------------------------

    def learn(self, violation: Violation, decision: str) -> float:
        """Learn one decided appeal of `violation`; returns the P(overturned) predicted before learning."""
        confidence = violation.evidence.get("appeal_model", {}).get("detector_confidence", violation.confidence)
        return self._learn(violation.violation_type, evidence_features(violation.evidence), confidence, decision)

    def learn_outcome(self, outcome: AppealOutcome) -> float:
        """Learn from the ledger's `AppealOutcome` (when the flow feeds them back to this model)."""
        note = outcome.evidence.get("appeal_model")
        confidence = note.get("detector_confidence", outcome.confidence) if isinstance(note, dict) \
            else outcome.confidence
        return self._learn(outcome.violation_type, outcome.features, confidence, outcome.outcome)

    def learn_decision(self, event: AppealDecided) -> bool:
        """Join an `appeal.decided` event to the violation it decides and learn it; False if not seen yet."""
        known = self.state.remembered.pop(event.violation_id, None)
        if known is None:
            waiting = self.state.waiting
            waiting[event.violation_id] = event
            while len(waiting) > self.config.max_waiting_decisions:
                del waiting[next(iter(waiting))]
            return False
        _ts, violation_type, features, confidence = known
        self._learn(violation_type, features, confidence, event.decision)
        return True

    def learn_waiting(self, violation: Violation) -> None:
        """A violation whose decision came first: learn it now."""
        event = self.state.waiting.pop(violation.violation_id, None)
        if event is not None:
            self.learn_decision(event)

    def _learn(self, violation_type: str, features: dict[str, float], confidence: float, decision: str) -> float:
        overturned = decision == "overturned"
        evidence = self.evidence_inputs(violation_type, features)
        p = float(self.state.model.predict_proba_one(self.inputs(violation_type, evidence, confidence))
                  .get(True, 0.5))
        # Progressive validation: the prediction is scored before the model sees the answer.
        self.state.accuracy.update(overturned, p >= 0.5)
        self.state.roc_auc.update(overturned, p)
        self.state.scaler.learn_one(evidence)
        self.state.model.learn_one(self.inputs(violation_type, evidence, confidence), overturned)
        self.state.outcomes[violation_type] = self.state.outcomes.get(violation_type, 0) + 1
        return p

    def quality(self) -> dict[tuple[str, str], float]:
        learned = sum(self.state.outcomes.values())
        out = {(APPEAL_MODEL, "outcomes_learned"): float(learned)}
        if learned:
            out[(APPEAL_MODEL, "accuracy")] = self.state.accuracy.get()
            out[(APPEAL_MODEL, "roc_auc")] = self.state.roc_auc.get()
        return out


# ---- drift ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class DriftState:
    bucket: int | None = None  # index of the open event-time bucket
    counts: dict[str, int] = field(default_factory=dict)  # violation type -> count in the open bucket
    scores: dict[str, list[float]] = field(default_factory=dict)  # model -> [sum, n] in the open bucket
    detectors: dict[str, drift.ADWIN] = field(default_factory=dict)  # signal -> its ADWIN


class DriftMonitor:
    """ADWIN on per-bucket violation counts (each type) and mean anomaly scores (each model).

    A type is watched from its first violation on; every closed bucket feeds
    its count (0 included), so a detector that stops firing drifts too.

    >>> mon = DriftMonitor(models_config().drift)
    >>> alarms = []
    >>> for minute in range(240):
    ...     for k in range(1 if minute < 180 else 12):  # 1 per minute, then 12
    ...         alarms += mon.observe_violation("listing_spam", minute * 60_000 + k)
    >>> alarms[:1]
    ['violation_rate:listing_spam']
    """

    def __init__(self, config: DriftConfig, resume: DriftState | None = None) -> None:
        self.config = config
        self._bucket_ms = int(config.bucket_seconds * 1000)
        self.state = resume or DriftState()

    def observe_violation(self, violation_type: str, ts: int) -> list[str]:
        alarms = self.advance(ts)
        self.state.counts[violation_type] = self.state.counts.get(violation_type, 0) + 1
        return alarms

    def observe_score(self, model: str, score: float, ts: int) -> list[str]:
        alarms = self.advance(ts)
        acc = self.state.scores.setdefault(model, [0.0, 0])
        acc[0] += score
        acc[1] += 1
        return alarms

    def advance(self, ts: int) -> list[str]:
        """Close every bucket before `ts`'s; return the signals that drifted. Late items join the open bucket."""
        st = self.state
        index = ts // self._bucket_ms
        if st.bucket is None:
            st.bucket = index
            return []
        if index <= st.bucket:
            return []
        alarms = self._close(st.counts, {m: acc[0] / acc[1] for m, acc in st.scores.items() if acc[1]})
        empty = {t: 0 for t in st.counts}
        for _ in range(min(index - st.bucket - 1, self.config.max_gap_buckets)):
            alarms += self._close(empty, {})
        st.bucket = index
        st.counts = {t: 0 for t in st.counts}
        st.scores = {}
        return alarms

    def _close(self, counts: dict[str, int], means: dict[str, float]) -> list[str]:
        alarms = []
        for signal, value in [*((f"violation_rate:{t}", float(c)) for t, c in counts.items()),
                              *((f"anomaly_score:{m}", v) for m, v in means.items())]:
            detector = self.state.detectors.get(signal)
            if detector is None:
                detector = self.state.detectors[signal] = drift.ADWIN(
                    delta=self.config.delta, clock=1, grace_period=self.config.min_buckets)
            detector.update(value)
            if detector.drift_detected:
                alarms.append(signal)
        return alarms


# ---- agreement of the anomaly scores with the rules (progressive validation) ----------------------


@dataclass(slots=True)
class AgreementState:
    pending: deque = field(default_factory=deque)  # (ts, actor, model, score), oldest first
    violations: dict[str, int] = field(default_factory=dict)  # actor -> ts of its latest violation
    auc: dict[str, Any] = field(default_factory=dict)  # model -> rolling ROC AUC
    seen: int = 0


class RuleAgreement:
    """Rolling ROC AUC of anomaly scores against "the rules found something on this actor"."""

    def __init__(self, config: QualityConfig, resume: AgreementState | None = None) -> None:
        self.config = config
        self._horizon_ms = int(config.label_horizon_hours * HOUR_MS)
        self.state = resume or AgreementState()

    def observe_score(self, model: str, actor: str, score: float, ts: int) -> None:
        st = self.state
        st.seen += 1
        if st.seen % self.config.sample_every == 0 and len(st.pending) < self.config.max_pending:
            st.pending.append((ts, actor, model, score))
        self.resolve(ts)

    def observe_violation(self, actor: str, ts: int) -> None:
        violations = self.state.violations
        previous = violations.pop(actor, None)
        violations[actor] = max(ts, previous or ts)
        self.resolve(ts)

    def resolve(self, now: int) -> None:
        st, horizon = self.state, self._horizon_ms
        while st.pending and st.pending[0][0] + horizon <= now:
            ts, actor, model, score = st.pending.popleft()
            violated = st.violations.get(actor)
            positive = violated is not None and abs(violated - ts) <= horizon
            auc = st.auc.get(model)
            if auc is None:
                auc = st.auc[model] = utils.Rolling(metrics.ROCAUC, window_size=self.config.metric_window,
                                                    n_thresholds=50)
            auc.update(positive, score)
        cutoff = now - 2 * horizon  # an older violation labels nothing still pending
        while st.violations:
            oldest = next(iter(st.violations))
            if st.violations[oldest] >= cutoff:
                break
            del st.violations[oldest]

    def quality(self) -> dict[tuple[str, str], float]:
        return {(model, "rule_agreement_auc"): auc.get() for model, auc in self.state.auc.items()}


# ---- the keyed step ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ModelsState:
    """Everything the online models keep; pickled into recovery snapshots."""

    anomaly: dict[str, RoleModelState]
    appeal: AppealState
    drift: DriftState
    agreement: AgreementState
    # (ts, rank, id, item, arrived): violations and appeal decisions waiting to be applied in event-time order
    pending: list[tuple] = field(default_factory=list)


@dataclass(slots=True)
class _Observed:
    """What happened since the last `publish` (not state: metrics are not restored)."""

    scores: list[tuple[str, float]] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)


class OnlineModels:
    """All online models as one step: feature updates, violations and appeal decisions in; records out.

    - `FeatureUpdate`: scored by `AnomalyModel` at once; may yield a `ReviewEntry`.
    - `Violation`: assessed by `AppealClassifier` (confidence, maybe routed to
      review) and passed on; counted for drift and rule agreement.
    - `AppealDecided`, `ViolationOverturned` (or the ledger's `AppealOutcome`): teaches the classifier.
    - `ReviewDecided`: a reviewer's verdict on a review entry; a dismissal teaches the anomaly model.

    Violations and decisions reach this step from many shards in no fixed
    interleaving, and what the classifier says about a violation depends on
    which outcomes it learned before. So, like the ledger, `add` queues them
    and `release` applies them in event-time order: a replay releases
    everything at the end of its input (`release(None)`), a running job what
    arrived more than a hold ago. The same input then gives the same
    violations on any number of workers. `process` is `add` then `release(None)`.

    >>> models = OnlineModels(models_config())
    >>> models.process([]), sorted(models.quality())[:1]
    ([], [('appeal_classifier_v1', 'outcomes_learned')])
    """

    def __init__(self, config: ModelsConfig, resume: ModelsState | None = None) -> None:
        self.config = config
        self.anomaly = AnomalyModel(config.anomaly, resume.anomaly if resume else None)
        self.appeals = AppealClassifier(config.appeal_classifier, resume.appeal if resume else None)
        self.drift = DriftMonitor(config.drift, resume.drift if resume else None)
        self.agreement = RuleAgreement(config.quality, resume.agreement if resume else None)
        self.pending: list[tuple] = resume.pending if resume else []
        self.observed = _Observed()
        self._children: dict[tuple, Any] = {}

    @property
    def state(self) -> ModelsState:
        return ModelsState(self.anomaly.state, self.appeals.state, self.drift.state, self.agreement.state,
                           self.pending)

    def process(self, items: Iterable[Any]) -> list[Violation | ReviewEntry]:
        """Run a batch of items through the models now (arrival order for feature updates, event-time
        order for violations and decisions); violations come back assessed."""
        return self.add(items, arrived=0.0) + self.release(None)

    def add(self, items: Iterable[Any], arrived: float) -> list[ReviewEntry]:
        """Score feature updates at once (their review entries are returned); queue the rest."""
        out: list[Any] = []
        pending = self.pending
        for item in items:
            kind = type(item)
            if kind is FeatureUpdate:
                self._on_update(item, out)
            elif kind is Violation:
                self._watch(item)
                pending.append((item.detected_at, 0, item.violation_id, item, arrived))
            elif kind is AppealDecided or kind is ReviewDecided:
                pending.append((item.ts, 1, item.event_id, item, arrived))
            elif kind is ViolationOverturned:
                pending.append((item.ts, 1, item.event_id, item.as_decision(), arrived))
            elif kind is AppealOutcome:
                pending.append((item.decided_at, 1, item.appeal_id, item, arrived))
        return out

    def release(self, arrived_before: float | None) -> list[Violation | ReviewEntry]:
        """Apply queued violations and decisions that arrived before the time given (all if None)."""
        if arrived_before is None:
            ready, self.pending = self.pending, []
        else:
            ready = [p for p in self.pending if p[4] < arrived_before]
            self.pending = [p for p in self.pending if p[4] >= arrived_before]
        ready.sort(key=lambda p: (p[0], p[1], p[2]))
        out: list[Any] = []
        classifier_on = self.config.appeal_classifier.enabled
        for _ts, _rank, _id, item, _arrived in ready:
            if type(item) is Violation:
                self._on_violation(item, out)
            elif type(item) is ReviewDecided:
                self.anomaly.learn_verdict(item)
            elif classifier_on and type(item) is AppealDecided:
                self.appeals.learn_decision(item)
            elif classifier_on:
                self.appeals.learn_outcome(item)
        return out

    def next_release(self) -> float | None:
        """Arrival time of the oldest queued item (for the step's `notify_at`)."""
        return min((p[4] for p in self.pending), default=None)

    def _on_update(self, update: FeatureUpdate, out: list) -> None:
        if not self.config.anomaly.enabled or update.role not in ANOMALY_MODELS:
            return
        scored = self.anomaly.score(update.actor, update.role, update.features, update.ts)
        if scored.warm:
            self.observed.scores.append((scored.model, scored.score))
            self.agreement.observe_score(scored.model, update.actor, scored.score, update.ts)
            if self.config.drift.enabled:
                self.observed.drift += self.drift.observe_score(scored.model, scored.score, update.ts)
        if scored.review is not None:
            self.observed.reviews.append(scored.model)
            out.append(scored.review)

    def _watch(self, violation: Violation) -> None:
        """Drift and rule agreement watch violations as they arrive (in step with the feature updates)."""
        if self.config.drift.enabled:
            self.observed.drift += self.drift.observe_violation(violation.violation_type, violation.detected_at)
        self.agreement.observe_violation(violation.actor, violation.detected_at)

    def _on_violation(self, violation: Violation, out: list) -> None:
        if not self.config.appeal_classifier.enabled:
            out.append(violation)
            return
        assessed, review = self.appeals.assess_and_route(violation)
        self.appeals.learn_waiting(violation)  # its decision came first: learn it now that it is known
        out.append(assessed)
        if review is not None:
            self.observed.reviews.append(review.model)
            out.append(review)

    def quality(self) -> dict[tuple[str, str], float]:
        """Progressive-validation quality of every model: `{(model, metric): value}`."""
        out = dict(self.appeals.quality())
        out.update(self.agreement.quality())
        for role_model in self.anomaly.state.values():
            if role_model.scored:
                out[(role_model.name, "threshold")] = role_model.threshold.get()
                out[(role_model.name, "flag_rate")] = role_model.flagged / role_model.scored
            judged = sum(role_model.verdicts.values())
            if judged:  # of the entries reviewers judged, the share they escalated
                out[(role_model.name, "reviewer_escalated_share")] = role_model.verdicts.get("escalated", 0) / judged
        return out

    def publish(self, metrics_sink: Any) -> None:
        """Export what happened since the last call to a `sinks.metrics.Metrics` (label children cached)."""
        observed, self.observed = self.observed, _Observed()
        child = self._child
        for model, score in observed.scores:
            child("score", model, lambda m=model: metrics_sink.anomaly_score.labels(m)).observe(score)
        for signal in observed.drift:
            child("drift", signal, lambda s=signal: metrics_sink.drift.labels(s)).inc()
        for model in observed.reviews:
            metrics_sink.review_child(model).inc()
        for (model, metric), value in self.quality().items():
            child("quality", (model, metric), lambda k=(model, metric): metrics_sink.model_quality.labels(*k)) \
                .set(value)

    def _child(self, kind: str, key: Any, make):
        child = self._children.get((kind, key))
        if child is None:
            child = self._children[(kind, key)] = make()
        return child
