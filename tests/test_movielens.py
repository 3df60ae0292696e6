"""MovieLens: spec, in-fold rating features, and the CLI end to end on the real files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kagtools.cli.main import main
from kagtools.core.data import load_competition
from kagtools.core.spec import load_spec
from pipelines.movielens import RatingStats, features


@pytest.fixture(scope="module")
def spec():
    return load_spec("movielens")


@pytest.fixture(scope="module")
def data(spec, mirror):
    return load_competition(spec, mirror / "movielens")


def test_spec_numbers_train_rows_and_uses_random_kfold(spec, data):
    assert spec.task == "regression" and spec.metric == "rmse" and spec.id_col == "Id"
    assert spec.cv.splitter == "KFold"
    assert data.train["Id"].tolist() == list(range(len(data.train)))
    assert spec.options["clip"] == {"rating": [0.5, 5.0]}


def test_features_have_no_target_and_align_with_test(spec, data):
    tset = features(data, spec)
    assert "rating" not in tset.X.columns
    assert list(tset.X.columns) == list(tset.X_test.columns)
    assert len(tset.X_test) == len(data.test)
    assert tset.X[["userId", "movieId", "day"]].notna().all().all()
    # Release year parsed from nearly every title; genres one-hot.
    assert tset.X["year"].notna().mean() > 0.99
    assert tset.X.filter(like="g_").sum(axis=1).min() >= 0


def _toy_ratings(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"userId": rng.integers(0, 15, n), "movieId": rng.integers(0, 25, n),
                      "day": rng.integers(0, 3, n)})
    return X, rng.choice(np.arange(1, 11) / 2, n)


def test_rating_stats_never_see_a_rows_own_rating():
    X, y = _toy_ratings()
    base = RatingStats(seed=1).fit_transform(X, y)
    y2 = y.copy()
    y2[7] = 5.0 if y[7] < 3 else 0.5
    changed = RatingStats(seed=1).fit_transform(X, y2)
    target_cols = [c for c in base.columns if c not in X.columns]
    pd.testing.assert_series_equal(base.loc[7, target_cols], changed.loc[7, target_cols])
    assert not base[target_cols].equals(changed[target_cols])  # other rows did see it


def test_rating_stats_on_new_rows_use_all_fitted_rows_and_unknowns_are_nan():
    X, y = _toy_ratings()
    stats = RatingStats().fit(X, y)
    new = pd.DataFrame({"userId": [0, 999], "movieId": [999, 0], "day": [0, 0]})
    out = stats.transform(new)
    assert out.loc[0, "user_mean"] == pytest.approx(y[X["userId"] == 0].mean())
    assert np.isnan(out.loc[0, "item_mean"]) and np.isnan(out.loc[1, "user_mean"])
    assert np.isfinite(out["bias_pred"]).all()


@pytest.mark.slow
def test_movielens_submit_end_to_end(tmp_path, mirror, capsys):
    assert main(["submit", "movielens", "--profile", "smoke", "--no-eda", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "submission:" in out
    sub = pd.read_csv(tmp_path / "submissions" / "movielens" / "submission.csv")
    sample = pd.read_csv(mirror / "movielens" / "sample_submission.csv")
    assert list(sub.columns) == ["Id", "rating"] and sub["Id"].tolist() == sample["Id"].tolist()
    assert sub["rating"].notna().all() and sub["rating"].between(0.5, 5.0).all()
    assert sub["rating"].std() > 0.3  # real predictions, not a constant
    cv = float(out.split("CV rmse ")[1].split()[0])
    assert cv < 0.87  # the smoke models already beat plain biases without sittings (~0.87)


@pytest.mark.slow
def test_recommend_and_similar_cli(tmp_path, mirror, capsys, data):
    small = ["--workdir", str(tmp_path), "--params", '{"n_factors": 8, "n_iter": 3}']
    assert main(["recommend", "movielens", "--user", "1", "-k", "5", *small]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln[:3].strip().isdigit()]
    assert len(lines) == 5
    movies = pd.read_csv(mirror / "movielens" / "movies.csv").set_index("movieId")["title"]
    rated = set(movies.reindex(data.train.loc[data.train["userId"] == 1, "movieId"]))
    assert not any(title in ln for ln in lines for title in rated)

    assert main(["similar", "movielens", "--movie", "Toy Story (1995)", "-k", "5", "--plot", *small]) == 0
    out = capsys.readouterr().out
    assert "nearest to Toy Story (1995)" in out
    body = out.split("nearest to")[1].splitlines()[3:8]
    assert len(body) == 5 and not any("Toy Story (1995)" in ln for ln in body)
    png = tmp_path / "reports" / "movielens" / "item_embeddings.png"
    assert png.read_bytes()[:4] == b"\x89PNG"

    assert main(["recommend", "movielens", "--user", "99999", *small]) == 2
    assert "user 99999 has no ratings" in capsys.readouterr().err
