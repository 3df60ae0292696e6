"""Optuna tuning: a model's CV score over the shared folds, in a persistent, shareable study.

The objective fits the model on the competition's saved folds through the fold engine
(:func:`kagtools.core.engine.run_folds`), exactly as :func:`kagtools.core.engine.cross_validate`
does, so the best trial's value is the CV score its run later records. Folds run one after the
other inside a trial so that the running mean of the fold scores is reported after each fold
and a poor trial pruned early; LightGBM also reports its validation loss inside the first fold.

Studies live in a storage: a SQLite file under ``runs/<slug>/`` by default, any SQLAlchemy URL
(``postgresql://...``) for workers on several machines, or ``journal:PATH`` for Optuna's file
journal. ``n_trials`` is the study's target of finished (complete + pruned) trials, so
rerunning the same command continues an interrupted study and several workers together stop
at exactly that total. Workers are local processes (joblib) or Dask tasks (``scheduler``).

Modules (import from them: importing this package imports nothing, so reading tuned
parameters never pays for Optuna)
--------------------
storage
    :func:`open_storage`, :func:`redact_url`, :func:`default_storage`.
space
    :class:`ModelSpace`, :func:`parse_space`, :func:`check_space`.
pruners
    :func:`make_pruner`, :class:`OnLatestValue`, :data:`PRUNERS`.
objective
    :class:`FoldObjective` and its fold-engine callbacks.
workers
    :class:`Tuning`, :func:`run_workers`, :func:`fail_dead_trials`, :func:`worker_id`.
reports
    :func:`write_reports`.
study
    :func:`tune`, :func:`summarize`, :class:`TuneResult`, :func:`tuned_params_path`,
    :func:`tuned_params`, :func:`default_study_name`.
"""
