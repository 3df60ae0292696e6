"""The model registry: ``@register_model("name")`` on an estimator class, ``create_model(name)``.

Every registered model meets the scikit-learn estimator contract: hyper-parameters are plain
``__init__`` keywords (so ``clone`` and ``set_params`` work), learned state ends in ``_``, and
``fit(X, y, X_valid=None, y_valid=None)`` then ``predict`` / ``predict_proba``. Classifiers
return probabilities of the encoded classes ``0..K-1``; a binary one returns the positive
class's probability as a 1-D array from ``predict_scores``.
"""

from __future__ import annotations

import fnmatch
import importlib
from typing import Any

from kagtools.errors import KagtoolsError

__all__ = ["register_model", "create_model", "list_models", "get_model_class", "search_space"]

_REGISTRY: dict[str, type] = {}
# Every module of this package registers models when imported. The classical ones load first;
# the others (deep learning) only when a name is not found, so the classical path never pays
# for importing torch.
EAGER_MODULES = ["kagtools.models.tabular", "kagtools.models.bootstrap"]


def register_model(name: str):
    """Class decorator: register an estimator class under ``name``."""

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise KagtoolsError(f"model name '{name}' is registered twice")
        _REGISTRY[name] = cls
        cls.registered_name = name
        return cls

    return deco


def _lazy_modules() -> list[str]:
    import pkgutil

    names = [f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__)
             if not info.name.startswith("_")]
    return [n for n in names if n not in EAGER_MODULES]


def _load(lazy: bool = False) -> None:
    for mod in EAGER_MODULES + (_lazy_modules() if lazy else []):
        importlib.import_module(mod)


def get_model_class(name: str) -> type:
    _load()
    if name not in _REGISTRY:
        _load(lazy=True)
    if name not in _REGISTRY:
        raise KagtoolsError(f"unknown model '{name}' (known: {', '.join(list_models())})")
    return _REGISTRY[name]


def create_model(name: str, **params: Any):
    """Instantiate the model registered as ``name`` with ``params``; unknown params are an error."""
    cls = get_model_class(name)
    valid = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise KagtoolsError(
            f"model '{name}' has no parameter(s) {', '.join(unknown)} (has: {', '.join(sorted(valid))})"
        )
    return cls(**params)


def list_models(pattern: str = "*", *, include_lazy: bool = True) -> list[str]:
    """Registered model names matching a glob ``pattern`` (names starting with ``_`` are private)."""
    _load(lazy=include_lazy)
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern) and not n.startswith("_"))


def search_space(name: str, trial) -> dict[str, Any]:
    """Sample the model's declared Optuna search space (its ``search_space`` staticmethod)."""
    cls = get_model_class(name)
    if not hasattr(cls, "search_space"):
        raise KagtoolsError(f"model '{name}' declares no search space")
    return cls.search_space(trial)
