"""Model insights for a tabular run: which features it uses, how, and which say the same thing.

The run's model is refitted on each fold of the first repeat of the shared folds as the fold
engine fits it (same parameters, per-fold seed, fold features fitted on the training rows only)
and measured on that fold's out-of-fold rows:

- permutation importance scored with the competition metric, its mean and spread over folds;
- gain importance for tree models (LightGBM gain, scikit-learn ``feature_importances_``);
- partial dependence of the top features (scikit-learn's ``inspection``);
- per-row contributions for a few test rows (LightGBM ``pred_contrib``; for another model, a
  LightGBM surrogate fitted to that model's scores, labelled as such);
- groups of redundant features: clusters of Spearman rank correlation (distance ``1 - |rho|``).

A blend is explained through its strongest member; a deep-learning run is refused.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from threadpoolctl import threadpool_limits

from kagtools.analysis.eda import _CSS, _png, _table
from kagtools.core.engine import TrainingSet, encode_target
from kagtools.core.extras import MODEL_EXTRAS
from kagtools.core.folds import Folds
from kagtools.core.io import atomic_path
from kagtools.core.metrics import get_metric
from kagtools.core.model_registry import fold_seed, make_model
from kagtools.core.runs import Run, load_run
from kagtools.core.spec import CompetitionSpec
from kagtools.errors import KagtoolsError

__all__ = ["Explanation", "explained_run", "explain_run", "write_explain"]


@dataclass
class Explanation:
    """What ``explain`` found; ``importance`` is indexed by feature, most important first."""

    run_id: str
    notes: list[str]
    importance: pd.DataFrame  # perm, perm_std, gain (share, NaN when the model has none), group
    groups: list[list[str]]
    contributions: pd.DataFrame | None
    partial: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # feature: (grid, mean score)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, html)


def _model_name(run: Run) -> str:
    return run.record.model.split(" x")[0] if run.record.kind == "bag" else run.record.model


def explained_run(root: Path, run: Run, metric: str) -> tuple[Run, list[str]]:
    """The run whose model is refitted: ``run``, or a blend's strongest member (best CV)."""
    notes = []
    while run.record.kind == "blend":
        members = [load_run(root, i) for i in run.record.runs]
        best = max(members, key=lambda r: get_metric(metric).sign() * r.record.scores["cv"])
        notes.append(f"{run.run_id} is a blend of {len(members)} runs: explained through its strongest member "
                     f"{best.run_id} (CV {best.record.scores['cv']:.4f})")
        run = best
    if run.record.kind == "boost":
        raise KagtoolsError(f"explain: run {run.run_id} is a boost (fitted on another run's residuals); "
                            f"explain one of its runs instead")
    if MODEL_EXTRAS.get(_model_name(run)) in ("vision", "text", "recsys"):
        raise KagtoolsError(f"explain: run {run.run_id} is a deep-learning run ({_model_name(run)}); explain "
                            f"works on tabular runs")
    if run.record.kind == "bag":
        notes.append(f"{run.run_id} is a bag of {run.record.model}: explained through one member per fold")
    return run, notes


class _Scores(RegressorMixin, BaseEstimator):
    """A fitted run model as scikit-learn's inspection sees it: a regressor of its recorded scores."""

    def __init__(self, model=None):
        self.model = model

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X, y=None):
        return self

    def predict(self, X) -> np.ndarray:
        return np.asarray(self.model.predict_scores(X), dtype=float)


def _gain(model, columns) -> pd.Series | None:
    """Share of split gain per feature (LightGBM gain, a forest's impurity decrease); None if none."""
    est = getattr(model, "estimator_", None)
    if hasattr(est, "booster_"):
        return pd.Series(est.booster_.feature_importance("gain"), index=columns)
    last = est[-1] if hasattr(est, "steps") else est
    if hasattr(last, "feature_importances_"):
        names = est[:-1].get_feature_names_out() if hasattr(est, "steps") else columns
        return pd.Series(last.feature_importances_, index=[str(n).split("__", 1)[-1] for n in names])
    return None


