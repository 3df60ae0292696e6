"""EDA report: one self-contained HTML file with PNG charts embedded, plus a text summary.

Shapes, dtypes, missing and infinite values, cardinality, target balance, each feature's
association with the target (one measure for numeric and categorical features alike), the
target per feature level and per binned numeric (with each level's row count), rank
correlations, duplicates, and train-vs-test drift by adversarial validation (a LightGBM
classifier's AUC at telling train rows from test rows, and what drives it; the split
advisor's :func:`~kagtools.analysis.split_advisor.adversarial_auc` with the spec's seed, so
the report and ``kagtools folds --explain`` print the same figure).

Messy tables never crash it: any target (strings, bools, numbers, with missing values;
binary, multiclass or regression), tables of 0 to a few rows (sections that need rows say so),
constant or all-missing columns, infinities (counted, then treated as missing), unhashable
values (read as text) and hundreds of columns (what is drawn is capped).
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
from kagtools.core.io import write_text
from kagtools.core.spec import CompetitionSpec

__all__ = ["EDAResult", "build_eda", "write_eda", "association", "MIN_ROWS", "SMALL_LEVEL"]

MAX_FEATURE_CHARTS = 24  # per-level charts, for the features most associated with the target
MAX_LEVELS = 12  # distinct values shown as levels; beyond them, categories pool as "<other>"
N_BINS = 10  # numbers with more distinct values than MAX_LEVELS: quantile bins
MAX_CLASSES = 8  # classes drawn per level (multiclass); the rest pool as "<other>"
MAX_HEATMAP, ANNOTATE_HEATMAP = 30, 15  # features in the correlation heatmap; numbers in cells up to this
MIN_ROWS = 10  # training rows with a target needed for the association, per-level and correlation sections
SMALL_LEVEL = 10  # levels with fewer rows are drawn pale: their rate is mostly noise
DPI = 100  # charts: 1 inch = 100 px, so 8-point text is 11 px, readable at 100% zoom
NA, OTHER = "<NA>", "<other>"


@dataclass
class EDAResult:
    summary: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, html)
    adversarial_auc: float | None = None  # None: not measured (no test, too few rows, no shared column)
    association: pd.DataFrame | None = None  # feature -> association with the target, strongest first
    levels: dict[str, pd.DataFrame] = field(default_factory=dict)  # feature -> per-level target stats and "n"


def _png(fig) -> str:
    """The figure as an embedded PNG; its axes' titles become the image's alt text."""
    import matplotlib.pyplot as plt

    alt = html.escape("; ".join(ax.get_title().replace("\n", " ") for ax in fig.axes if ax.get_title()), quote=True)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}" alt="{alt}"/>'


def _table(df: pd.DataFrame, max_rows: int = 60) -> str:
    return df.head(max_rows).to_html(classes="t", border=0, float_format=lambda v: f"{v:.4g}")


def _id_like(s: pd.Series) -> bool:
    """Nearly unique non-numeric values (names, ticket strings): no use as a category."""
    return not pd.api.types.is_numeric_dtype(s) and s.nunique(dropna=True) > 0.5 * max(len(s), 1)


def _clean(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """A copy safe to count, group and plot, and each column's count of infinities: infinities
    become missing, and columns holding unhashable values (lists, dicts) are read as text."""
    out, infs = df.copy(), {}
    for i, c in enumerate(df.columns):
        s = df.iloc[:, i]
        if pd.api.types.is_float_dtype(s):
            inf = np.isinf(s.to_numpy(dtype=float, na_value=np.nan))
            if inf.any():
                infs[c] = int(inf.sum())
                out.iloc[:, i] = s.mask(inf)
        elif s.dtype == object:
            try:
                s.nunique()
            except TypeError:
                out[c] = s.astype(str).where(s.notna())
    return out, pd.Series(infs, dtype=int)


def _label(v) -> str:
    return f"{v:.6g}" if isinstance(v, (float, np.floating)) else str(v)


def _levels(s: pd.Series) -> pd.Categorical:
    """Each row's level for per-level statistics: numbers with more than ``MAX_LEVELS`` distinct
    values fall in up to ``N_BINS`` quantile bins (named by their lowest value, in order); other
    values are levels of their own (numbers in order, categories by frequency, all but the
    ``MAX_LEVELS`` most frequent pooled as ``<other>``); missing is the level ``<NA>``."""
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    if numeric and s.nunique() > MAX_LEVELS:
        x = s.astype(float)
        codes = pd.qcut(x, N_BINS, labels=False, duplicates="drop")
        lo = x.groupby(codes).min()
        order = [f"{v:.4g}+" for v in lo]
        if len(set(order)) < len(order):
            order = [f"{v!r}+" for v in lo]
        lab = codes.map(dict(zip(lo.index, order, strict=True)))
    elif numeric or pd.api.types.is_bool_dtype(s):
        values = sorted(s.dropna().unique())
        order = [_label(v) for v in values]
        if len(set(order)) < len(order):
            order = [repr(v) for v in values]
        lab = s.map(dict(zip(values, order, strict=True)))
    else:
        text = s.astype(str).where(s.notna())
        order = list(text.value_counts().index[:MAX_LEVELS])
        lab = text.where(text.isin(order) | text.isna(), OTHER)
        if (lab == OTHER).any():
            order.append(OTHER)
    lab = lab.astype(object).where(lab.notna(), NA)
    if (lab == NA).any():
        order = [*order, NA]
    return pd.Categorical(lab, categories=order)


def _cramers_v(x: np.ndarray, y: np.ndarray) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013) of two code arrays: 0 (independent) to 1."""
    n = len(x)
    table = np.bincount(x * (y.max() + 1) + y, minlength=(x.max() + 1) * (y.max() + 1)).reshape(x.max() + 1, -1)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    r, k = table.shape
    if r < 2 or k < 2 or n < 3:
        return 0.0
    expected = np.outer(table.sum(1), table.sum(0)) / n
    phi2 = float(((table - expected) ** 2 / expected).sum()) / n
    phi2 = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    d = min(rc - 1, kc - 1)
    return float(np.sqrt(min(1.0, phi2 / d))) if d > 0 else 0.0


