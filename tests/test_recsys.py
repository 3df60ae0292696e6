"""Collaborative-filtering models on small synthetic ratings (kagtools.models.recsys)."""

from __future__ import annotations

import pickle
from functools import cache

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from kagtools.errors import KagtoolsError
from kagtools.models import create_model, list_models
from kagtools.models.recsys import _ridge_rows
from kagtools.workflow.recommend import find_movie, recommend, similar_items

CF_MODELS = ["cf_global_mean", "cf_biases", "cf_mf", "cf_dot", "cf_neural"]
FAST = {"cf_mf": {"n_factors": 4, "n_iter": 3}, "cf_dot": {"epochs": 1}, "cf_neural": {"epochs": 1}}


@cache
def biased_ratings(n_users: int = 60, n_items: int = 40, density: float = 0.6, noise: float = 0.05, seed: int = 0):
    """Ratings ``3 + b_user + b_item + noise`` with known biases (and 2 sittings per user)."""
    rng = np.random.default_rng(seed)
    bu, bi = rng.normal(0, 0.5, n_users), rng.normal(0, 0.5, n_items)
    users, items = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    keep = rng.random(users.shape) < density
    u, i = users[keep], items[keep]
    X = pd.DataFrame({"userId": u + 100, "movieId": i + 1000, "day": rng.integers(0, 2, len(u))})
    y = 3.0 + bu[u] + bi[i] + rng.normal(0, noise, len(u))
    return X, y, bu, bi


def low_rank_ratings(n_users=80, n_items=60, rank=2, density=0.5, seed=1):
    rng = np.random.default_rng(seed)
    P, Q = rng.normal(0, 0.8, (n_users, rank)), rng.normal(0, 0.8, (n_items, rank))
    users, items = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    keep = rng.random(users.shape) < density
    u, i = users[keep], items[keep]
    X = pd.DataFrame({"userId": u, "movieId": i})
    return X, 3.0 + np.einsum("nk,nk->n", P[u], Q[i]) + rng.normal(0, 0.1, len(u))


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_every_cf_model_is_registered():
    assert set(CF_MODELS) <= set(list_models("cf_*"))


def test_biases_recover_known_biases():
    X, y, bu, bi = biased_ratings()
    model = create_model("cf_biases", reg_user=0.1, reg_item=0.1, n_iter=30).fit(X, y)
    # Biases are identified up to a constant shared between users and items: compare centred.
    user_bias = pd.Series(model.user_bias_, index=model.users_.index).loc[np.arange(len(bu)) + 100].to_numpy()
    item_bias = pd.Series(model.item_bias_, index=model.items_.index).loc[np.arange(len(bi)) + 1000].to_numpy()
    assert np.abs((user_bias - user_bias.mean()) - (bu - bu.mean())).max() < 0.05
    assert np.abs((item_bias - item_bias.mean()) - (bi - bi.mean())).max() < 0.05
    assert rmse(model.predict(X), y) < 0.07


def test_bias_shrinkage_pulls_rare_ids_to_zero():
    X, y, _, _ = biased_ratings()
    loose = create_model("cf_biases", reg_user=0.1, reg_item=0.1).fit(X, y)
    tight = create_model("cf_biases", reg_user=1000.0, reg_item=1000.0).fit(X, y)
    assert np.abs(tight.user_bias_).max() < 0.2 * np.abs(loose.user_bias_).max()


def test_session_bias_captures_the_mood_of_a_sitting():
    X, y, _, _ = biased_ratings(seed=3)
    mood = np.where(X["day"] == 1, 0.4, -0.4) * np.where(X["userId"] % 2 == 0, 1, -1)
    plain = create_model("cf_biases").fit(X, y + mood)
    sitting = create_model("cf_biases", session_col="day").fit(X, y + mood)
    assert rmse(sitting.predict(X), y + mood) < 0.5 * rmse(plain.predict(X), y + mood)


def test_ridge_rows_matches_one_solve_per_group():
    rng = np.random.default_rng(0)
    group = rng.integers(0, 7, 300)
    feats, target = rng.normal(size=(300, 4)), rng.normal(size=300)
    penalty = rng.uniform(0.5, 2.0, (7, 4))
    got = _ridge_rows(group, feats, target, 8, np.vstack([penalty, np.ones((1, 4))]))
    for g in range(7):
        F, t = feats[group == g], target[group == g]
        want = np.linalg.solve(F.T @ F + np.diag(penalty[g]), F.T @ t)
        np.testing.assert_allclose(got[g], want, atol=1e-10)
    np.testing.assert_array_equal(got[7], 0.0)  # a group with no rows


def test_matrix_factorization_learns_low_rank_structure():
    X, y = low_rank_ratings()
    rng = np.random.default_rng(0)
    test = rng.random(len(y)) < 0.2
    biases = create_model("cf_biases").fit(X[~test], y[~test])
    mf = create_model("cf_mf", n_factors=4, reg_factors=0.02, n_iter=15).fit(X[~test], y[~test])
    assert rmse(mf.predict(X[test]), y[test]) < 0.6 * rmse(biases.predict(X[test]), y[test])


