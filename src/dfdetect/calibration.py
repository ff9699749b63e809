"""Calibrated probabilities and chosen thresholds, fitted on a held-out split (never Test) and kept with the model.

Temperature scaling (Guo et al. 2017) divides the model's logit by one number T fitted to minimise the
negative log-likelihood on Validation: rankings, and so AUC, do not change; probabilities get honest. Threshold
policies turn the calibrated P(Real) into a label:

- `0.5`: the study's threshold;
- `eer`: where the share of fakes called real equals the share of reals called fake;
- `balanced`: the best balanced accuracy;
- `fpr:X`: the highest threshold that calls at most a share X of the real faces fake (e.g. `fpr:0.01`);
- `cost:C`: the least expected cost when calling a real face fake costs C times as much as calling a fake face real
  (C * share of reals called fake + share of fakes called real; `cost:1` is `balanced`). Out of its training
  domain a detector's real faces drift towards fake (docs/results.md, section 33): C > 1 hedges against that.

Labels: 0 = Fake, 1 = Real; scores are P(Real). Pure functions over whole splits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dfdetect.conventions import DEFAULT_THRESHOLD
from dfdetect.errors import ConfigError

POLICIES = ("0.5", "eer", "balanced", "fpr:0.01", "cost:2")
"""The policies `dfdetect calibrate` computes; any `fpr:X` with 0 < X < 1 and `cost:C` with C > 0 are accepted too."""

EPSILON = 1e-7

ThresholdChoice = float | str | None
"""A threshold as a user gives it: a number, the name of a policy stored with the model, or None (the stored one)."""


def logit(p_real: ArrayLike) -> np.ndarray:
    p = np.clip(np.asarray(p_real, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p) - np.log1p(-p)


def sigmoid(logits: ArrayLike) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def threshold_logit(threshold: float) -> float:
    """The logit whose sigmoid is `threshold` (+-inf at 1 and 0)."""
    if threshold <= 0.0:
        return -math.inf
    if threshold >= 1.0:
        return math.inf
    return math.log(threshold / (1.0 - threshold))


def apply_temperature(p_real: ArrayLike, temperature: float) -> np.ndarray:
    """P(Real) after dividing the logit by `temperature` (1 leaves scores as they are)."""
    if temperature == 1.0:
        return np.asarray(p_real, dtype=np.float64)
    return sigmoid(logit(p_real) / temperature)


def fit_temperature(y_true: ArrayLike, p_real: ArrayLike) -> float:
    """The temperature that minimises the negative log-likelihood of the labels (searched on log T)."""
    labels = np.asarray(y_true, dtype=np.float64)
    logits = logit(p_real)

    def nll(log_temperature: float) -> float:
        z = logits / math.exp(log_temperature)
        return float(np.mean(np.logaddexp(0.0, z) - labels * z))

    from scipy.optimize import minimize_scalar  # 0.7 s to import: only where a temperature is fitted

    result = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(result.x))


def threshold_for(policy: str, y_true: ArrayLike, p_real: ArrayLike) -> float:
    """The threshold a policy picks on these labels and (calibrated) scores."""
    labels = np.asarray(y_true).astype(int)
    scores = np.asarray(p_real, dtype=np.float64)
    if policy == "0.5":
        return DEFAULT_THRESHOLD
    real, fake = np.sort(scores[labels == 1]), np.sort(scores[labels == 0])
    if policy.startswith("fpr:"):
        share = _number(policy, policy.removeprefix("fpr:"))
        if not 0 < share < 1:
            raise ValueError(f"threshold policy {policy!r}: the share must lie in (0, 1)")
        if real.size == 0:
            raise ValueError(f"threshold policy {policy!r} needs real images")
        allowed = math.floor(share * real.size)  # real faces that may fall below the threshold
        return float(real[allowed])  # exactly `allowed` real scores lie below it (ties aside)
    cost = 1.0
    if policy.startswith("cost:"):
        cost = _number(policy, policy.removeprefix("cost:"))
        if not (math.isfinite(cost) and cost > 0):
            raise ValueError(f"threshold policy {policy!r}: the cost must be a positive number")
    elif policy not in ("eer", "balanced"):
        raise ValueError(f"unknown threshold policy {policy!r}; known: {', '.join(POLICIES)}, fpr:X or cost:C")
    if real.size == 0 or fake.size == 0:
        raise ValueError(f"threshold policy {policy!r} needs both real and fake images")
    candidates = np.unique(np.concatenate([scores, [1.0 + EPSILON]]))
    false_fake = np.searchsorted(real, candidates, side="left") / real.size  # reals below: called fake
    false_real = 1.0 - np.searchsorted(fake, candidates, side="left") / fake.size  # fakes at or above: called real
    if policy == "eer":
        return float(candidates[int(np.argmin(np.abs(false_fake - false_real)))])
    return float(candidates[int(np.argmin(cost * false_fake + false_real))])  # ties: the lowest threshold


def _number(policy: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"threshold policy {policy!r}: {text!r} is not a number") from None


def chosen_threshold(calibration: dict[str, Any] | None, choice: ThresholdChoice) -> tuple[float, str]:
    """(threshold, policy) from a model's stored calibration and the user's choice: None takes the stored policy's
    (the study's 0.5 without one); a number is used as given ("given"); a policy's name takes the threshold that
    `dfdetect calibrate` stored for it on Validation."""
    calibration = calibration or {}
    if choice is None:
        return float(calibration.get("threshold", DEFAULT_THRESHOLD)), str(calibration.get("policy", "0.5"))
    stored = calibration.get("thresholds") or {}
    if isinstance(choice, str) and choice in stored:
        return float(stored[choice]), choice
    try:
        return float(choice), "given"  # a number, or one given as text (`--threshold 0.3`)
    except ValueError:
        known = f"it stores {', '.join(stored)}" if stored else "it is not calibrated"
        raise ConfigError(
            f"threshold {choice!r}: neither a number nor a threshold policy stored with this model ({known}); "
            "`dfdetect calibrate --policy POLICY` on a run folder stores one (0.5, eer, balanced, fpr:X or cost:C)"
        ) from None


@dataclass(frozen=True)
class Calibration:
    """What `dfdetect calibrate` stores in a model's metadata under `calibration`."""

    temperature: float
    threshold: float
    policy: str
    thresholds: dict[str, float]
    split: str
    ece_before: float
    ece_after: float
    small_caution: int | None = None
    """Shorter side (pixels) under which this detector's scores get a caution, where it was measured (e.g. with
    bench/small_inputs.py); None leaves dfdetect.quality.SMALL_CAUTION."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(
    y_true: ArrayLike,
    p_real: ArrayLike,
    policy: str = "eer",
    split: str = "Validation",
    small_caution: int | None = None,
) -> Calibration:
    """Fit the temperature, then every policy's threshold on the calibrated scores; `policy` is the one used;
    `small_caution` is kept as it is given."""
    from dfdetect.metrics import expected_calibration_error

    temperature = fit_temperature(y_true, p_real)
    calibrated = apply_temperature(p_real, temperature)
    thresholds = {name: threshold_for(name, y_true, calibrated) for name in dict.fromkeys([*POLICIES, policy])}
    return Calibration(
        temperature=temperature,
        threshold=thresholds[policy],
        policy=policy,
        thresholds=thresholds,
        split=split,
        ece_before=expected_calibration_error(y_true, p_real),
        ece_after=expected_calibration_error(y_true, calibrated),
        small_caution=small_caution,
    )
