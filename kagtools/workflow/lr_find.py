"""``lr_find`` for a competition: sweep a registered deep-learning model's learning rate on the
competition's training set and write the plot to ``reports/<slug>/lr_find_<model>.png``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagtools.core.engine import encode_target
from kagtools.errors import KagtoolsError
from kagtools.models import create_model

if TYPE_CHECKING:
    from kagtools.dl.trainer import LRFinderResult
    from kagtools.workflow.context import Context

__all__ = ["lr_find_report"]


def lr_find_report(slug: str | Context, model: str, params: dict[str, Any] | None = None, *,
                   data_dir: str | os.PathLike | None = None, workdir: str | os.PathLike | None = None,
                   max_rows: int | None = 5000, num_it: int = 100) -> tuple[LRFinderResult, Path]:
    """Run ``model``'s ``lr_find`` on (up to ``max_rows`` of) the training set; returns the
    result and the PNG path. ``slug`` may be an open context (then ``data_dir`` and ``workdir``
    are its own). The model must be a deep-learning adapter (it has ``lr_find``)."""
    from kagtools.workflow.context import open_context

    ctx = slug if hasattr(slug, "spec") else open_context(slug, data_dir=data_dir, workdir=workdir)
    est = create_model(model, **(params or {}))
    if not hasattr(est, "lr_find"):
        raise KagtoolsError(f"model '{model}' has no lr_find (only the deep-learning models do)")
    if "task" in est.get_params(deep=False):
        est.set_params(task=ctx.spec.task)
    tset = ctx.training_set
    y, _ = encode_target(ctx.spec, tset.y)
    n = len(y) if max_rows is None else min(len(y), max_rows)
    result = est.lr_find(tset.X.iloc[:n], y[:n], num_it=num_it)
    return result, result.plot(ctx.reports / f"lr_find_{model}.png")