def _contributions(model, name: str, spec, X_tr, X_rows, ids, seed: int) -> tuple[pd.DataFrame | None, str]:
    """Per-row contributions (raw score units) of ``X_rows``, and what they are contributions of."""
    est = getattr(model, "estimator_", None)
    if hasattr(est, "booster_"):
        how = f"from LightGBM pred_contrib of {name} itself ({'log-odds' if spec.is_classification else 'value'} units)"
    else:
        scores = np.asarray(model.predict_scores(X_tr), dtype=float)
        if scores.ndim > 1:
            return None, f"not shown: {name} is not LightGBM, and no surrogate is made for several score columns"
        model = make_model("lgbm", {"n_estimators": 200}, task="regression", seed=seed).fit(X_tr, scores)
        est = model.estimator_
        fit = np.corrcoef(scores, model.predict_scores(X_tr))[0, 1]
        how = (f"of a LightGBM SURROGATE fitted to {name}'s scores, not of {name} itself (correlation "
               f"{fit:.3f} with them on the training rows; score units)")
    align = getattr(model, "_align", lambda X: X)  # kagtools' LightGBM: the categories it was fitted with
    contrib = np.asarray(est.predict(align(X_rows), pred_contrib=True))
    k = X_rows.shape[1] + 1
    if contrib.shape[1] > k:  # multiclass: the predicted class's block
        blocks = contrib.reshape(len(X_rows), -1, k)
        contrib = blocks[np.arange(len(X_rows)), blocks.sum(axis=2).argmax(axis=1)]
    out = pd.DataFrame(contrib, columns=[*X_rows.columns, "(base)"], index=pd.Index(ids, name="id"))
    out["= raw score"] = out.sum(axis=1)
    return out, how


def _redundancy(X: pd.DataFrame, threshold: float) -> tuple[list[list[str]], str]:
    """Feature groups whose rank correlations exceed ``threshold`` (average linkage), and a dendrogram."""
    import matplotlib.pyplot as plt
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    if X.shape[1] < 2:
        return [], ""
    codes = X.apply(lambda s: s.cat.codes.where(s.cat.codes >= 0) if s.dtype == "category" else s)
    rho = codes.apply(pd.to_numeric, errors="coerce").corr(method="spearman").fillna(0.0).to_numpy()
    dist = np.clip(1 - np.abs(rho), 0, None)
    np.fill_diagonal(dist, 0)
    link = hierarchy.linkage(squareform(dist, checks=False), method="average")
    labels = hierarchy.fcluster(link, t=1 - threshold, criterion="distance")
    groups = [list(X.columns[labels == g]) for g in np.unique(labels)]
    fig, ax = plt.subplots(figsize=(7, 0.3 * X.shape[1] + 1.2))
    hierarchy.dendrogram(link, labels=list(X.columns), orientation="right", ax=ax, color_threshold=1 - threshold)
    ax.axvline(1 - threshold, color="k", ls="--", lw=0.8)
    ax.set_xlabel("1 - |Spearman rho| (0: the same ranking; dashed: the grouping threshold)")
    ax.set_title("Features clustered by rank correlation")
    return sorted((g for g in groups if len(g) > 1), key=len, reverse=True), _png(fig)


def _value(v) -> str:
    return "missing" if pd.isna(v) else f"{v:.4g}" if isinstance(v, float) else str(v)


def _barh(values: pd.Series, xlabel: str, color: str, xerr: pd.Series | None = None, *, title: str) -> str:
    import matplotlib.pyplot as plt

    shown = values[:30]
    fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(shown) + 1.3))
    ax.barh([str(i) for i in shown.index[::-1]], shown[::-1], xerr=None if xerr is None else xerr[:30][::-1],
            color=color, error_kw={"ecolor": "#333", "capsize": 2, "lw": 1})
    ax.axvline(0, color="#888", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title + (f" (top 30 of {len(values)})" if len(values) > 30 else ""))
    return _png(fig)


