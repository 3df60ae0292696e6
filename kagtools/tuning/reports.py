"""Tuning reports: Optuna's matplotlib plots of a study (no plotly needed) and an HTML page."""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
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
    with warnings.catch_warnings(action="ignore"):  # optuna marks its matplotlib backend experimental
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
    page = reports / f"tune-{model}.html"
    page.write_text(_page(study, model, written, importances, complete))
    return [page, *written]


_ABOUT = {
    "history": ("Optimization history", "Each trial's cross-validated score in the order the trials ran, and the "
                "best score so far (the line): a line still climbing at the end says more trials may pay."),
    "importances": ("Parameter importances", "How much of the score's variation across trials each parameter "
                    "explains (fANOVA; they add up to 1, so a single parameter is always 1)."),
    "slice": ("Score against each parameter", "One panel per parameter: each dot a trial (darker: later), its "
              "score against the value it tried; a peak inside the range says the range is right, a best "
              "value at an edge says widen it."),
    "contour": ("Score over pairs of parameters", "The score interpolated over pairs of the most important "
                "parameters (dots: trials)."),
}
_CSS = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;line-height:1.4}"
        "table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{padding:2px 10px;"
        "border-bottom:1px solid #ddd;text-align:left}img{max-width:100%;height:auto;margin:4px}"
        "h2{border-bottom:2px solid #48c;margin-top:1.6em}p{max-width:75em}")


def _page(study: optuna.Study, model: str, written: list[Path], importances: dict[str, float],
          complete: list) -> str:
    """The report page: the best trial and its parameters, then each chart (embedded, so the page
    stands alone) with a line on how to read it and a link to its PNG."""
    import base64
    import html

    esc = html.escape
    states = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    goal = (f"{study.direction.name.lower()}d" if len(study.directions) == 1 else "several objectives")
    head = (f"<p>Model <b>{esc(model)}</b>; {len(study.trials)} trials ({esc(counts)}); objective: the "
            f"cross-validated score, {esc(goal)}.</p>")
    if complete:
        best = study.best_trial
        rows = "".join(f"<tr><td>{esc(str(k))}</td><td>{esc(_fmt(v))}</td></tr>" for k, v in best.params.items())
        head += (f"<h2>Best trial</h2><p>Trial {best.number}: score <b>{study.best_value:.5f}</b>.</p>"
                 + (f"<table><tr><th>parameter</th><th>best value</th></tr>{rows}</table>" if rows else ""))
    if importances:
        rows = "".join(f"<tr><td>{esc(str(k))}</td><td>{v:.3f}</td></tr>" for k, v in importances.items())
        head += f"<h2>Parameter importance</h2><table><tr><th>parameter</th><th>importance</th></tr>{rows}</table>"
    charts = []
    for p in written:
        kind = p.stem.rsplit("-", 1)[-1]
        title, about = _ABOUT.get(kind, (kind, ""))
        data = base64.b64encode(p.read_bytes()).decode()
        charts.append(f"<h2>{esc(title)}</h2><p>{esc(about)} <a href='{esc(p.name)}'>{esc(p.name)}</a></p>"
                      f'<img alt="{esc(title, quote=True)}" src="data:image/png;base64,{data}">')
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Tuning: {esc(study.study_name)}</title>"
            f"<style>{_CSS}</style></head><body><h1>Tuning: {esc(study.study_name)}</h1>{head}"
            f"{''.join(charts)}</body></html>\n")


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
