"""Recommendations from a collaborative-filtering model (``kagtools recommend`` / ``similar``).

Both verbs fit a collaborative-filtering model on every training rating (the CV runs' fold models
each saw only 80%), cache it under ``runs/<slug>/recommender/`` keyed by the data and the
parameters, and answer from it: the top-k movies a user has not rated, or the movies nearest
to one in the learned item embeddings. ``--plot`` writes the PCA map of those embeddings to
``reports/<slug>/item_embeddings.png``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from kagtools.core.io import atomic_path
from kagtools.errors import KagtoolsError
from kagtools.models import create_model

__all__ = ["DEFAULT_MODEL", "fit_recommender", "recommend", "similar_items", "find_movie", "catalogue", "rated",
           "id_columns", "plot_item_embeddings"]

DEFAULT_MODEL = "mf"  # a run name of the pipeline's MODELS, or a registered model name


def fit_recommender(ctx, model: str = DEFAULT_MODEL, params: dict[str, Any] | None = None):
    """A model fitted on all training rows of ``ctx`` (cached by data, model and parameters)."""
    models = getattr(ctx.pipeline, "MODELS", {})
    name, base = models.get(model, (model, {}))  # a pipeline run name, else a registered model
    params = {**base, **(params or {})}
    key = hashlib.sha256(json.dumps([name, params, ctx.folds.hash], sort_keys=True, default=str).encode())
    path = ctx.root / "recommender" / f"{name}-{key.hexdigest()[:10]}.joblib"
    if path.is_file():
        return joblib.load(path)
    fitted = create_model(name, **params)
    if not hasattr(fitted, "predict_pairs"):
        raise KagtoolsError(f"model '{name}' is not a collaborative-filtering model (use cf_mf, cf_dot, cf_neural)")
    if "seed" in fitted.get_params():
        fitted.set_params(seed=ctx.spec.cv.seed)
    tset = ctx.training_set
    fitted.fit(tset.X, tset.y.to_numpy(dtype=float))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        joblib.dump(fitted, tmp)
    return fitted


def catalogue(ctx) -> pd.DataFrame:
    loader = getattr(ctx.pipeline, "load_movies", None)
    if loader is None:
        raise KagtoolsError(f"competition '{ctx.spec.slug}' has no movie catalogue (its pipeline defines no load_movies)")
    return loader(ctx.data.data_dir)


def rated(ctx) -> pd.DataFrame:
    """Every (user, movie) pair the user rated: train ratings and the test pairs to predict."""
    user, item = id_columns(ctx)
    parts = [ctx.data.train[[user, item]]]
    if ctx.data.test is not None:
        parts.append(ctx.data.test[[user, item]])
    return pd.concat(parts, ignore_index=True)


def id_columns(ctx) -> tuple[str, str]:
    p = ctx.pipeline
    return getattr(p, "USER", "userId"), getattr(p, "ITEM", "movieId")


def recommend(model, rated: pd.DataFrame, movies: pd.DataFrame, counts: pd.Series, user, *, k: int = 10,
              min_ratings: int = 10, user_col: str = "userId", item_col: str = "movieId") -> pd.DataFrame:
    """The ``k`` movies with the highest predicted rating among those ``user`` has not rated.

    Only movies with at least ``min_ratings`` training ratings are candidates: for rarer ones the
    prediction is mostly the shrunk item bias, and a top list of obscure titles helps nobody.
    """
    seen = set(rated.loc[rated[user_col] == user, item_col])
    candidates = np.array([m for m in movies.index if m not in seen and counts.get(m, 0) >= min_ratings])
    if len(candidates) == 0:
        return pd.DataFrame(columns=[item_col, "title", "predicted", "ratings"])
    pred = model.predict_pairs(np.full(len(candidates), user), candidates)
    order = np.argsort(-pred, kind="stable")[:k]
    top = candidates[order]
    return pd.DataFrame({item_col: top, "title": movies.loc[top, "title"].to_numpy(),
                         "predicted": np.clip(pred[order], 0.5, 5.0),
                         "ratings": [int(counts.get(m, 0)) for m in top]})


def find_movie(movies: pd.DataFrame, query: str):
    """The movieId titled ``query``: exact, else case-insensitive exact, prefix or substring.

    The first rule that finds any title decides; several titles found are an error naming some.
    """
    titles = movies["title"]
    exact = titles.index[(titles == query).to_numpy()]
    if len(exact):
        return exact[0]  # a few titles appear twice in movies.csv: the first id
    lower, q = titles.str.lower(), query.lower()
    for rule in (lower == q, lower.str.startswith(q), lower.str.contains(q, regex=False)):
        hits = titles.index[rule.to_numpy()]
        if len(hits):
            break
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        shown = "; ".join(titles.loc[hits[:5]])
        raise KagtoolsError(f"movie '{query}' matches {len(hits)} titles (e.g. {shown}); give the full title")
    close = difflib.get_close_matches(query, titles.tolist(), n=3)
    hint = f" (did you mean: {'; '.join(close)}?)" if close else ""
    raise KagtoolsError(f"no movie titled '{query}' in movies.csv{hint}")


def _item_embeddings(model) -> tuple[np.ndarray, np.ndarray]:
    """``(item ids, factors)`` of a model that learns item embeddings, or one clear error."""
    if not hasattr(model, "item_embeddings_"):
        raise KagtoolsError(f"model {type(model).__name__} has no item embeddings (use cf_mf, cf_dot or cf_neural)")
    return model.item_embeddings_


def similar_items(model, movie, movies: pd.DataFrame, counts: pd.Series, *, k: int = 10,
                  min_ratings: int = 10) -> pd.DataFrame:
    """Movies nearest to ``movie`` by cosine similarity of the model's item embeddings."""
    ids, factors = _item_embeddings(model)
    pos = np.flatnonzero(ids == movie)
    if len(pos) == 0:
        raise KagtoolsError(f"movie {movies.loc[movie, 'title']!r} has no ratings in train.csv: no embedding")
    unit = factors / np.maximum(np.linalg.norm(factors, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit[pos[0]]
    keep = (pd.Series(ids).map(counts).fillna(0).to_numpy() >= min_ratings) & (ids != movie)
    order = np.flatnonzero(keep)[np.argsort(-sims[keep], kind="stable")[:k]]
    return pd.DataFrame({"movieId": ids[order], "title": movies["title"].reindex(ids[order]).to_numpy(),
                         "similarity": sims[order], "ratings": [int(counts.get(m, 0)) for m in ids[order]]})


def plot_item_embeddings(ctx, model, movies: pd.DataFrame, counts: pd.Series) -> Path:
    plot = getattr(ctx.pipeline, "plot_item_embeddings", None)
    if plot is None:
        raise KagtoolsError(f"pipeline {ctx.spec.pipeline} defines no plot_item_embeddings")
    ids, factors = _item_embeddings(model)
    return plot(ids, factors, movies, ctx.reports / "item_embeddings.png", counts=counts)
