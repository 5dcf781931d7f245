"""The anomaly model: scores actors' feature updates; the top of them go to the review queue.

Scores each `FeatureUpdate` (from `features.py`) with one model
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from river import anomaly, stats

from detectors.base import HOUR_MS
from detectors.models.config import AnomalyConfig
from detectors.models.features import FEATURE_KIND, FEATURES_OF_ROLE, RISK_SIDE
from pipeline.contract.events import ReviewDecided
from pipeline.contract.records import ReviewEntry, review_id

ANOMALY_MODELS = {"seller": "seller_anomaly_v1", "creator": "creator_anomaly_v1"}


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
    >>> import msgspec
    >>> from detectors.models.config import shipped_models_config
    >>> model = AnomalyModel(msgspec.structs.replace(shipped_models_config().anomaly, warmup_updates=1000))
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
        # One entry per actor and cool-down: entries are a cool-down apart, so each falls in its own window.
        window = ts // self._cooldown_ms if self._cooldown_ms else ts
        return ReviewEntry(review_id=review_id(actor, model.name, window), actor=actor, score=round(score, 4),
                           model=model.name, features=top, ts=ts)
