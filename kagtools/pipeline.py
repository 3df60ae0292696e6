"""Pipelines: what WE DO for a competition (features, models, params), one module each.

A pipeline module (``pipelines/<name>.py``, named by the spec's ``pipeline`` key) provides:

- ``features(data, spec) -> TrainingSet``: model-ready features for train and test;
- ``MODELS``: ``{run name: (registered model name, params)}``, the models ``submit`` trains;
- optionally ``PROFILES``: ``{profile: MODELS-like dict}`` for smoke/cpu/gpu variants, and
  ``default_profile()`` choosing one from the device.

A competition without a pipeline module uses :func:`default_features` and :data:`DEFAULT_MODELS`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pandas as pd

from kagtools.cv import TrainingSet
from kagtools.data import CompetitionData
from kagtools.errors import KagtoolsError
from kagtools.spec import CompetitionSpec

__all__ = ["load_pipeline", "build_training_set", "pipeline_models", "default_features", "DEFAULT_MODELS"]

DEFAULT_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "logreg": ("logreg", {}),
    "rf": ("rf", {"n_estimators": 300, "min_samples_leaf": 2}),
    "lgbm": ("lgbm", {}),
}


def load_pipeline(spec: CompetitionSpec) -> ModuleType | None:
    if not spec.pipeline:
        return None
    try:
        return importlib.import_module(spec.pipeline)
    except ModuleNotFoundError as exc:
        if exc.name and spec.pipeline.startswith(exc.name):
            raise KagtoolsError(f"spec '{spec.slug}': pipeline module '{spec.pipeline}' not found") from None
        raise


def default_features(data: CompetitionData, spec: CompetitionSpec) -> TrainingSet:
    """Every column but the id and targets, as read; the models encode categories themselves."""
    drop = [spec.id_col, *spec.target_cols]
    X = data.train.drop(columns=drop)
    X_test = data.test[X.columns] if data.test is not None else None
    y = data.train[spec.target_cols[0]] if len(spec.target_cols) == 1 else data.train[list(spec.target_cols)]
    return TrainingSet(X=X, y=y, ids=data.train[spec.id_col], X_test=X_test,
                       test_ids=data.test[spec.id_col] if data.test is not None else None, name="default")


def build_training_set(spec: CompetitionSpec, data: CompetitionData) -> TrainingSet:
    module = load_pipeline(spec)
    fn = getattr(module, "features", None) if module else None
    tset = fn(data, spec) if fn else default_features(data, spec)
    _check(tset, spec)
    return tset


def pipeline_models(spec: CompetitionSpec, profile: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    module = load_pipeline(spec)
    if module is None:
        return dict(DEFAULT_MODELS)
    profiles = getattr(module, "PROFILES", None)
    if profiles and not profile and hasattr(module, "default_profile"):
        profile = module.default_profile()
    if profile and profiles:
        if profile not in profiles:
            raise KagtoolsError(f"pipeline {spec.pipeline} has no profile '{profile}' (has: {', '.join(profiles)})")
        return dict(profiles[profile])
    return dict(getattr(module, "MODELS", DEFAULT_MODELS))


def _check(tset: TrainingSet, spec: CompetitionSpec) -> None:
    if len(tset.X) != len(tset.ids) or len(tset.y) != len(tset.ids):
        raise KagtoolsError(f"pipeline {spec.pipeline}: features, target and ids differ in length")
    if tset.X_test is not None and isinstance(tset.X, pd.DataFrame):
        missing = [c for c in tset.X.columns if c not in tset.X_test.columns]
        if missing:
            raise KagtoolsError(f"pipeline {spec.pipeline}: test features lack column '{missing[0]}'")
