"""Pruners: when a trial is stopped early on the running mean of its fold scores (and LightGBM's
validation loss inside the first fold)."""

from __future__ import annotations

import copy

import optuna

from kagtools.errors import KagtoolsError

__all__ = ["PRUNERS", "LGBM_REPORT_INTERVAL", "OnLatestValue", "make_pruner"]

PRUNERS = ("median", "halving", "none")
LGBM_REPORT_INTERVAL = 25  # LightGBM reports inside the first fold every this many rounds (a storage write each)


class OnLatestValue(optuna.pruners.BasePruner):
    """Let ``pruner`` judge a trial by its latest report rather than its best one so far.

    Optuna's percentile pruners compare a trial's *best* intermediate value with the others'
    values at the same step; for a running mean over folds that keeps a trial with one lucky
    first fold alive however far behind it falls afterwards.
    """

    def __init__(self, pruner: optuna.pruners.BasePruner):
        self._pruner = pruner

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        latest = copy.copy(trial)
        latest.intermediate_values = {step: trial.intermediate_values[step]}
        return self._pruner.prune(study, latest)


def make_pruner(name: str, *, in_fold: bool = False) -> optuna.pruners.BasePruner:
    """``median``: prune below the median of earlier trials at the same step (after 5 trials);
    ``halving``: asynchronous successive halving over folds; ``none``: never prune.

    With ``in_fold`` (LightGBM reporting inside the first fold) the median pruner waits for
    the first reports of a fold before it prunes on them.
    """
    if name == "median":
        warmup = 2 * LGBM_REPORT_INTERVAL if in_fold else 0
        return OnLatestValue(optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup))
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise KagtoolsError(f"unknown pruner '{name}' (known: {', '.join(PRUNERS)})")
