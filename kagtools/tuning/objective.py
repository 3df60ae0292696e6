"""The Optuna objective: a model's CV score over the shared folds, through the fold engine
(:func:`kagtools.core.engine.run_folds`, the loop every run uses), plus the two engine
callbacks that report a trial's progress and prune it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from kagtools.core.engine import Fold, FoldCallback, FoldResult, TrainingSet, run_folds, score_oof
from kagtools.core.folds import Folds
from kagtools.core.metrics import get_metric
from kagtools.core.model_registry import get_model_class, make_model
from kagtools.core.spec import CompetitionSpec
from kagtools.tuning.pruners import LGBM_REPORT_INTERVAL
from kagtools.tuning.space import SpaceFn
from kagtools.tuning.workers import FINISHED, SurplusTrial, worker_id

__all__ = ["FoldObjective", "ReportAndPrune", "LightGBMInFoldPruning", "FOLD_STEP_OFFSET"]

# Inside-fold LightGBM reports take steps 0..n_estimators-1; fold reports come after them.
FOLD_STEP_OFFSET = 1_000_000


class ReportAndPrune(FoldCallback):
    """After each fold: report the running mean of the fold scores at step ``offset + k + 1``
    (fold ``k`` counted from 0) and stop the trial if the pruner says so (never after the last
    fold: a trial that ran every fold completes)."""

    def __init__(self, trial: optuna.Trial, offset: int = 0):
        self.trial, self.offset = trial, offset

    def after_fold(self, result: FoldResult) -> None:
        fold = result.fold
        self.trial.report(result.mean_score, self.offset + fold.index + 1)
        if fold.index + 1 < fold.n_folds and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {fold.index + 1} of {fold.n_folds}")


class _MinimisingView:
    """What ``LightGBMPruningCallback`` sees of a trial: a minimising study.

    LightGBM's default validation metric (log-loss, l2) is lower-is-better; a study that
    maximises (accuracy, AUC) receives it negated so that the pruner compares like with like.
    """

    def __init__(self, trial: optuna.Trial, maximize: bool):
        self._trial = trial
        self._sign = -1.0 if maximize else 1.0
        self.study = type("StudyView", (), {"direction": optuna.study.StudyDirection.MINIMIZE})()

    def report(self, value: float, step: int) -> None:
        self._trial.report(self._sign * value, step)

    def should_prune(self) -> bool:
        return self._trial.should_prune()


_LGBM_METRIC = {"binary": "binary_logloss", "multiclass": "multi_logloss", "regression": "l2"}


class LightGBMInFoldPruning(FoldCallback):
    """Before the first fold: give its LightGBM model optuna-integration's
    ``LightGBMPruningCallback``, which reports the validation ``metric`` every
    :data:`~kagtools.tuning.pruners.LGBM_REPORT_INTERVAL` rounds (negated when the study
    maximises) and prunes the trial inside the fold."""

    def __init__(self, trial: optuna.Trial, metric: str, *, maximize: bool):
        self.trial, self.metric, self.maximize = trial, metric, maximize

    def before_fold(self, fold: Fold, model: Any) -> None:
        if fold.index != 0:
            return
        from optuna_integration import LightGBMPruningCallback

        model.set_params(callbacks=[LightGBMPruningCallback(_MinimisingView(self.trial, self.maximize), self.metric,
                                                            report_interval=LGBM_REPORT_INTERVAL)])


@dataclass
class FoldObjective:
    """The Optuna objective: the CV score of ``model`` with sampled parameters on ``folds``, as
    :func:`kagtools.core.engine.score_oof` gives it (mean over repeats)."""

    spec: CompetitionSpec
    data: TrainingSet
    folds: Folds
    model: str
    space: SpaceFn
    fixed: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    n_trials: int | None = None
    lgbm_pruning: bool = True

    @property
    def in_fold(self) -> bool:
        """Whether LightGBM reports its validation loss inside the first fold."""
        from kagtools.models.tabular import LightGBM

        return bool(self.lgbm_pruning and self.spec.task in _LGBM_METRIC
                    and issubclass(get_model_class(self.model), LightGBM))

    def callbacks(self, trial: optuna.Trial) -> list[FoldCallback]:
        """The engine callbacks of one trial: fold reports and pruning, LightGBM's in-fold ones."""
        if not self.in_fold:
            return [ReportAndPrune(trial)]
        maximize = get_metric(self.spec.metric).greater_is_better
        return [ReportAndPrune(trial, FOLD_STEP_OFFSET),
                LightGBMInFoldPruning(trial, _LGBM_METRIC[self.spec.task], maximize=maximize)]

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_id())  # first: a worker killed after this is known to be dead
        self._check_surplus(trial)
        seed = self.spec.cv.seed if self.seed is None else self.seed
        model = make_model(self.model, {**self.fixed, **self.space(trial)}, task=self.spec.task, seed=seed)
        res = run_folds(self.spec, self.data, self.folds, model, seed=seed, callbacks=self.callbacks(trial),
                        predict_test=False, desc=f"trial {trial.number} folds")
        scores = score_oof(self.spec, res.oof, res.y_enc, self.data.ids, res.pred_cols)
        trial.set_user_attr("cv_std", scores["cv_std"])
        return scores["cv"]

    def _check_surplus(self, trial: optuna.Trial) -> None:
        # Trial numbers are unique across workers: a trial is surplus when the finished trials
        # plus the running ones numbered before it already make the target.
        if self.n_trials is None:
            return
        trials = trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        ahead = sum(1 for t in trials if t.state != TrialState.RUNNING or t.number < trial.number)
        if ahead >= self.n_trials:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise SurplusTrial(f"the study already has {self.n_trials} trials")
