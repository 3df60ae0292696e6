"""Where ``kagtools tune`` leaves a model's best parameters, and reading them back (no Optuna)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kagtools.core.io import read_json

__all__ = ["tuned_params_path", "tuned_params"]


def tuned_params_path(root: Path, model: str) -> Path:
    """Where ``kagtools tune`` leaves the best parameters of ``model`` (``root``: the
    competition's runs, ``runs/<slug>``)."""
    return Path(root) / "tuned" / f"{model}.json"


def tuned_params(root: Path, model: str) -> dict[str, Any]:
    """The tuned parameters of ``model`` under ``root``, or {} when it was never tuned."""
    path = tuned_params_path(root, model)
    return dict(read_json(path).get("params", {})) if path.is_file() else {}
