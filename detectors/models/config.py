"""`[models.*]`: the configuration of the online models, typed and checked when the job's config loads.

`pipeline.config` converts the `[models]` section into `ModelsConfig` once, at
start-up; a wrong key or value stops the job with one line naming it. This
module imports no model code (river is not loaded to read a config).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from detectors.registry import registry


class _Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


Positive = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
Probability = Annotated[float, msgspec.Meta(gt=0, lt=1)]


class ActorFeaturesConfig(_Table):
    """Windows and bounds of `ActorFeatures` (table `[models.features]`).

    Parameters
    ----------
    bucket_seconds
        Width of the event-time buckets that hold recent counts.
    recent_seconds
        The "now" window of counts, shares and maxima (a multiple of `bucket_seconds`).
    burst_seconds
        The short window of `order_growth` (a multiple of `bucket_seconds`).
    baseline_half_life_hours
        Half-life of the seller's long-run order and refund rates.
    new_account_days
        A buyer account at most this many days old counts as new.
    share_prior_count
        Shares are smoothed: x / (n + share_prior_count), so one new buyer out of
        one order is not "100% new buyers" (same for refunds, reused images, and
        (distinct + prior) / (orders + prior) for devices and payments).
    min_known_listings
        A listing's category counts as new only once the seller has this many
        listings (the first listings are how the seller's categories are learned).
    live_recent_intervals
        Stats intervals that form a LIVE's "now".
    live_baseline_half_life_intervals
        Half-life, in stats intervals, of the creator's per-viewer rates and
        of the LIVE's viewer level.
    live_baseline_max_step
        Once a LIVE baseline exists it learns an interval as at most this many
        times (or this fraction of) itself, plus one event: bought engagement
        must not become the new normal within minutes, a real audience that
        grows step by step is followed.
    min_live_intervals
        Stats intervals of baseline a `*_jump` needs (before that it is 1, usual).
    commenter_window_seconds
        Window of `commenters_per_viewer`.
    rescore_seconds
        An actor emits at most one update per this much event time after a
        notable event (an order from a new account or from a device or card
        already seen in the window, a new listing); sign-ins, payout changes
        and listing updates always emit.
    quiet_rescore_seconds
        ... and at most one per this much after ordinary orders and refunds.
    live_rescore_seconds
        The same for LIVE stats (each update judges the stats since the last).
    max_distinct
        Distinct buyer devices, payment hashes or commenters remembered per
        actor and window (the oldest go first).
    max_listings
        Listings (with their last price) remembered per seller.
    max_images, max_categories, max_login_devices, max_login_countries
        Image hashes, categories (with the seller's usual price level in each),
        sign-in devices and countries remembered per actor.
    idle_eviction_hours
        An actor with no event for this long (event time) is forgotten.
    """

    bucket_seconds: Positive
    recent_seconds: Positive
    burst_seconds: Positive
    baseline_half_life_hours: Positive
    new_account_days: Count
    share_prior_count: Positive
    min_known_listings: Count
    live_recent_intervals: AtLeastOne
    live_baseline_half_life_intervals: Positive
    live_baseline_max_step: Annotated[float, msgspec.Meta(ge=1)]
    min_live_intervals: Count
    commenter_window_seconds: Positive
    rescore_seconds: Annotated[float, msgspec.Meta(ge=0)]
    quiet_rescore_seconds: Annotated[float, msgspec.Meta(ge=0)]
    live_rescore_seconds: Annotated[float, msgspec.Meta(ge=0)]
    max_distinct: AtLeastOne
    max_listings: AtLeastOne
    max_images: AtLeastOne
    max_categories: AtLeastOne
    max_login_devices: AtLeastOne
    max_login_countries: AtLeastOne
    idle_eviction_hours: Positive


# ---- configuration ([models.*] in config/shopguard.toml) ------------------------------------


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


class ModelsConfig(_Table):
    """The `[models]` section: one table per model.

    Checks that span keys run when it is built: `review_types` name catalog
    types, and the feature windows nest (`bucket <= burst <= recent`).
    """

    features: ActorFeaturesConfig
    anomaly: AnomalyConfig
    appeal_classifier: AppealClassifierConfig
    drift: DriftConfig
    quality: QualityConfig

    def __post_init__(self) -> None:
        catalog = registry().catalog
        strange = [t for t in self.appeal_classifier.review_types if t not in catalog]
        if strange:
            raise ValueError(f"[models.appeal_classifier] review_types: {strange[0]!r} is not a violation type; "
                             f"the catalog is {', '.join(catalog)}")
        f = self.features
        if f.recent_seconds < f.bucket_seconds or f.burst_seconds > f.recent_seconds:
            raise ValueError("[models.features]: need bucket_seconds <= burst_seconds <= recent_seconds")


def shipped_models_config() -> ModelsConfig:
    """`[models]` exactly as `config/shopguard.toml` ships it: for examples and tests.

    The job never calls this: it reads its configuration once, in `pipeline.config`.

    >>> shipped_models_config().anomaly.threshold_quantile > 0.9
    True
    """
    path = Path(__file__).resolve().parents[2] / "config" / "shopguard.toml"
    with open(path, "rb") as f:
        return msgspec.convert(tomllib.load(f)["models"], ModelsConfig)
