"""Search spaces: a model's declared ``search_space(trial)`` staticmethod, with a user space
(``--space``) replacing or adding entries and parameters held fixed (``--params``) left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from kagtools.core.model_registry import get_model_class
from kagtools.errors import KagtoolsError

__all__ = ["SpaceFn", "ModelSpace", "parse_space", "check_space"]

SpaceFn = Callable[[optuna.trial.BaseTrial], dict[str, Any]]


def parse_space(spec: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Check a user search space: ``{"name": {"low": 1, "high": 9, "log": false, "step": 1}}``
    (int when ``low``/``high`` are ints, else float) or ``{"name": {"choices": [...]}}``."""
    out = {}
    for name, dist in (spec or {}).items():
        if not isinstance(dist, dict) or not ({"choices"} <= set(dist) or {"low", "high"} <= set(dist)):
            raise KagtoolsError(f"search space: '{name}' needs {{\"low\": .., \"high\": ..}} or "
                                f"{{\"choices\": [..]}}, got {dist!r}")
        unknown = set(dist) - {"choices", "low", "high", "log", "step"}
        if unknown:
            raise KagtoolsError(f"search space: '{name}' has unknown key(s) {', '.join(sorted(unknown))}")
        out[name] = dict(dist)
    return out


def _suggest(trial: optuna.trial.BaseTrial, name: str, dist: dict[str, Any]) -> Any:
    if "choices" in dist:
        return trial.suggest_categorical(name, list(dist["choices"]))
    low, high = dist["low"], dist["high"]
    if isinstance(low, int) and isinstance(high, int) and not isinstance(dist.get("step", 1), float):
        return trial.suggest_int(name, low, high, step=dist.get("step", 1), log=dist.get("log", False))
    return trial.suggest_float(name, float(low), float(high), step=dist.get("step"), log=dist.get("log", False))


class _Skipping:
    """A trial that does not sample the names in ``skip`` (replaced or held fixed), so the
    declared space never registers a distribution the study will not use."""

    def __init__(self, trial: optuna.trial.BaseTrial, skip: set[str]):
        self._trial, self._skip = trial, skip

    def __getattr__(self, attr: str):
        method = getattr(self._trial, attr)
        if not attr.startswith("suggest_"):
            return method
        return lambda name, *args, **kwargs: None if name in self._skip else method(name, *args, **kwargs)


@dataclass(frozen=True)
class ModelSpace:
    """A model's declared ``search_space`` with user entries replacing or adding to it and the
    names held fixed left out (picklable, so workers in other processes can sample it)."""

    model: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()

    def __call__(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        declared = getattr(get_model_class(self.model), "search_space", None)
        if declared is None and not self.overrides:
            raise KagtoolsError(f"model '{self.model}' declares no search space; pass one with --space")
        skip = {*self.overrides, *self.exclude}
        params = {k: v for k, v in (declared(_Skipping(trial, skip)) if declared else {}).items()
                  if k not in skip}
        params.update({name: _suggest(trial, name, dist) for name, dist in self.overrides.items()
                       if name not in self.exclude})
        return params


def check_space(model: str, space: SpaceFn, fixed: dict[str, Any]) -> list[str]:
    """Sample ``space`` once on a throw-away study and check every name is a model parameter.

    Returns the tuned parameter names; raises :class:`KagtoolsError` before any trial runs.
    """
    valid = set(get_model_class(model)().get_params(deep=False)) - {"task", "seed", "callbacks"}
    try:
        names = sorted(space(optuna.create_study().ask()))
    except (ValueError, TypeError) as exc:
        raise KagtoolsError(f"search space of '{model}': {exc}") from None
    for name in [*names, *fixed]:
        if name not in valid:
            raise KagtoolsError(f"search space of '{model}' names unknown parameter '{name}' "
                                f"(has: {', '.join(sorted(valid))})")
    return names