def _partial(model, X: pd.DataFrame, feature: str, cats: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """Partial dependence of the model's scores on ``feature`` over the rows ``X``, and its chart."""
    import matplotlib.pyplot as plt
    from sklearn.inspection import partial_dependence

    custom = None
    if feature not in cats and X[feature].isna().any():
        # scikit-learn's grid from a column with missing values is all NaN: grid the observed values.
        observed = pd.to_numeric(X[feature], errors="coerce").dropna().to_numpy(dtype=float)
        if len(observed):
            custom = {feature: np.unique(np.quantile(observed, np.linspace(0.05, 0.95, 20)))}
    pdp = partial_dependence(_Scores(model), X, [feature], categorical_features=cats or None, grid_resolution=20,
                             custom_values=custom)
    grid, avg = pdp["grid_values"][0], np.atleast_2d(pdp["average"])
    if feature not in cats and not np.isfinite(np.asarray(grid, dtype=float)).any():
        return grid, avg, ""  # a column with missing values: scikit-learn's grid is all NaN, nothing to draw
    fig, ax = plt.subplots(figsize=(3.7, 3.0))
    for line in avg:  # one line per score column (a class, a target)
        if feature in cats:
            ax.bar([str(v) if len(str(v)) <= 12 else str(v)[:11] + "…" for v in grid], line, alpha=0.7)
        else:
            ax.plot(grid, line, marker=".")
    if feature in cats and len(grid) > 4:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_ha("right")
            label.set_rotation_mode("anchor")
    ax.set_title(f"partial dependence on {feature}", fontsize=10)
    ax.set_xlabel(str(feature), fontsize=8)
    ax.set_ylabel("mean predicted score", fontsize=8)
    ax.tick_params(labelsize=8)
    return grid, avg, _png(fig)


@threadpool_limits.wrap(limits=1)  # refits one after another, many small predictions: threads only oversubscribe
def explain_run(spec: CompetitionSpec, data: TrainingSet, folds: Folds, run: Run, *, notes=(),
                n_folds: int | None = None, max_rows: int = 2000, n_repeats: int = 5, top: int = 4,
                n_contrib_rows: int = 5, threshold: float = 0.7) -> Explanation:
    """Refit ``run``'s model on the folds of the first repeat and explain it (see the module doc).

    ``n_folds`` limits the folds refitted, ``max_rows`` the out-of-fold rows permuted per fold
    (``n_repeats`` times), ``top`` the features with a partial dependence plot, ``threshold``
    the ``|rho|`` above which features are grouped as redundant.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.inspection import permutation_importance

    rec, seed = run.record, run.record.seed or 0
    if rec.folds_hash != folds.hash:
        raise KagtoolsError(f"explain: run {rec.run_id} was made on other folds (stale); rerun it")
    if rec.features and rec.features != data.name:
        raise KagtoolsError(f"explain: run {rec.run_id} used features '{rec.features}', the pipeline now builds "
                            f"'{data.name}'; rerun it")
    metric, rng = get_metric(spec.metric), np.random.default_rng(seed)
    y_enc, _ = encode_target(spec, data.y)
    splits = [s for s in folds.splits(data.ids) if s[0] == 0][:n_folds]
    model0 = make_model(_model_name(run), rec.params, task=spec.task, seed=seed)
    perms, gains = [], []

    def scorer(est, X, y):
        return metric.sign() * metric(y, est.predict_scores(X))

    for k, (r, f, tr, va) in enumerate(splits):
        print(f"  fold {k + 1}/{len(splits)}: refit {rec.model} on {len(tr):,} rows, permute "
              f"{min(len(va), max_rows):,}", flush=True)
        X_tr, X_va, X_te = data.fold_frames((folds.hash, r, f), y_enc, tr, va)
        model = clone(model0).set_params(**fold_seed(model0, seed, r, f))  # as the fold engine seeds it
        model.fit(X_tr, y_enc[tr], X_valid=X_va, y_valid=y_enc[va])
        pos = np.sort(rng.choice(len(va), min(len(va), max_rows), replace=False))
        res = permutation_importance(model, X_va.iloc[pos], y_enc[va][pos], scoring=scorer, n_repeats=n_repeats,
                                     random_state=seed + k)
        perms.append(pd.Series(res.importances_mean, index=X_va.columns))
        gain = _gain(model, list(X_tr.columns))
        if gain is not None:
            gains.append(gain / max(gain.sum(), 1e-12))
        if k == 0:
            first = model, X_tr, X_va.iloc[pos[:500]], va[pos[:500]], X_te

    perm = pd.concat(perms, axis=1)
    imp = pd.DataFrame({"perm": perm.mean(axis=1), "perm_std": perm.std(axis=1, ddof=1) if len(perms) > 1 else 0.0})
    imp["gain"] = pd.concat(gains, axis=1).mean(axis=1).reindex(imp.index) if gains else np.nan
    imp = imp.sort_values("perm", ascending=False)
    model, X_tr, X_pd, pd_pos, X_te = first
    groups, dendrogram = _redundancy(X_tr, threshold)
    imp["group"] = ""
    for g, members in enumerate(groups, 1):
        imp.loc[members, "group"] = f"G{g}"

    ex = Explanation(rec.run_id, list(notes), imp, groups, None)
    ex.notes.append(f"model {rec.model} ({rec.params or 'default params'}), refitted on {len(splits)} folds "
                    f"(repeat 0 of {folds.n_repeats}); run CV {spec.metric} {rec.scores['cv']:.4f}")
    chart = _barh(imp["perm"], f"drop in {spec.metric} when the feature is shuffled (mean +- std over folds)",
                  "#48c", xerr=imp["perm_std"], title="Permutation importance on out-of-fold rows")
    shown = imp.rename(columns={"perm": f"importance ({spec.metric} drop)", "perm_std": "std over folds",
                                "gain": "gain share", "group": "redundancy group"})
    if not gains:
        shown = shown.drop(columns="gain share")  # no gain for this model: no empty column
    ex.sections.append(("Permutation importance (out-of-fold rows)", (
        f"<p>Each feature's column is shuffled in the rows the model did not train on, and the drop in "
        f"{html.escape(spec.metric)} is measured (bars: mean over folds; whiskers: the spread). Near zero or "
        f"negative: the model does not need the feature. Features of one redundancy group (last section) share "
        f"their importance: shuffling one leaves its twin to carry the signal.</p>") + chart + _table(shown, 200)))
    if gains:
        ex.sections.append(("Gain importance", "<p>The share of the trees' loss reduction from splits on each "
                            "feature, on the training rows: it favours features with many distinct values, so read "
                            "it beside the permutation importance.</p>"
                            + _barh(imp["gain"].sort_values(ascending=False), "share of gain (mean over folds)",
                                    "#6a4", title="Gain importance of the tree model")))

    cats = [c for c in X_pd.columns if not pd.api.types.is_numeric_dtype(X_pd[c]) or X_pd[c].dtype == bool]
    charts = []
    for feat in imp.index[:top]:
        if feat in cats and X_pd[feat].nunique() > 30:
            charts.append(f"<p>{html.escape(feat)}: too many levels for a partial dependence plot</p>")
            continue
        try:
            grid, avg, png = _partial(model, X_pd, feat, cats)
        except (ValueError, TypeError) as exc:  # e.g. missing values in a text column
            charts.append(f"<p>{html.escape(feat)}: no partial dependence ({html.escape(str(exc)[:120])})</p>")
            continue
        ex.partial[feat] = grid, avg
        charts.append(png or f"<p>{html.escape(feat)}: no partial dependence plot (the column has missing values, "
                             f"and scikit-learn's grid over it is empty).</p>")
    ex.sections.append((f"Partial dependence of the top {len(charts)} features (fold 1)",
                        "<p>The model's mean predicted score (a probability for classes, the prediction for "
                        "regression) when every row gets the value on the x axis and keeps its other features: "
                        "how the prediction moves with that one feature. Fold 1's model, on its out-of-fold "
                        "rows.</p>" + "".join(charts)))

    if X_te is not None:
        rows, ids = X_te.head(n_contrib_rows), data.test_ids.iloc[:n_contrib_rows]
    else:
        rows, ids = X_pd.head(n_contrib_rows), data.ids.iloc[pd_pos[:n_contrib_rows]]
    c, how = _contributions(model, rec.model, spec, X_tr, rows, ids.to_numpy(), seed)
    ex.contributions, table = c, ""
    if c is not None:
        feats = c.drop(columns=["(base)", "= raw score"]).abs().mean().sort_values(ascending=False).index
        table = _table(pd.DataFrame({i: [f"{c.iloc[k][f]:+.3f} ({_value(rows.iloc[k][f])})" for f in feats]
                                     + [f"{c.iloc[k]['(base)']:+.3f}", f"{c.iloc[k]['= raw score']:+.3f}"]
                                     for k, i in enumerate(c.index)}, index=[*feats, "(base)", "= raw score"]))
    which = "test" if X_te is not None else "out-of-fold"
    ex.sections.append((f"Per-row contributions, first {len(rows)} {which} rows",
                        f"<p>Why the model scored these rows as it did: each cell is a feature's contribution to "
                        f"the row's raw score, with the row's value of the feature in brackets; (base) plus the "
                        f"contributions add up to the raw score. Contributions "
                        f"{html.escape(how)}.</p>{table}"))
    ex.notes.append(f"contributions {how}")
    text = "".join(f"<li>{html.escape(', '.join(g))}</li>" for g in groups) or "<li>none</li>"
    ex.sections.append((f"Redundant features (|Spearman rho| >= {threshold})",
                        "<p>Groups of features that rank the rows almost alike: one of each group is usually "
                        "enough, and their importances are shared out between them.</p>"
                        f"<ul>{text}</ul>" + dendrogram))
    plt.close("all")
    return ex


def write_explain(spec: CompetitionSpec, data: TrainingSet, folds: Folds, run: Run, out_dir: Path,
                  **kwargs) -> tuple[Path, Explanation]:
    """Explain ``run`` (:func:`explain_run`) and write ``<out_dir>/explain.html`` atomically."""
    ex = explain_run(spec, data, folds, run, **kwargs)
    body = "".join(f"<h2>{html.escape(t)}</h2>{h}" for t, h in ex.sections)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in ex.notes)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Explain: {html.escape(spec.slug)}</title>"
            f"<style>{_CSS}</style></head><body><h1>Explain: {html.escape(ex.run_id)}</h1>"
            f"<ul>{notes}</ul>{body}</body></html>")
    path = Path(out_dir) / "explain.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page)
    return path, ex
