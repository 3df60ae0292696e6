"""Tuning reports: Optuna's matplotlib plots of a study (no plotly needed) and an HTML page."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

__all__ = ["write_reports"]


def write_reports(study: optuna.Study, reports: Path, model: str, *, max_contour: int = 3) -> list[Path]:
    """Optimization history, parameter importances, slice and contour plots (PNG) and an HTML
    page that shows them, in ``reports``; a plot that cannot be drawn yet is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    reports.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = sorted({p for t in complete for p in t.params})
    importances: dict[str, float] = {}
    if len(complete) >= 2 and names:
        with contextlib.suppress(ValueError, RuntimeError):
            importances = optuna.importance.get_param_importances(study)
    top = list(importances)[:max_contour] or names[:max_contour]
    plots = {
        "history": lambda: ovm.plot_optimization_history(study),
        "importances": (lambda: ovm.plot_param_importances(study)) if importances else None,
        "slice": (lambda: ovm.plot_slice(study, params=names)) if names else None,
        "contour": (lambda: ovm.plot_contour(study, params=top)) if len(top) >= 2 and len(complete) >= 2 else None,
    }
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
        for kind, draw in plots.items():
            if draw is None or not complete:
                continue
            try:
                ax = draw()
            except (ValueError, RuntimeError):
                continue
            fig = np.asarray(ax).ravel()[0].figure
            if kind in ("slice", "contour"):
                fig.set_size_inches(max(6.0, 3.2 * min(len(names), 7)), 4.5 if kind == "slice" else 3.2 * len(top))
            path = reports / f"tune-{model}-{kind}.png"
            fig.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
    html = reports / f"tune-{model}.html"
    rows = "".join(f"<tr><td>{k}</td><td>{v:.3f}</td></tr>" for k, v in importances.items())
    imgs = "".join(f'<h2>{p.stem.rsplit("-", 1)[-1]}</h2><img src="{p.name}" style="max-width:100%">'
                   for p in written)
    best = f"<p>best trial {study.best_trial.number}: {study.best_value:.5f}</p>" if complete else ""
    html.write_text(f"<!doctype html><meta charset='utf-8'><title>{study.study_name}</title>"
                    f"<h1>Study {study.study_name}</h1>{best}<table>{rows}</table>{imgs}\n")
    return [html, *written]
