"""Pipelines: what WE DO for a competition (features, models, params), one module each.

A pipeline module (``pipelines/<name>.py``, named by the spec's ``pipeline`` key) provides:

- ``features(data, spec) -> TrainingSet``: model-ready features for train and test;
- ``MODELS``: ``{run name: (registered model name, params)}``, the models ``submit`` trains;
- optionally ``PROFILES``: ``{profile: MODELS-like dict}`` for smoke/cpu/gpu variants, and
  ``default_profile()`` choosing one from the device;
- optionally ``eda_notes(data, spec) -> list[str]``: lines for the EDA report.

A competition without a pipeline module uses :func:`default_features` and the ``medium`` preset's
models (:mod:`kagtools.workflow.presets`; :func:`default_models`).
A module is checked when it is loaded: a public name that looks like a misspelt contract name
(``feature``, ``MODEL``), or a contract name of the wrong kind, is an error, never a silent
fall-back to the defaults.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from kagtools.core.data import CompetitionData
from kagtools.core.engine import TrainingSet
from kagtools.core.environment import shipped_dir
from kagtools.core.extras import needs_extra
from kagtools.core.model_registry import MODELS as MODEL_REGISTRY
from kagtools.core.registry import did_you_mean
from kagtools.core.spec import CompetitionSpec
from kagtools.errors import KagtoolsError

#: The names a pipeline module may define (everything else public is its own business).
CONTRACT = ("features", "MODELS", "PROFILES", "default_profile", "eda_notes")

__all__ = ["CONTRACT", "check_pipeline", "load_pipeline", "pipeline_dirs", "build_training_set", "pipeline_models", "default_features", "default_models", "DEFAULT_MODELS"]

# The three-model starting point ``kagtools new --pipeline`` writes into a new pipeline module: a
# linear model, a forest and a booster make different errors, so their mean usually beats each.
DEFAULT_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "logreg": ("logreg", {"C": 0.5}),
    "rf": ("rf", {"n_estimators": 300, "min_samples_leaf": 2, "max_features": 0.5}),
    "lgbm": ("lgbm", {"n_estimators": 400, "learning_rate": 0.03, "num_leaves": 31, "min_child_samples": 10,
                      "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0}),
}


def default_models(spec: CompetitionSpec) -> dict[str, tuple[str, dict[str, Any]]]:
    """What a competition without a pipeline module trains: the ``medium`` preset's models that
    can run here (their package installed, the spec's task supported: LightGBM fits one label,
    so several targets leave it out), one printed line for each left out."""
    from kagtools.workflow.presets import available_models, get_preset

    return available_models(spec, get_preset("medium").models, where="preset medium")


def pipeline_dirs(spec: CompetitionSpec) -> list[Path]:
    """Where ``pipelines.<name>`` is looked for: the ``pipelines/`` of the spec's project folder,
    of the working directory, then the shipped ones; the first that has the file wins."""
    dirs = [d / "pipelines" for d in (spec.project, Path.cwd()) if d is not None] + [shipped_dir("pipelines")]
    return list(dict.fromkeys(d.resolve() for d in dirs if d.is_dir()))


def _import_pipeline(spec: CompetitionSpec) -> ModuleType:
    """Import the spec's ``pipelines.<name>`` from its file, so that no installed package called
    ``pipelines`` can shadow the project's; any other dotted name is imported as it is."""
    package, _, leaf = spec.pipeline.rpartition(".")
    if package != "pipelines":
        return importlib.import_module(spec.pipeline)
    dirs = pipeline_dirs(spec)
    file = next((d / f"{leaf}.py" for d in dirs if (d / f"{leaf}.py").is_file()), None)
    if file is None:
        raise KagtoolsError(f"spec '{spec.slug}': pipeline module '{spec.pipeline}' not found (looked for "
                            f"{leaf}.py in {', '.join(map(str, dirs)) or 'no pipelines/ folder'})")
    loaded = sys.modules.get(spec.pipeline)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == file:
        return loaded
    # `pipelines` as a package over these folders, so a pipeline can import its siblings.
    parent = sys.modules.get("pipelines")
    if parent is None:
        parent = sys.modules["pipelines"] = ModuleType("pipelines")
        parent.__spec__ = importlib.machinery.ModuleSpec("pipelines", None, is_package=True)
        parent.__path__ = []
    parent.__path__ = list(dict.fromkeys([*map(str, dirs), *parent.__path__]))
    if parent.__spec__ is not None and parent.__spec__.submodule_search_locations is not None:
        parent.__spec__.submodule_search_locations[:] = parent.__path__
    module_spec = importlib.util.spec_from_file_location(spec.pipeline, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[spec.pipeline] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.pipeline]
        raise
    setattr(parent, leaf, module)
    return module


def load_pipeline(spec: CompetitionSpec) -> ModuleType | None:
    """The spec's pipeline module, checked against the contract (None when it names none)."""
    if not spec.pipeline:
        return None
    with needs_extra(f"pipeline '{spec.pipeline}'"):
        try:
            module = _import_pipeline(spec)
        except ModuleNotFoundError as exc:
            if exc.name and spec.pipeline.startswith(exc.name):
                raise KagtoolsError(f"spec '{spec.slug}': pipeline module '{spec.pipeline}' not found") from None
            raise
    check_pipeline(module)
    return module


