"""Optuna tuning: a model's CV score over the shared folds, in a persistent, shareable study.

The objective fits the model on the competition's saved folds through the fold engine
(:func:`kagtools.core.engine.run_folds`), exactly as :func:`kagtools.core.engine.cross_validate`
does, so the best trial's value is the CV score its run later records. Folds run one after the
other inside a trial so that the running mean of the fold scores is reported after each fold
and a poor trial pruned early; LightGBM also reports its validation loss inside the first fold.

Import from the modules (:func:`~kagtools.tuning.study.tune` is the entry point): importing this
package imports nothing, so reading tuned parameters (``tuned``) never pays for Optuna.
"""
