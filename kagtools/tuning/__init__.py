"""Optuna tuning: a model's CV score over the shared folds, in a persistent, shareable study.

The objective fits the model on the competition's saved folds through the fold engine
(:func:`kagtools.core.engine.run_folds`), exactly as :func:`kagtools.core.engine.cross_validate`
does, so the best trial's value is the CV score its run later records. Folds run one after the
other inside a trial so that the running mean of the fold scores is reported after each fold
and a poor trial pruned early; LightGBM also reports its validation loss inside the first fold.

Modules: ``storage`` (where a study lives), ``space`` (search spaces), ``pruners``,
``objective`` (one trial), ``workers`` (processes or Dask tasks on one study), ``reports``
(plots), ``study`` (:func:`~kagtools.tuning.study.tune`) and ``tuned`` (reading the saved best
parameters). Import from them: importing this package imports nothing, so reading tuned
parameters never pays for Optuna.
"""