def _eta(x: np.ndarray, y: np.ndarray) -> float:
    """Adjusted correlation ratio η of codes ``x`` and numbers ``y`` (the square root of a
    one-way ANOVA's adjusted R²): 0 (level says nothing) to 1 (level fixes the value)."""
    n, r = len(y), len(np.unique(x))
    total = float(((y - y.mean()) ** 2).sum())
    if r < 2 or n <= r or total <= 0:
        return 0.0
    counts = np.bincount(x)
    sums = np.bincount(x, weights=y)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    within = float(((y - means[x]) ** 2).sum())
    adj = 1 - (within / total) * (n - 1) / (n - r)
    return float(np.sqrt(max(0.0, adj)))


def association(X: pd.DataFrame, y: pd.Series, *, classes: bool) -> pd.DataFrame:
    """Each column's association with the target ``y`` on one 0-1 scale, strongest first.

    Every column is cut into levels (:func:`_levels`: numbers in quantile bins, categories
    by value, missing as a level), so numeric and categorical features are ranked by the same
    measure: for classes, the bias-corrected Cramér's V of level and class (class-aware: no
    order is assumed between labels); for a numeric target, the adjusted correlation ratio η.
    Rows where ``y`` is missing are left out.
    """
    known = y.notna().to_numpy()
    y = y[known]
    yv = pd.factorize(y)[0] if classes else y.to_numpy(dtype=float)
    rows = []
    for i, c in enumerate(X.columns):
        s = X.iloc[known, i]
        lev = _levels(s)
        codes = np.asarray(lev.codes)
        value = _cramers_v(codes, yv) if classes else _eta(codes, yv)
        kind = ("numeric" if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                else "categorical")
        rows.append({"feature": c, "association": value, "kind": kind, "levels": len(lev.categories)})
    out = pd.DataFrame(rows, columns=["feature", "association", "kind", "levels"])
    return out.sort_values("association", ascending=False, kind="stable").set_index("feature")