def _check_models(where: str, models: Any) -> None:
    if not isinstance(models, dict):
        raise KagtoolsError(f"{where} must be a dict {{run name: (model, params)}}, got {type(models).__name__}")
    for run_name, entry in models.items():
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], dict)):
            raise KagtoolsError(f"{where}['{run_name}'] must be (registered model name, params dict), got {entry!r}")
        if entry[0] not in MODEL_REGISTRY:
            known = MODEL_REGISTRY.names()
            raise KagtoolsError(f"{where}['{run_name}']: unknown model '{entry[0]}'"
                                f"{did_you_mean(entry[0], known)} (known: {', '.join(known)})")


def check_pipeline(module: ModuleType) -> None:
    """Refuse a pipeline module whose contract names are misspelt or of the wrong kind."""
    from rapidfuzz import fuzz

    where = f"pipeline {module.__name__}"
    for name, value in vars(module).items():
        if name.startswith("_") or name in CONTRACT or isinstance(value, ModuleType):
            continue
        if getattr(value, "__module__", module.__name__) != module.__name__:
            continue  # imported from elsewhere
        close = [c for c in CONTRACT if fuzz.ratio(name.lower(), c.lower()) >= 80]
        if close:
            raise KagtoolsError(f"{where}: '{name}' is not part of the pipeline contract (did you mean "
                                f"'{close[0]}'?); a pipeline defines {', '.join(CONTRACT)}")
    for name in ("features", "default_profile", "eda_notes"):
        if hasattr(module, name) and not callable(getattr(module, name)):
            raise KagtoolsError(f"{where}: '{name}' must be a function")
    if hasattr(module, "MODELS"):
        _check_models(f"{where}: MODELS", module.MODELS)
    profiles = getattr(module, "PROFILES", None)
    if profiles is not None:
        if not isinstance(profiles, dict) or not profiles:
            raise KagtoolsError(f"{where}: PROFILES must be a non-empty dict {{profile: MODELS-like dict}}")
        for profile, models in profiles.items():
            _check_models(f"{where}: PROFILES['{profile}']", models)


def default_features(data: CompetitionData, spec: CompetitionSpec) -> TrainingSet:
    """Raw columns shared by train and test, made model-ready by :class:`AutoFeatures` in each fold.

    Columns only train.csv has are left out (the test cannot supply them); the id and targets
    are never features. Everything learned (categories, target encodings, the text model) is
    fitted on each fold's training rows only.
    """
    from kagtools.features.auto import AutoFeatures

    exclude = {spec.id_col, *spec.target_cols}
    cols = [c for c in data.train.columns if c not in exclude
            and (data.test is None or c in data.test.columns)]
    y = data.train[spec.target_cols[0]] if len(spec.target_cols) == 1 else data.train[list(spec.target_cols)]
    test_ids = None
    if data.test is not None:
        if spec.id_col in data.test.columns:
            test_ids = data.test[spec.id_col]
        else:  # Kaggle numbered the test rows (options.test_ids = "row_number")
            start = int(spec.options.get("test_id_start", 1))
            test_ids = pd.Series(range(start, start + len(data.test)), name=spec.id_col)
    return TrainingSet(X=data.train[cols].reset_index(drop=True), y=y.reset_index(drop=True),
                       ids=data.train[spec.id_col].reset_index(drop=True),
                       X_test=data.test[cols].reset_index(drop=True) if data.test is not None else None,
                       test_ids=None if test_ids is None else test_ids.reset_index(drop=True),
                       fold_features=AutoFeatures(seed=spec.cv.seed), name="auto")


def build_training_set(spec: CompetitionSpec, data: CompetitionData) -> TrainingSet:
    fn = getattr(load_pipeline(spec), "features", None)
    tset = fn(data, spec) if fn else default_features(data, spec)
    if len(tset.X) != len(tset.ids) or len(tset.y) != len(tset.ids):
        raise KagtoolsError(f"pipeline {spec.pipeline}: features, target and ids differ in length")
    if tset.X_test is not None and isinstance(tset.X, pd.DataFrame):
        missing = [c for c in tset.X.columns if c not in tset.X_test.columns]
        if missing:
            raise KagtoolsError(f"pipeline {spec.pipeline}: test features lack column '{missing[0]}'")
    return tset


def pipeline_models(spec: CompetitionSpec, profile: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    module = load_pipeline(spec)
    if module is None:
        return default_models(spec)
    profiles = getattr(module, "PROFILES", None)
    if profiles and not profile and hasattr(module, "default_profile"):
        profile = module.default_profile()
    if profile and profiles:
        if profile not in profiles:
            raise KagtoolsError(f"pipeline {spec.pipeline} has no profile '{profile}' (has: {', '.join(profiles)})")
        return dict(profiles[profile])
    return dict(module.MODELS) if hasattr(module, "MODELS") else default_models(spec)

