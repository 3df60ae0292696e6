"""EDA report: one self-contained HTML file with PNG charts embedded, plus a text summary.

Shapes, dtypes, missing values, cardinality, target balance, target by feature level and by
binned numeric, correlations, duplicates, and train-vs-test drift by adversarial validation
(a LightGBM classifier's AUC at telling train rows from test rows, and what drives it; the
split advisor's :func:`~kagtools.analysis.split_advisor.adversarial_auc`, so the report and
``kagtools folds --explain`` print the same figure).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kagtools.analysis.split_advisor import adversarial_auc
from kagtools.core.data import CompetitionData
from kagtools.core.io import atomic_path
from kagtools.core.spec import CompetitionSpec

__all__ = ["EDAResult", "build_eda", "write_eda"]

MAX_FEATURE_CHARTS = 24


@dataclass
class EDAResult:
    summary: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, html)
    adversarial_auc: float | None = None


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _table(df: pd.DataFrame, max_rows: int = 60) -> str:
    return df.head(max_rows).to_html(classes="t", border=0, float_format=lambda v: f"{v:.4g}")


def _id_like(s: pd.Series) -> bool:
    """Nearly unique non-numeric values (names, ticket strings): no use as a category."""
    return not pd.api.types.is_numeric_dtype(s) and s.nunique(dropna=True) > 0.5 * max(len(s), 1)


def build_eda(spec: CompetitionSpec, data: CompetitionData, notes: Sequence[str] = ()) -> EDAResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, test = data.train, data.test
    res = EDAResult()
    feats = [c for c in train.columns if c != spec.id_col and c not in spec.target_cols]
    shown = feats[:MAX_FEATURE_CHARTS]
    target = spec.target_cols[0]

    shapes = f"train {train.shape[0]:,} x {train.shape[1]}"
    if test is not None:
        shapes += f", test {test.shape[0]:,} x {test.shape[1]}"
    res.summary.append(f"{spec.slug}: {shapes}; task {spec.task}, metric {spec.metric}")

    overview = pd.DataFrame({
        "dtype": train[feats].dtypes.astype(str),
        "missing_train_%": train[feats].isna().mean() * 100,
        "missing_test_%": (test.reindex(columns=feats).isna().mean() * 100) if test is not None else np.nan,
        "unique": train[feats].nunique(),
        "example": [train[c].dropna().iloc[0] if train[c].notna().any() else None for c in feats],
    })
    res.sections.append(("Shapes and columns", f"<p>{html.escape(shapes)}</p>" + _table(overview, 200)))

    missing = overview["missing_train_%"][overview["missing_train_%"] > 0].sort_values(ascending=False)
    if len(missing):
        fig, ax = plt.subplots(figsize=(7, 0.3 * min(len(missing), 30) + 1))
        missing.head(30)[::-1].plot.barh(ax=ax, color="#c44")
        ax.set_xlabel("% missing (train)")
        res.sections.append(("Missing values", _png(fig)))
        res.summary.append("missing: " + ", ".join(f"{c} {v:.0f}%" for c, v in missing.head(6).items()))

    y = train[target]
    if spec.is_classification:
        balance = y.value_counts(normalize=True).sort_index()
        fig, ax = plt.subplots(figsize=(5, 3))
        balance.head(40).plot.bar(ax=ax, color="#48c")
        ax.set_ylabel("share of rows")
        res.sections.append(("Target balance", _png(fig) + _table(balance.to_frame("share"))))
        res.summary.append("target: " + ", ".join(f"{k}={v:.1%}" for k, v in balance.head(5).items()))
    else:
        fig, ax = plt.subplots(figsize=(5, 3))
        y.astype(float).hist(ax=ax, bins=40, color="#48c")
        res.sections.append(("Target distribution", _png(fig) + _table(y.describe().to_frame())))
        res.summary.append(f"target: mean {y.mean():.4g}, std {y.std():.4g}")

    # Target rate per level (categoricals) and per quantile bin (numerics).
    y_num = pd.Series(pd.factorize(y, sort=True)[0] if spec.task == "multiclass" else y.astype(float),
                      index=y.index)
    if spec.task in ("binary", "regression"):
        charts = []
        for c in shown:
            s = train[c]
            if _id_like(s):
                continue
            if pd.api.types.is_numeric_dtype(s) and s.nunique() > 12:
                key = pd.qcut(s.rank(method="first"), q=min(8, s.nunique()), labels=False, duplicates="drop")
                grp = y_num.groupby(key).mean()
                lo = s.groupby(key).min()
                grp.index = [f"{v:.3g}+" for v in lo.reindex(grp.index)]
            else:
                top = s.astype("string").fillna("<NA>")
                keep = top.value_counts().index[:15]
                grp = y_num.groupby(top.where(top.isin(keep), "<other>")).mean()
            fig, ax = plt.subplots(figsize=(4, 2.6))
            grp.plot.bar(ax=ax, color="#6a4")
            ax.axhline(y_num.mean(), color="k", lw=0.8, ls="--")
            ax.set_title(f"{target} by {c}", fontsize=9)
            ax.tick_params(labelsize=7)
            charts.append(_png(fig))
        res.sections.append((f"{target} per feature level / binned numeric", "".join(charts)))

    num = train[[c for c in feats if pd.api.types.is_numeric_dtype(train[c])]]
    if num.shape[1] >= 2:
        corr = pd.concat([num, y_num.rename(target)], axis=1).corr(method="spearman")
        keep = [c for c in corr.columns if c != target][:29] + [target]  # the target stays in view
        corr = corr.loc[keep, keep]
        fig, ax = plt.subplots(figsize=(1 + 0.35 * len(corr), 0.8 + 0.35 * len(corr)))
        im = ax.imshow(corr.to_numpy(), cmap="coolwarm", vmin=-1, vmax=1)
        ax.set_xticks(range(len(corr)), corr.columns, rotation=90, fontsize=7)
        ax.set_yticks(range(len(corr)), corr.index, fontsize=7)
        fig.colorbar(im, ax=ax, shrink=0.7)
        with_target = corr[target].drop(target).abs().sort_values(ascending=False)
        res.sections.append(("Correlations (Spearman)", _png(fig)))
        res.summary.append("top |corr| with target: " + ", ".join(f"{c} {v:.2f}" for c, v in with_target.head(5).items()))

    dup_rows = int(train.drop(columns=[spec.id_col]).duplicated().sum())
    dup_feats = int(train[feats].duplicated().sum())
    res.sections.append(("Duplicates", f"<p>{dup_rows} duplicated training rows (all columns but the id); "
                                       f"{dup_feats} rows with duplicated features.</p>"))
    res.summary.append(f"duplicates: {dup_rows} rows, {dup_feats} feature rows")

    if test is not None:
        auc, imp = adversarial_auc(train, test, id_col=spec.id_col, target_cols=list(spec.target_cols),
                                   seed=spec.cv.seed)
        res.adversarial_auc = auc
        verdict = ("test looks like train" if auc < 0.6 else
                   "some drift: check the top features" if auc < 0.75 else "strong drift: CV may mislead")
        section = f"<p>LightGBM AUC at telling train from test: <b>{auc:.3f}</b> ({verdict}).</p>"
        if len(imp):  # empty when no column was left to tell them apart
            fig, ax = plt.subplots(figsize=(6, 0.3 * min(len(imp), 20) + 1))
            imp.head(20)[::-1].plot.barh(ax=ax, color="#a6c")
            ax.set_xlabel("share of gain")
            section += _png(fig)
        res.sections.append(("Train vs test drift (adversarial validation)", section))
        res.summary.append(f"adversarial AUC {auc:.3f} ({verdict}); top drivers: "
                           + ", ".join(imp.head(3).index))
    notes = list(notes)
    if notes:
        res.sections.append(("Competition notes", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                             + "</ul>"))
        res.summary.extend(notes)
    plt.close("all")
    return res


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table.t{border-collapse:collapse;font-size:12px}table.t td,table.t th{padding:2px 8px;"
        "border-bottom:1px solid #ddd}img{margin:4px}h2{border-bottom:2px solid #48c}")


def write_eda(spec: CompetitionSpec, data: CompetitionData, out_dir: Path,
              notes: Sequence[str] = ()) -> tuple[Path, EDAResult]:
    """Build the report and write ``<out_dir>/eda.html`` atomically; ``notes`` are the
    competition's own lines (a pipeline's ``eda_notes``)."""
    res = build_eda(spec, data, notes)
    body = "".join(f"<h2>{html.escape(t)}</h2>{h}" for t, h in res.sections)
    summary = "".join(f"<li>{html.escape(s)}</li>" for s in res.summary)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>EDA: {html.escape(spec.slug)}</title>"
            f"<style>{_CSS}</style></head><body><h1>EDA: {html.escape(spec.title or spec.slug)}</h1>"
            f"<ul>{summary}</ul><p>Model insights: <a href='explain.html'>explain.html</a> (written by "
            f"<code>kagtools explain {html.escape(spec.slug)}</code>)</p>{body}</body></html>")
    path = out_dir / "eda.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page)
    return path, res