def _level_ticks(ax, index) -> None:
    """Level names under the bars: level, or slanted when they are many or long (cut to 16 characters)."""
    names = [str(i) if len(str(i)) <= 16 else str(i)[:15] + "…" for i in index]
    flat = len(names) <= 6 and max((len(n) for n in names), default=0) * len(names) <= 36
    ax.set_xticks(range(len(names)), names, rotation=0 if flat else 45, ha="center" if flat else "right",
                  rotation_mode="anchor", fontsize=8)


def _share_axis(ax, top: float) -> None:
    """A 0-1 share axis with room above 1 for the row counts, and no tick above 1 (a share never is)."""
    ax.set_ylim(0, top)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])


def _level_chart(plt, stats: pd.DataFrame, value_col: str, overall: float, title: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(3.7, 3.0))
    small = stats["n"] < SMALL_LEVEL
    values = stats[value_col].fillna(0)
    bars = ax.bar(range(len(stats)), values, color=np.where(small, "#cde3c4", "#6a4"), edgecolor="#6a4")
    many = len(stats) > 5
    for label in ax.bar_label(bars, labels=[f"n={n}" for n in stats["n"]], fontsize=7, rotation=90 if many else 0,
                              padding=2, color="#333"):
        label.set_bbox({"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.3})  # legible on the line
    ax.axhline(overall, color="k", lw=0.8, ls="--")
    _level_ticks(ax, stats.index)
    ax.set_ylabel(ylabel, fontsize=8)
    if ylabel.startswith("share") and values.between(0, 1).all():
        _share_axis(ax, 1.3 if many else 1.15)  # every feature on the same scale: bars compare across charts
    else:
        ax.margins(y=0.3 if many else 0.15)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    return _png(fig)


def _class_chart(plt, stats: pd.DataFrame, classes: list[str], title: str):
    fig, ax = plt.subplots(figsize=(3.7, 3.0))
    bottom = np.zeros(len(stats))
    cmap = plt.get_cmap("tab10")
    for j, k in enumerate(classes):
        bars = ax.bar(range(len(stats)), stats[k], bottom=bottom, color=cmap(j % 10), label=str(k))
        for bar, n in zip(bars, stats["n"], strict=True):
            if n < SMALL_LEVEL:
                bar.set_alpha(0.35)
        bottom += stats[k].to_numpy()
    for i, n in enumerate(stats["n"]):
        ax.text(i, 1.02, f"n={n}" + ("*" if n < SMALL_LEVEL else ""), ha="center", va="bottom", fontsize=7,
                rotation=90 if len(stats) > 5 else 0, color="#333")
    _share_axis(ax, 1.3)
    _level_ticks(ax, stats.index)
    ax.set_ylabel("share of rows", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="class", title_fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    return _png(fig)


def build_eda(spec: CompetitionSpec, data: CompetitionData, notes: Sequence[str] = ()) -> EDAResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, infs = _clean(data.train)
    test = None if data.test is None else _clean(data.test)[0]
    res = EDAResult()
    feats = [c for c in train.columns if c != spec.id_col and c not in spec.target_cols]
    n = len(train)

    shapes = f"train {n:,} x {train.shape[1]}" + ("" if test is None else f", test {len(test):,} x {test.shape[1]}")
    res.summary.append(f"{spec.slug}: {shapes}; task {spec.task}, metric {spec.metric}")

    overview = pd.DataFrame({
        "dtype": [str(train[c].dtype) for c in feats],
        "missing_train_%": [train[c].isna().mean() * 100 if n else np.nan for c in feats],
        "missing_test_%": [test[c].isna().mean() * 100 if test is not None and c in test and len(test) else np.nan
                           for c in feats],
        "infinite": [int(infs.get(c, 0)) for c in feats],
        "unique": [train[c].nunique() for c in feats],
        "example": [train[c].dropna().iloc[0] if train[c].notna().any() else None for c in feats],
    }, index=pd.Index(feats, dtype=object))
    cap = "" if len(feats) <= 200 else f"<p>first 200 of {len(feats)} columns</p>"
    res.sections.append(("Shapes and columns", f"<p>{html.escape(shapes)}</p>" + cap + _table(overview, 200)))
    if spec.id_col in train.columns and n:
        ids = train[spec.id_col]
        dup, miss = int(ids.duplicated().sum()), int(ids.isna().sum())
        if dup or miss:
            res.summary.append(f"id '{spec.id_col}': {dup} duplicated, {miss} missing")
    elif spec.id_col not in train.columns:
        res.summary.append(f"id '{spec.id_col}' is not a column of train")
    if len(infs):
        res.summary.append("infinite values (read as missing): " + ", ".join(f"{c} {k}" for c, k in infs.items()))

    missing = overview["missing_train_%"][overview["missing_train_%"] > 0].sort_values(ascending=False)
    if len(missing):
        fig, ax = plt.subplots(figsize=(7, 0.3 * min(len(missing), 30) + 1))
        missing.head(30)[::-1].plot.barh(ax=ax, color="#c44")
        ax.set_xlabel("% missing (train)")
        ax.set_title("Missing values per column (train)" + (f", top 30 of {len(missing)}" if len(missing) > 30 else ""))
        res.sections.append(("Missing values", f"<p>Share of training rows where each column is empty; "
                             f"{len(feats) - len(missing)} of {len(feats)} columns have none and are not "
                             f"drawn.</p>" + _png(fig)))
        res.summary.append("missing: " + ", ".join(f"{c} {v:.0f}%" for c, v in missing.head(6).items()))

    _target_sections(spec, train, feats, res, plt)
    _duplicates(spec, train, feats, res)

    if test is not None:
        auc, imp = adversarial_auc(train, test, id_col=spec.id_col, target_cols=list(spec.target_cols),
                                   seed=spec.cv.seed)
        if len(imp):  # empty when too few rows or no shared column: nothing was measured
            res.adversarial_auc = auc
            verdict = ("test looks like train" if auc < 0.6 else
                       "some drift: check the top features" if auc < 0.75 else "strong drift: CV may mislead")
            fig, ax = plt.subplots(figsize=(6, 0.3 * min(len(imp), 20) + 1))
            imp.head(20)[::-1].plot.barh(ax=ax, color="#a6c")
            ax.set_xlabel("share of the classifier's gain")
            ax.set_title("What tells test rows from train rows")
            section = (f"<p>LightGBM AUC at telling train from test: <b>{auc:.3f}</b> ({verdict}). A classifier "
                       f"is trained to tell test rows from train rows: an AUC near 0.5 means it cannot, so "
                       f"validation scores carry over to the test set. The bars are the columns it leans on "
                       f"most: the first to check when the AUC is high.</p>" + _png(fig))
            res.summary.append(f"adversarial AUC {auc:.3f} ({verdict}); top drivers: "
                               + ", ".join(map(str, imp.head(3).index)))
        else:
            section = "<p>Not measured: train or test has fewer than 10 rows, or they share no usable column.</p>"
            res.summary.append("adversarial AUC: not measured (too few rows or no shared column)")
        res.sections.append(("Train vs test drift (adversarial validation)", section))
    notes = list(notes)
    if notes:
        res.sections.append(("Competition notes", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                             + "</ul>"))
        res.summary.extend(notes)
    plt.close("all")
    return res


def _duplicates(spec: CompetitionSpec, train: pd.DataFrame, feats: list[str], res: EDAResult) -> None:
    rest = train.drop(columns=[spec.id_col], errors="ignore")
    dup_rows = int(rest.duplicated().sum()) if rest.shape[1] and len(rest) else 0
    dup_feats = int(train[feats].duplicated().sum()) if feats and len(train) else 0
    res.sections.append(("Duplicates", f"<p>{dup_rows} duplicated training rows (all columns but the id); "
                                       f"{dup_feats} rows with duplicated features.</p>"))
    res.summary.append(f"duplicates: {dup_rows} rows, {dup_feats} feature rows")


def _target_sections(spec: CompetitionSpec, train: pd.DataFrame, feats: list[str], res: EDAResult, plt) -> None:
    """Target balance, association ranking, target per level and the correlation heatmap."""
    target = spec.target_cols[0]
    if target not in train.columns:
        res.summary.append(f"target '{target}' is not a column of train: no target sections")
        return
    y = train[target].dropna()
    unknown = len(train) - len(y)
    classes = spec.task != "regression" and spec.task != "multitarget"
    if not classes:
        values = pd.to_numeric(y, errors="coerce")
        if len(y) and values.isna().all():  # a regression spec over labels: show them as classes
            classes = True
        else:
            y = values.replace([np.inf, -np.inf], np.nan).dropna()
    note = f" ({unknown} rows without a target, left out)" if unknown else ""

    if not len(y):
        res.summary.append(f"target: no known values in {len(train)} rows")
        res.sections.append(("Target", f"<p>'{html.escape(str(target))}' has no known value in train.</p>"))
        return
    if classes:
        counts = y.value_counts()
        try:
            counts = counts.sort_index()
        except TypeError:  # mixed label types (1 and "a") do not order: order them as text
            counts = counts.sort_index(key=lambda idx: idx.map(str))
        balance = counts / counts.sum()
        fig, ax = plt.subplots(figsize=(5, 3))
        balance.head(40).plot.bar(ax=ax, color="#48c")
        _level_ticks(ax, balance.head(40).index)
        ax.set_ylabel("share of rows")
        ax.set_title(f"{target}: share of each class" + (f", first 40 of {len(balance)}" if len(balance) > 40 else ""))
        res.sections.append(("Target balance", _png(fig) + _table(pd.DataFrame({"rows": counts, "share": balance}))))
        res.summary.append("target: " + ", ".join(f"{k}={v:.1%}" for k, v in balance.head(5).items())
                           + (f" (+{len(balance) - 5} classes)" if len(balance) > 5 else "") + note)
    else:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(y, bins=min(40, max(1, y.nunique())), color="#48c")
        ax.set_xlabel(str(target))
        ax.set_ylabel("training rows")
        ax.set_title(f"{target}: distribution")
        res.sections.append(("Target distribution", _png(fig) + _table(y.describe().to_frame())))
        res.summary.append(f"target: mean {y.mean():.4g}, std {y.std():.4g}{note}")

    n_classes = y.nunique()
    if len(y) < MIN_ROWS or n_classes < 2:
        why = (f"{len(y)} training rows with a target: too few" if len(y) < MIN_ROWS
               else f"the target is constant ({_label(y.iloc[0])})")
        res.sections.append(("Target by feature", f"<p>{html.escape(why)} for the association ranking, the "
                                                  f"per-level charts and the correlations.</p>"))
        res.summary.append(f"association with target: not computed ({why})")
        return
    X = train.loc[y.index, feats]
    res.association = assoc = association(X, y, classes=classes)
    measure = ("bias-corrected Cramér's V" if classes else "adjusted correlation ratio η")
    how = (f"{measure} of each feature with the target (0: unrelated, 1: determines it); numbers are cut into "
           f"{N_BINS} quantile bins, categories beyond the {MAX_LEVELS} most frequent pooled, missing is a level"
           + ("; class-aware: no order between labels is assumed" if classes else ""))
    if len(assoc):
        top = assoc.head(20)
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1))
        ax.barh([str(i) for i in top.index[::-1]], top["association"][::-1], color="#48c")
        ax.set_xlim(0, 1)
        ax.set_xlabel(measure)
        ax.set_title(f"Association with {target} ({measure})")
        res.sections.append(("Association with the target", f"<p>{html.escape(how, quote=False)}.</p>" + _png(fig)
                             + _table(assoc.rename(columns={"association": measure}))))
        res.summary.append(f"association with target ({measure}): "
                           + ", ".join(f"{c} {v:.2f}" for c, v in assoc["association"].head(5).items()))

    # Target per level: rate of the positive class, class shares, or the mean, with row counts.
    ranked = [c for c in assoc.index if c in X.columns]
    drawable = [c for c in ranked if not _id_like(X[c])]
    shown = drawable[:MAX_FEATURE_CHARTS]
    charts, yv = [], None
    if classes and n_classes == 2:
        pos = list(counts.index)[-1]
        yv, what, ylabel = (y == pos).astype(float), f"share of {target}={_label(pos)}", f"share {target}={_label(pos)}"
    elif not classes:
        yv, what, ylabel = y.astype(float), f"mean {target}", f"mean {target}"
    for c in shown:
        lev = pd.Series(_levels(X[c]), index=y.index)
        if classes and n_classes > 2:
            top_classes = list(y.value_counts().index[:MAX_CLASSES])
            yk = y.where(y.isin(top_classes), OTHER).map(_label)
            stats = pd.crosstab(lev, yk, normalize="index", dropna=False)
            cols = [_label(k) for k in top_classes] + ([OTHER] if (yk == OTHER).any() else [])
            stats = stats.reindex(columns=cols, fill_value=0.0)
            stats["n"] = lev.value_counts().reindex(stats.index).astype(int)
            stats = stats[stats["n"] > 0]
            charts.append(_class_chart(plt, stats, cols, f"{target} classes by {c}"))
        else:
            grp = yv.groupby(lev, observed=True)
            stats = pd.DataFrame({"value": grp.mean(), "n": grp.size().astype(int)})
            stats.index = stats.index.astype(str)
            charts.append(_level_chart(plt, stats, "value", float(yv.mean()), f"{what} by {c}", ylabel))
            stats = stats.rename(columns={"value": what})
        res.levels[c] = stats
    if charts:
        scope = (f"the {len(shown)} features most associated with the target" if len(drawable) > len(shown)
                 else "each feature")
        what_is = ("each class's share of the level's rows (* and pale bars: fewer than "
                   f"{SMALL_LEVEL} rows)" if classes and n_classes > 2 else
                   f"{what} in the level (dashed: overall; pale bars: fewer than {SMALL_LEVEL} rows)")
        head = (f"<p>For {scope}: {html.escape(what_is, quote=False)}; n = the level's rows. Numbers are cut into "
                f"{N_BINS} quantile bins named by their lowest value.</p>")
        res.sections.append((f"{target} per feature level / binned numeric", head + "".join(charts)))

    _heatmap(spec, X, ranked, res, plt, yv)  # yv: None for a multiclass label (its codes have no order)


def _heatmap(spec: CompetitionSpec, X: pd.DataFrame, ranked: list, res: EDAResult, plt,
             yv: pd.Series | None) -> None:
    """Spearman correlations between the numeric features most associated with the target
    (and the target itself when it is a number or a 0/1 class; never a multiclass label's codes)."""
    target = spec.target_cols[0]
    num = [c for c in ranked if pd.api.types.is_numeric_dtype(X[c])][:MAX_HEATMAP - 1]
    if len(num) < 2:
        return
    frame = X[num].astype(float)
    if yv is not None:
        frame = pd.concat([frame, yv.rename(target)], axis=1)
    corr = frame.corr(method="spearman")
    k = len(corr)
    cell = min(0.6, 8.5 / k)  # inches per cell: numbers readable, the whole map within the page
    fig, ax = plt.subplots(figsize=(2.8 + cell * k, 1.8 + cell * k))
    im = ax.imshow(corr.to_numpy(), cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_xticks(range(k), [str(c) for c in corr.columns], rotation=45, ha="right", rotation_mode="anchor",
                  fontsize=8)
    ax.set_yticks(range(k), [str(c) for c in corr.index], fontsize=8)
    if k <= ANNOTATE_HEATMAP:
        for i in range(k):
            for j in range(k):
                v = corr.iat[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if abs(v) > 0.6 else "black")
    title = "Spearman rank correlation between numeric features" + (f" and {target}" if target in corr.columns else "")
    ax.set_title(title.replace(" between", "\nbetween"), fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.7, label="Spearman rho")
    scope = ("<p>Rank correlation of each pair (-1: one falls as the other rises, 0: unrelated, 1: they rise "
             "together); pairs near +-1 carry the same information."
             + (f" The {len(num)} numeric features most associated with the target." if len(num) == MAX_HEATMAP - 1
                else "") + "</p>")
    res.sections.append((title, scope + _png(fig)))


_CSS = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;line-height:1.4}"
        "table.t{border-collapse:collapse;font-size:13px;margin:8px 0}table.t td,table.t th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:left}"
        "img{margin:4px;max-width:100%;height:auto;vertical-align:top}h2{border-bottom:2px solid #48c;"
        "margin-top:1.6em}p{max-width:75em}")


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
    return write_text(out_dir / "eda.html", page), res
