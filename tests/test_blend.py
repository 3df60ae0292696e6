"""Blends: every method on synthetic runs whose right answer is known, nested scoring,
thresholds, refusals; the ``blend`` and ``boost`` verbs end to end on Titanic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, softmax

from kagtools.core.engine import encode_target
from kagtools.core.metrics import get_metric
from kagtools.core.runs import load_run, write_run
from kagtools.core.spec import CompetitionSpec
from kagtools.ensemble import batch_score, best_threshold, load_level1, make_blender
from kagtools.ensemble.blend import AUTO_METHODS, METHODS, auto_blend, blend, check_compatible
from kagtools.errors import KagtoolsError
from tests.conftest import make_record

N, N_TEST, FOLDS, REPEATS = 600, 50, 5, 2
METRIC = {"binary": "log_loss", "multiclass": "log_loss", "regression": "rmse"}


def _spec(task: str, metric: str | None = None) -> CompetitionSpec:
    return CompetitionSpec(slug="syn", task=task, id_col="id", target_cols=("y",), metric=metric or METRIC[task],
                           submission_kind="probabilities")


def _problem(task: str, seed: int = 0, n: int = N):
    """A target and two kinds of level-1 predictions: informative and pure noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n + N_TEST, 3))
    if task == "binary":
        y = (rng.uniform(size=n + N_TEST) < expit(3 * z[:, 0])).astype(int)
        good = lambda r: expit(3 * z[:, 0] + r.normal(0, 0.3, len(z)))[:, None]  # noqa: E731
        noise = lambda r: r.uniform(0.05, 0.95, (len(z), 1))  # noqa: E731
    elif task == "multiclass":
        logits = 2.5 * z
        y = np.array([rng.choice(3, p=p) for p in softmax(logits, axis=1)])
        good = lambda r: softmax(logits + r.normal(0, 0.3, logits.shape), axis=1)  # noqa: E731
        noise = lambda r: softmax(r.normal(0, 1, logits.shape), axis=1)  # noqa: E731
    else:
        y = 20 + 2 * z[:, 0] + rng.normal(0, 0.5, n + N_TEST)
        good = lambda r: (20 + 2 * z[:, 0] + r.normal(0, 0.3, len(z)))[:, None]  # noqa: E731
        noise = lambda r: (20 + r.normal(0, 2, len(z)))[:, None]  # noqa: E731
    return y[:n], {"good": good, "noise": noise}


def _write_runs(root, task, makers: dict, *, seed=0, folds_hash="abc", n: int = N, cv_scheme=None):
    """Runs on disk in the CV loop's layout; returns (runs, y, ids)."""
    y, kinds = _problem(task, seed, n)
    ids = pd.Series(np.arange(n) + 1000)
    cols = ["pred_0", "pred_1", "pred_2"] if task == "multiclass" else ["pred"]
    classes = [0, 1, 2] if task == "multiclass" else ([0, 1] if task == "binary" else None)
    rng = np.random.default_rng(seed + 1)
    folds = [rng.permutation(np.arange(n) % FOLDS) for _ in range(REPEATS)]
    runs = []
    for j, (name, kind) in enumerate(makers.items()):
        parts = []
        for r in range(REPEATS):
            pred = kinds[kind](np.random.default_rng(100 * j + r))
            part = pd.DataFrame(pred[:n], columns=cols)
            part.insert(0, "fold", folds[r])
            part.insert(0, "repeat", r)
            part.insert(0, "id", ids.to_numpy())
            parts.append(part.sort_values(["fold"], kind="stable"))
        test = pd.DataFrame(kinds[kind](np.random.default_rng(999 + j))[n:], columns=cols)
        test.insert(0, "id", np.arange(N_TEST))
        meta = {"slug": "syn", "kind": "cv", "model": name, "task": task, "classes": classes, "pred_cols": cols,
                "folds_hash": folds_hash, "cv_scheme": cv_scheme, "scores": {"cv": 0.0}}
        runs.append(write_run(root, make_record(name, **meta), oof=pd.concat(parts, ignore_index=True), test=test))
    return runs, pd.Series(y), ids


def _level1_y(runs, y, ids, spec):
    level1 = load_level1(runs)
    pos = pd.Index(ids).get_indexer(level1.keys["id"])
    y_enc, _ = encode_target(spec, y)
    return level1, y_enc[pos]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("method", ["hill_climb", "optimize", "stack_linear", "stack_lgbm"])