@pytest.mark.parametrize("name", ["cf_dot", "cf_neural"])
def test_embedding_models_overfit_a_tiny_set(name):
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"userId": np.repeat(np.arange(12), 8), "movieId": np.tile(np.arange(8), 12)})
    y = rng.choice(np.arange(1, 11) / 2, len(X))
    model = create_model(name, n_factors=16, epochs=150, lr_max=0.05, wd=0.0, batch_size=32,
                         **({"dropout": 0.0} if name == "cf_neural" else {})).fit(X, y)
    assert rmse(model.predict(X), y) < 0.25
    assert model.predict(X).min() >= 0.0 and model.predict(X).max() <= 5.5  # the sigmoid's range


@pytest.mark.parametrize("name", CF_MODELS)
def test_unseen_users_and_items_fall_back_to_biases(name):
    X, y, _, _ = biased_ratings()
    params = {**FAST.get(name, {}), **({"session_col": "day"} if name != "cf_global_mean" else {})}
    model = create_model(name, **params).fit(X, y)
    new = pd.DataFrame({"userId": [100, 999, 999, 100], "movieId": [9999, 1000, 9999, 1000], "day": [7, 7, 0, 0]})
    pred = model.predict(new)
    assert np.isfinite(pred).all()
    if name == "cf_biases":
        mean = model.mean_
        bu = model.user_bias_[model.users_.codes([100])[0]]
        bi = model.item_bias_[model.items_.codes([1000])[0]]
        assert pred[0] == pytest.approx(mean + bu)  # unseen item, unseen sitting
        assert pred[1] == pytest.approx(mean + bi)  # unseen user
        assert pred[2] == pytest.approx(mean)  # both unseen
    # Predictions stay within a sane band around the mean whatever is unknown.
    assert np.abs(pred - y.mean()).max() < 2.0


@pytest.mark.parametrize("name", CF_MODELS)
def test_models_clone_and_pickle(name):
    X, y, _, _ = biased_ratings()
    model = create_model(name, **FAST.get(name, {}))
    assert clone(model).get_params() == model.get_params()
    fitted = model.fit(X, y)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(again.predict(X.head(20)), fitted.predict(X.head(20)))


def test_missing_id_column_is_one_clear_error():
    X, y, _, _ = biased_ratings()
    with pytest.raises(KagtoolsError, match="no column 'userId'"):
        create_model("cf_biases").fit(X.drop(columns="userId"), y)


def _movies(n_items: int = 40) -> pd.DataFrame:
    return pd.DataFrame({"title": [f"Movie {i} ({1980 + i % 30})" for i in range(n_items)]},
                        index=pd.Index(np.arange(n_items) + 1000, name="movieId"))


def test_recommendations_exclude_rated_movies():
    X, y, _, bi = biased_ratings(density=0.5)
    model = create_model("cf_biases").fit(X, y)
    movies = _movies()
    counts = X["movieId"].value_counts()
    user = 100
    top = recommend(model, X, movies, counts, user, k=5, min_ratings=1)
    rated = set(X.loc[X["userId"] == user, "movieId"])
    assert len(top) == 5 and not rated & set(top["movieId"])
    # Among unrated movies the biases model ranks by item bias: the best unrated one comes first.
    unrated = [m for m in movies.index if m not in rated]
    assert top["movieId"].iloc[0] == max(unrated, key=lambda m: bi[m - 1000])
    assert top["predicted"].is_monotonic_decreasing


def test_similar_items_by_cosine_of_item_factors():
    X, y = low_rank_ratings(n_items=40)
    X = X.assign(movieId=X["movieId"] + 1000)
    model = create_model("cf_mf", n_factors=2, reg_factors=0.02, n_iter=10).fit(X, y)
    movies = _movies()
    near = similar_items(model, 1000, movies, X["movieId"].value_counts(), k=3, min_ratings=1)
    ids, factors = model.item_embeddings_
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    sims = unit @ unit[list(ids).index(1000)]
    assert 1000 not in set(near["movieId"])
    assert near["similarity"].iloc[0] == pytest.approx(np.sort(sims)[-2])


def test_find_movie_exact_substring_and_errors():
    movies = pd.DataFrame({"title": ["Toy Story (1995)", "Toy Story 2 (1999)", "Heat (1995)",
                                     "Matrix, The (1999)", "Animatrix, The (2003)"]}, index=[1, 2, 3, 4, 5])
    assert find_movie(movies, "Toy Story (1995)") == 1
    assert find_movie(movies, "heat") == 3
    assert find_movie(movies, "matrix, the") == 4  # a prefix beats a substring
    with pytest.raises(KagtoolsError, match="matches 2 titles"):
        find_movie(movies, "toy story")
    with pytest.raises(KagtoolsError, match="did you mean"):
        find_movie(movies, "Toy Stroy (1995)")
