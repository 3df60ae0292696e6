"""The model registry and the one way a model is made for a fold.

Models are scikit-learn-style estimators registered by name (``@register_model("lgbm")`` in
:mod:`kagtools.models`). Each declares the tasks it supports (``tasks``, checked when it is
registered). Models backed by torch or another optional package (CatBoost, XGBoost) are
indexed by name in :data:`LAZY_MODELS`, so that looking up a classical model never imports them;
the contract tests check the index against what the modules register.
"""

from __future__ import annotations

from typing import Any

from kagtools.core.registry import Registry, did_you_mean
from kagtools.core.task import Task
from kagtools.errors import KagtoolsError

__all__ = ["MODELS", "LAZY_MODELS", "register_model", "get_model_class", "create_model", "make_model",
           "list_models", "check_params", "seed_params", "fold_seed"]

# Modules without torch: loaded on the first lookup.
EAGER_MODULES = ("kagtools.models.tabular", "kagtools.models.bag", "kagtools.models.recsys",
                 "kagtools.models.phrase_lgbm")
# Models whose modules import torch (and timm/transformers) or catboost/xgboost: loaded only
# when asked for by name.
LAZY_MODELS = {
    "digit_cnn": "kagtools.models.cnn",
    "timm_classifier": "kagtools.models.image_classifier",
    "cf_dot": "kagtools.models.recsys_nets",
    "cf_neural": "kagtools.models.recsys_nets",
    "hf_cross_encoder": "kagtools.models.cross_encoder",
    "hf_group_cross_encoder": "kagtools.models.cross_encoder",
    "catboost": "kagtools.models.boosters",
    "xgboost": "kagtools.models.boosters",
    "tabular_nn": "kagtools.models.tabular_nn",
}


def _check_model(name: str, cls: type) -> None:
    tasks = getattr(cls, "tasks", None)
    if not tasks:
        raise KagtoolsError(f"model '{name}' ({cls.__qualname__}) declares no tasks (a class attribute "
                            f"`tasks`, some of {', '.join(Task)})")
    for task in tasks:
        Task.parse(task, where=f"model '{name}': task")
    cls.registered_name = name


MODELS: Registry[type] = Registry("model", modules=EAGER_MODULES, lazy=LAZY_MODELS, check=_check_model)


def register_model(name: str):
    """Class decorator: register an estimator class under ``name``."""
    return MODELS.register(name)


def get_model_class(name: str) -> type:
    """The class registered as ``name``; one line naming the pip extra when its module cannot load."""
    from kagtools.core.extras import MODEL_EXTRAS, needs_extra

    with needs_extra(f"model '{name}'", MODEL_EXTRAS.get(name)):
        return MODELS.get(name)


def list_models(pattern: str = "*", *, include_lazy: bool = True) -> list[str]:
    """Registered model names matching a glob ``pattern`` (names starting with ``_`` are private)."""
    return MODELS.names(pattern, include_lazy=include_lazy)


def create_model(name: str, **params: Any):
    """Instantiate the model registered as ``name`` with ``params``; unknown params are an error."""
    cls = get_model_class(name)
    valid = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise KagtoolsError(f"model '{name}' has no parameter(s) {', '.join(unknown)}"
                            f"{did_you_mean(unknown[0], list(valid))} (has: {', '.join(sorted(valid))})")
    return cls(**params)


def check_params(name: str, params: dict[str, Any], *, task: str | None = None) -> None:
    """Refuse bad parameters of model ``name`` before any data is read, in one line: unknown
    names, a string or bool where the model takes a number, and whatever the model's own
    ``check_params()`` refuses (scikit-learn's parameter constraints, LightGBM's checks)."""
    defaults = get_model_class(name)().get_params(deep=False)
    model = create_model(name, **params)
    for key, value in params.items():
        default = defaults[key]
        number = isinstance(default, (int, float)) and not isinstance(default, bool)
        if number and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise KagtoolsError(f"model '{name}': parameter '{key}' must be a number (default {default!r}), "
                                f"got {value!r}")
    if task is not None and "task" in defaults:
        model.set_params(task=str(task))
    check = getattr(model, "check_params", None)
    if check is None:
        return
    try:
        check()
    except KagtoolsError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own message, on one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KagtoolsError(f"model '{name}': bad parameter value in {params}: {reason}") from None


def seed_params(model, seed: int) -> dict[str, int]:
    """``{"seed": seed}`` or ``{"random_state": seed}``, whichever the estimator takes; {} if neither."""
    names = model.get_params(deep=False)
    return next(({key: seed} for key in ("seed", "random_state") if key in names), {})


def fold_seed(model, seed: int, repeat: int, fold: int) -> dict[str, int]:
    """The seed parameter of one fold's model: different per fold and repeat (so repeats measure
    seed variance too), the same for the same command."""
    return seed_params(model, seed + 1000 * repeat + fold)


def make_model(name: str, params: dict[str, Any] | None = None, *, task: str, seed: int):
    """The registered model ``name`` with ``params``, set up for ``task`` and seeded.

    The one place a model is made for training: the task goes to a ``task`` parameter, the
    seed to ``seed`` or ``random_state``. A model that does not support ``task`` is an error.
    """
    cls = get_model_class(name)
    if task not in cls.tasks:
        raise KagtoolsError(f"model '{name}' does not support {task} tasks (it supports: "
                            f"{', '.join(cls.tasks)})")
    model = create_model(name, **(params or {}))
    fixed = {"task": str(task)} if "task" in model.get_params(deep=False) else {}
    return model.set_params(**fixed, **seed_params(model, seed))