def test_weight_goes_to_the_informative_run(tmp_path, task, method):
    runs, y, ids = _write_runs(tmp_path, task, {"noise_a": "noise", "good": "good", "noise_b": "noise"})
    spec = _spec(task)
    level1, y_enc = _level1_y(runs, y, ids, spec)
    b = make_blender(method, task=task, metric=spec.metric).fit(level1.P, y_enc)
    assert b.weights_.sum() == pytest.approx(1.0)
    assert b.weights_[1] > (0.9 if method in ("hill_climb", "optimize") else 0.6), b.weights_


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_method_writes_a_scored_run(tmp_path, task):
    runs, y, ids = _write_runs(tmp_path, task, {"good": "good", "good2": "good", "noise": "noise"})
    spec = _spec(task)
    X = pd.DataFrame({"x": np.random.default_rng(0).normal(size=N), "c": pd.Categorical(["a", "b"] * (N // 2))})
    from kagtools.core.engine import TrainingSet

    tset = TrainingSet(X=X, y=y, ids=ids, X_test=X.iloc[:N_TEST].reset_index(drop=True),
                       test_ids=pd.Series(np.arange(N_TEST)), name="syn")
    metric = get_metric(spec.metric)
    blends = auto_blend(spec, runs, y, ids, root=tmp_path, features=tset, reports=tmp_path / "reports")
    methods = [b.record.method for b in blends]
    assert methods == [*AUTO_METHODS, "stack_lgbm_features"]
    for b in blends:
        again = load_run(tmp_path, b.run_id)
        s = again.record.scores
        assert set(s) >= {"cv", "nested", "in_sample", "folds", "repeats"} and len(s["repeats"]) == REPEATS
        assert again.oof.shape == (N * REPEATS, 3 + len(runs[0].pred_cols)) and not again.oof.isna().any().any()
        assert again.test.shape == (N_TEST, 1 + len(runs[0].pred_cols))
        if task == "multiclass":
            np.testing.assert_allclose(again.test[again.pred_cols].sum(axis=1), 1.0, atol=1e-6)
        # A blend of two informative runs and a noisy one beats the noise by far.
        assert metric.better(s["nested"], float(batch_score(spec.metric, *_noise_args(runs, y, ids, spec))[0]))
    assert (tmp_path / "reports" / "blend.png").stat().st_size > 10_000


def _noise_args(runs, y, ids, spec):
    level1, y_enc = _level1_y(runs[2:], y, ids, spec)
    rows = level1.keys["repeat"].to_numpy() == 0
    return y_enc[rows], level1.P[:, rows]


def test_nested_score_is_honest_on_a_small_noisy_problem(tmp_path):
    # 10 pure-noise runs on 150 rows: a flexible level 2 fits noise in sample, not out of fold.
    makers = {f"noise{i}": "noise" for i in range(10)}
    runs, y, ids = _write_runs(tmp_path, "binary", makers, n=150)
    spec = _spec("binary", "roc_auc")
    for method in ("stack_lgbm", "hill_climb"):
        s = blend(spec, runs, y, ids, root=tmp_path, method=method).record.scores
        assert s["in_sample"] > s["nested"] + 0.05, (method, s["in_sample"], s["nested"])
        assert s["nested"] < 0.62


def test_time_ordered_folds_blend_walking_forward(tmp_path):
    # TimeSeriesSplit folds: each fold's blender sees only earlier folds, the first gets the mean.
    runs, y, ids = _write_runs(tmp_path, "regression", {"good": "good", "noise": "noise"},
                               cv_scheme={"splitter": "TimeSeriesSplit", "n_splits": FOLDS})
    spec = _spec("regression")
    level1, y_enc = _level1_y(runs, y, ids, spec)
    oof = blend(spec, runs, y, ids, root=tmp_path, method="optimize").oof
    keys, P = level1.keys, level1.P
    for r in level1.repeats():
        for f in range(FOLDS):
            va = ((keys["repeat"] == r) & (keys["fold"] == f)).to_numpy()
            tr = ((keys["repeat"] == r) & (keys["fold"] < f)).to_numpy()
            want = (P[:, va].mean(axis=0) if f == 0 else
                    make_blender("optimize", task="regression", metric="rmse").fit(P[:, tr], y_enc[tr]).predict(P[:, va]))
            got = oof.loc[va, oof.columns[-1]].to_numpy()
            np.testing.assert_allclose(got, want[:, 0], rtol=1e-9)
    # Shuffled folds fit on every other fold, later ones included: the predictions differ.
    plain = _write_runs(tmp_path / "plain", "regression", {"good": "good", "noise": "noise"})[0]
    again = blend(spec, plain, y, ids, root=tmp_path / "plain", method="optimize").oof
    assert not np.allclose(again[again.columns[-1]], oof[oof.columns[-1]])


def test_mean_blend_in_sample_equals_nested(tmp_path):
    runs, y, ids = _write_runs(tmp_path, "regression", {"a": "good", "b": "good"})
    s = blend(_spec("regression"), runs, y, ids, root=tmp_path, method="mean").record.scores
    assert s["nested"] == pytest.approx(s["in_sample"])
    level1, _ = _level1_y(runs, y, ids, _spec("regression"))
    np.testing.assert_allclose(load_run(tmp_path, _blend_id(tmp_path)).oof["pred"], level1.P.mean(axis=0)[:, 0])


def _blend_id(root):
    return next(p.name for p in root.iterdir() if p.name.startswith("blend-mean"))


def test_runs_on_other_folds_are_refused(tmp_path):
    a, y, ids = _write_runs(tmp_path / "a", "binary", {"a": "good", "b": "good"}, folds_hash="one")
    b, _, _ = _write_runs(tmp_path / "b", "binary", {"c": "good"}, folds_hash="two")
    with pytest.raises(KagtoolsError, match="different folds"):
        check_compatible([a[0], b[0]])
    with pytest.raises(KagtoolsError, match="at least two runs"):
        blend(_spec("binary"), a[:1], y, ids, root=tmp_path, method="mean")


def test_geo_mean_refuses_non_positive_regression(tmp_path):
    runs, y, ids = _write_runs(tmp_path, "regression", {"a": "good", "b": "noise"})
    runs[1].oof.loc[0, "pred"] = -1.0
    with pytest.raises(KagtoolsError, match="positive"):
        blend(_spec("regression"), runs, y, ids, root=tmp_path, method="geo_mean")


@pytest.mark.parametrize("name", ["accuracy", "log_loss", "roc_auc", "f1", "rmse", "mae", "r2"])
def test_batch_score_matches_the_metric(name):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300) if name not in ("rmse", "mae", "r2") else rng.normal(size=300)
    C = rng.uniform(size=(4, 300, 1))
    metric = get_metric(name)
    np.testing.assert_allclose(batch_score(name, y, C), [metric(y, c[:, 0]) for c in C], rtol=1e-10)


def test_batch_score_multiclass_matches_the_metric():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 200)
    C = softmax(rng.normal(size=(3, 200, 3)), axis=2)
    for name in ("accuracy", "log_loss"):
        np.testing.assert_allclose(batch_score(name, y, C), [get_metric(name)(y, c) for c in C], rtol=1e-10)


def test_best_threshold_finds_the_known_cut():
    p = np.random.default_rng(4).uniform(size=500)
    assert best_threshold("accuracy", (p > 0.3).astype(int), p) == pytest.approx(0.3, abs=0.011)
    assert best_threshold("accuracy", (p > 0.5).astype(int), p) == 0.5


def test_threshold_is_chosen_within_folds_and_stored(tmp_path):
    # Probabilities shrunk towards 0 and scored by F1: the best threshold is well below 0.5.
    runs, _, ids = _write_runs(tmp_path, "binary", {"a": "good", "b": "good"})
    shrunk = []
    for r in runs:  # probabilities that are too low: F1 wants a threshold under 0.5
        r.oof["pred"] = r.oof["pred"] * 0.3
        shrunk.append(r)
    _, y_true, _ = _write_runs(tmp_path / "y", "binary", {"a": "good"})
    b = blend(_spec("binary", "f1"), shrunk, y_true, ids, root=tmp_path, method="mean", threshold=True)
    s = b.record.scores
    assert b.record.threshold < 0.4
    assert s["nested_threshold_tuned"] > s["nested_threshold_0.5"] + 0.05
    auto = blend(_spec("binary", "f1"), shrunk, y_true, ids, root=tmp_path, method="mean")
    assert auto.record.threshold == b.record.threshold  # kept: the nested score says it helps


def test_unknown_method_is_refused():
    with pytest.raises(KagtoolsError, match="unknown blend method"):
        make_blender("median", task="binary", metric="accuracy")
    assert set(AUTO_METHODS) < set(METHODS)


@pytest.mark.slow
def test_blend_and_boost_verbs_on_titanic(tmp_path, mirror, monkeypatch, capsys):
    from kagtools.cli.main import main

    monkeypatch.setenv("KAGTOOLS_QUIET", "1")
    w = ["--workdir", str(tmp_path)]
    assert main(["cv", "titanic", "--model", "logreg", "--params", '{"C": 0.3}', "--n-jobs", "1", *w]) == 0
    assert main(["cv", "titanic", "--model", "lgbm", "--n-jobs", "1", *w, "--params",
                 '{"n_estimators": 60, "num_leaves": 8, "learning_rate": 0.05}']) == 0
    assert main(["blend", "titanic", "--top", "2", "--method", "hill_climb", "stack_lgbm_features", *w]) == 0
    out = capsys.readouterr().out
    assert "blend:hill_climb" in out and "in-sample" in out and "best by nested OOF score" in out
    assert (tmp_path / "reports" / "titanic" / "blend.png").is_file()
    from kagtools.workflow.context import open_context

    ctx = open_context("titanic", workdir=tmp_path)
    blends = [r for r in ctx.runs() if r.record.kind == "blend"]
    assert len(blends) == 2 and all(0.75 < r.score < 0.9 for r in blends)
    base = next(r for r in ctx.runs() if r.record.model == "logreg")
    assert main(["boost", "titanic", "--base", base.run_id, "--n-jobs", "1", *w, "--params",
                 '{"n_estimators": 40, "num_leaves": 8, "learning_rate": 0.05}']) == 0
    boosted = next(r for r in open_context("titanic", workdir=tmp_path).runs() if r.record.kind == "boost")
    assert boosted.record.runs[0] == base.run_id and 0.75 < boosted.score < 0.9
    assert len(boosted.test) == 418 and boosted.oof["pred"].between(0, 1).all()
    # Runs on other folds are refused by name.
    bad = dict(base.record.to_json(), folds_hash="other")
    (base.path / "run.json").write_text(__import__("json").dumps(bad))
    assert main(["blend", "titanic", "--runs", base.run_id, blends[0].run_id, *w]) == 2
    assert f"run {base.run_id} was made on other folds" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["hill_climb", "optimize", "stack_linear"])
def test_multitarget_weights_go_to_the_informative_run(method):
    """Two targets, one weight per run shared by both; the noise run gets (almost) none."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=(400, 2)) * [1.0, 3.0] + [0.0, 10.0]
    good = y + rng.normal(0, 0.3, y.shape)
    noise = y.mean(axis=0) + rng.normal(0, 2.0, y.shape)
    P = np.stack([noise, good, noise[::-1]])
    b = make_blender(method, task="multitarget", metric="mcrmse").fit(P, y)
    assert b.weights_.sum() == pytest.approx(1.0)
    assert b.weights_[1] > (0.9 if method != "stack_linear" else 0.6), b.weights_
    pred = b.predict(P)
    assert pred.shape == (400, 2)
    assert get_metric("mcrmse")(y, pred) < 0.5 * get_metric("mcrmse")(y, P.mean(axis=0))


def test_submit_on_a_multitarget_competition_blends_its_runs(tmp_path, capsys):
    """Several target columns: ``init`` infers the spec, ``submit`` trains, blends and writes the
    chosen submission."""
    from kagtools.cli.main import main

    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({"id": np.arange(n), "a": rng.normal(size=n), "b": rng.normal(size=n),
                          "c": rng.choice(["x", "y", "z"], n)})
    frame["t1"] = frame["a"] + 0.1 * rng.normal(size=n)
    frame["t2"] = frame["b"] - frame["a"] + 0.1 * rng.normal(size=n)
    data = tmp_path / "data"
    data.mkdir()
    frame.iloc[:160].to_csv(data / "train.csv", index=False)
    test = frame.iloc[160:].drop(columns=["t1", "t2"])
    test.to_csv(data / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "t1": 0.0, "t2": 0.0}).to_csv(data / "sample_submission.csv", index=False)
    common = ["--data-dir", str(data), "--workdir", str(tmp_path / "work")]
    assert main(["init", "mt", *common, "--n-repeats", "1"]) == 0
    assert main(["submit", "mt", *common]) == 0
    out = capsys.readouterr().out
    assert "task: multitarget" in out  # medium tries no LightGBM stacker (test_contracts: they refuse)
    assert "blend:hill_climb" in out and "blend:optimize" in out and "blend:stack_linear" in out
    sub = pd.read_csv(tmp_path / "work" / "submissions" / "mt" / "submission.csv")
    assert list(sub.columns) == ["id", "t1", "t2"] and sub["id"].tolist() == test["id"].tolist()
    # The chosen run learned both targets: t1 follows a, t2 follows b - a.
    assert np.corrcoef(sub["t1"], test["a"])[0, 1] > 0.9
    assert np.corrcoef(sub["t2"], test["b"] - test["a"])[0, 1] > 0.9
    # Boosting the worst single run (highest MCRMSE) learns both targets' residuals.
    from kagtools.workflow.context import open_context

    ctx = open_context("mt", workdir=tmp_path / "work", data_dir=data)
    base = max((r for r in ctx.runs() if r.record.kind == "cv"), key=lambda r: r.record.scores["cv"])
    assert main(["boost", "mt", "--base", base.run_id, "--n-jobs", "1", *common, "--params",
                 '{"n_estimators": 200, "min_samples_leaf": 3}', "--model", "rf"]) == 0
    boosted = next(r for r in open_context("mt", workdir=tmp_path / "work", data_dir=data).runs()
                   if r.record.kind == "boost")
    assert boosted.pred_cols == base.pred_cols == ["pred_t1", "pred_t2"] and len(boosted.test) == len(test)
    assert boosted.record.scores["cv"] < base.record.scores["cv"]  # RMSE: the residuals were learned


def test_time_ordered_competition_from_its_files_trains_blends_and_boosts(tmp_path, capsys):
    """Test dates after train's: ``init`` picks TimeSeriesSplit; every fold trains on the past
    (the first block included), blends walk forward and a boost leaves the first fold as it was."""
    from kagtools.cli.main import main
    from kagtools.workflow.context import open_context

    rng = np.random.default_rng(0)
    n = 260
    days = pd.date_range("2021-01-01", periods=n, freq="D")
    frame = pd.DataFrame({"id": np.arange(n), "date": days.strftime("%Y-%m-%d"), "a": rng.normal(size=n),
                          "b": rng.normal(size=n)})
    frame["y"] = 2 * frame["a"] + np.arange(n) / 50 + 0.3 * rng.normal(size=n)
    data = tmp_path / "data"
    data.mkdir()
    frame.iloc[:200].to_csv(data / "train.csv", index=False)
    test = frame.iloc[200:].drop(columns="y")
    test.to_csv(data / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "y": 0.0}).to_csv(data / "sample_submission.csv", index=False)
    common = ["--data-dir", str(data), "--workdir", str(tmp_path / "work")]
    assert main(["init", "ts", *common]) == 0
    assert main(["submit", "ts", *common]) == 0
    capsys.readouterr()
    ctx = open_context("ts", workdir=tmp_path / "work", data_dir=data)
    assert ctx.spec.cv.splitter == "TimeSeriesSplit"
    runs = ctx.runs()
    blends = [r for r in runs if r.record.kind == "blend"]
    assert blends and all(r.record.cv_scheme["splitter"] == "TimeSeriesSplit" for r in blends)
    base = next(r for r in runs if r.record.kind == "cv")
    assert main(["boost", "ts", "--base", base.run_id, "--n-jobs", "1", *common, "--params",
                 '{"n_estimators": 30, "num_leaves": 4, "min_child_samples": 5}']) == 0
    boosted = next(r for r in open_context("ts", workdir=tmp_path / "work", data_dir=data).runs()
                   if r.record.kind == "boost")
    first = boosted.record.details["steps"][0]
    assert first == 0.0 and any(s > 0 for s in boosted.record.details["steps"][1:])
    b0, f0 = boosted.oof[boosted.oof["fold"] == 0], base.oof[base.oof["fold"] == 0]
    np.testing.assert_allclose(b0.sort_values("id")["pred"], f0.sort_values("id")["pred"])
    assert len(boosted.test) == len(test)
