"""MovieLens (ml-latest-small): predict held-out ratings, then recommend.

The test set is a random 10% of all ratings, so almost every held-out rating was made by a
known user in a sitting that also left training ratings (97% share the user's day). Two
signals follow: the collaborative one (who likes what, learned by biases, factorization and
embeddings) and the sitting's mood (a bias per user and day, ``session_col = "day"``).

Features for LightGBM come in two kinds. Those that do not use the rating (genres, release
year, when and how much a user rated, session size, tags) are computed on train and test
together in :func:`features`. Those that use the rating (means, counts, spread and a bias
model's prediction) are fitted inside each CV fold by :class:`RatingStats`, with an inner
K-fold on the training rows so that the booster never sees a statistic that includes its own
target. The collaborative models read only ``userId``, ``movieId`` and ``day`` from the same
frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold

from kagtools.core.data import CompetitionData, read_csv
from kagtools.core.engine import TrainingSet
from kagtools.core.spec import CompetitionSpec
from kagtools.models.recsys import Biases

__all__ = ["features", "RatingStats", "load_movies", "MODELS", "PROFILES", "default_profile",
           "plot_item_embeddings", "WELL_KNOWN"]

USER, ITEM, SESSION = "userId", "movieId", "day"
CF = {"user_col": USER, "item_col": ITEM, "session_col": SESSION}

LGBM = {"n_estimators": 600, "learning_rate": 0.03, "num_leaves": 63, "min_child_samples": 50,
        "subsample": 0.8, "colsample_bytree": 0.7, "reg_lambda": 5.0}

MODELS = {
    "biases": ("cf_biases", {**CF, "reg_user": 5.0, "reg_item": 5.0, "reg_session": 3.0}),
    "mf": ("cf_mf", {**CF, "n_factors": 32, "reg_factors": 0.2, "n_iter": 8}),
    "dot": ("cf_dot", {**CF, "n_factors": 50, "epochs": 4, "lr_max": 5e-3, "wd": 0.1}),
    "neural": ("cf_neural", {**CF, "n_factors": 32, "hidden": (64,), "epochs": 4, "lr_max": 3e-3, "wd": 0.1}),
    "lgbm": ("lgbm", LGBM),
}

PROFILES = {
    # Seconds: what the end-to-end test runs.
    "smoke": {
        "biases": MODELS["biases"],
        "mf": ("cf_mf", {**CF, "n_factors": 8, "n_iter": 3}),
    },
    "cpu": MODELS,
    "gpu": MODELS,  # the data is small: the same models, the torch ones on the GPU
}


def default_profile() -> str:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"
    return "gpu" if torch.cuda.is_available() else "cpu"


def load_movies(data_dir: Path) -> pd.DataFrame:
    """movies.csv with ``year`` (from the title) and the genre list, indexed by movieId."""
    movies = read_csv(Path(data_dir) / "movies.csv").set_index(ITEM)
    movies["year"] = pd.to_numeric(movies["title"].str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")
    return movies


def features(data: CompetitionData, spec: CompetitionSpec) -> TrainingSet:
    """Rating-free features on train and test together; rating-based ones are fitted per fold."""
    train, test = data.train, data.test
    n = len(train)
    full = pd.concat([train.drop(columns=list(spec.target_cols)), test], ignore_index=True)
    ts = pd.to_datetime(full["timestamp"], unit="s")
    f = pd.DataFrame({USER: full[USER].to_numpy(), ITEM: full[ITEM].to_numpy()})
    f[SESSION] = (full["timestamp"] // 86400).to_numpy()
    f["rated_year"] = ts.dt.year + ts.dt.day_of_year / 366
    f["hour"] = ts.dt.hour
    f["weekday"] = ts.dt.day_of_week
    # How a user rates: volume, tenure, the size of this sitting and the place in it.
    by_user = full.groupby(USER)["timestamp"]
    f["user_n"] = by_user.transform("size").to_numpy()
    f["user_days"] = (full["timestamp"] - by_user.transform("min")).to_numpy() / 86400
    session = [full[USER], f[SESSION]]
    f["session_n"] = full.groupby(session)["timestamp"].transform("size").to_numpy()
    f["session_pos"] = full.groupby(session)["timestamp"].rank(pct=True).to_numpy()
    f["item_n"] = full.groupby(ITEM)["timestamp"].transform("size").to_numpy()
    # What the movie is: release year, age when rated, genres, how much it was tagged.
    movies = load_movies(data.data_dir)
    year = full[ITEM].map(movies["year"])
    f["year"] = year.to_numpy()
    f["age_when_rated"] = (ts.dt.year - year).to_numpy()
    genres = movies["genres"].str.get_dummies("|").drop(columns=["(no genres listed)"], errors="ignore")
    onehot = genres.reindex(full[ITEM]).fillna(0).astype("float32").reset_index(drop=True)
    onehot.columns = [f"g_{c}" for c in onehot.columns]
    tags = read_csv(Path(data.data_dir) / "tags.csv")
    f["item_tags"] = full[ITEM].map(tags.groupby(ITEM).size()).fillna(0).to_numpy()
    f["user_tags"] = full[USER].map(tags.groupby(USER).size()).fillna(0).to_numpy()
    f = pd.concat([f, onehot], axis=1)
    return TrainingSet(
        X=f.iloc[:n].reset_index(drop=True), y=train[spec.target].reset_index(drop=True),
        ids=train[spec.id_col].reset_index(drop=True), X_test=f.iloc[n:].reset_index(drop=True),
        test_ids=test[spec.id_col].reset_index(drop=True), fold_features=RatingStats(), name="movielens-v1",
    )


class RatingStats(BaseEstimator, TransformerMixin):
    """Rating-based features fitted inside a fold: biases-model prediction, means, counts, spread.

    On the rows it is fitted on, every statistic comes from an inner ``n_inner``-fold split
    (each row's statistics are computed without its own rating); on any other rows
    (validation, test) from all fitted rows. Unknown users or movies get NaN statistics (the
    booster handles them) and the biases model's fallback prediction.
    """

    def __init__(self, *, n_inner: int = 5, reg: float = 5.0, seed: int = 0):
        self.n_inner = n_inner
        self.reg = reg
        self.seed = seed

    def _biases(self) -> Biases:
        return Biases(**CF, reg_user=self.reg, reg_item=self.reg, reg_session=3.0)

    def fit(self, X: pd.DataFrame, y=None):
        self.stats_ = self._fit_stats(X, np.asarray(y, dtype=float))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._apply(X, self.stats_)

    def fit_transform(self, X: pd.DataFrame, y=None, **_) -> pd.DataFrame:
        y = np.asarray(y, dtype=float)
        self.fit(X, y)
        parts = []
        for fit_idx, out_idx in KFold(self.n_inner, shuffle=True, random_state=self.seed).split(X):
            stats = self._fit_stats(X.iloc[fit_idx], y[fit_idx])
            parts.append(self._apply(X.iloc[out_idx], stats))
        return pd.concat(parts).loc[X.index]

    def _fit_stats(self, X: pd.DataFrame, y: np.ndarray) -> dict:
        model = self._biases().fit(X, y)
        resid = y - model.predict(X)
        frame = pd.DataFrame({USER: X[USER].to_numpy(), ITEM: X[ITEM].to_numpy(), "y": y, "resid": resid})
        return {
            "model": model,
            "user": frame.groupby(USER)["y"].agg(["mean", "std", "size"]).add_prefix("user_"),
            "item": frame.groupby(ITEM)["y"].agg(["mean", "std", "size"]).add_prefix("item_"),
            "user_resid_sd": frame.groupby(USER)["resid"].std(),
        }

    def _apply(self, X: pd.DataFrame, stats: dict) -> pd.DataFrame:
        out = X.copy()
        model = stats["model"]
        u, i, s = model.codes(X)
        out["bias_pred"] = model.predict(X)
        out["b_item"] = _known(model.item_bias_, i)
        out["b_user"] = _known(model.user_bias_, u)
        out["b_session"] = _known(model.session_bias_, s)
        for key, table in ((USER, stats["user"]), (ITEM, stats["item"])):
            joined = table.reindex(X[key].to_numpy())
            for col in table.columns:
                out[col] = joined[col].to_numpy()
        out[["user_size", "item_size"]] = out[["user_size", "item_size"]].fillna(0)
        out["user_resid_sd"] = X[USER].map(stats["user_resid_sd"]).to_numpy()
        return out


def _known(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``values[codes]``, NaN for unknown codes (-1): the booster learns what unknown means."""
    return np.where(codes >= 0, values[np.maximum(codes, 0)], np.nan)


# Titles a reader knows, for labelling the embedding plot.
WELL_KNOWN = [
    "Toy Story (1995)", "Pulp Fiction (1994)", "Forrest Gump (1994)", "Silence of the Lambs, The (1991)",
    "Matrix, The (1999)", "Star Wars: Episode IV - A New Hope (1977)", "Jurassic Park (1993)",
    "Titanic (1997)", "Godfather, The (1972)", "Shawshank Redemption, The (1994)", "Fight Club (1999)",
    "Lion King, The (1994)", "Aladdin (1992)", "Sleepless in Seattle (1993)", "Terminator 2: Judgment Day (1991)",
    "Schindler's List (1993)", "Dumb & Dumber (Dumb and Dumber) (1994)", "Ace Ventura: Pet Detective (1994)",
    "Pretty Woman (1990)", "Shrek (2001)", "Lord of the Rings: The Fellowship of the Ring, The (2001)",
    "Batman (1989)", "Home Alone (1990)", "Fargo (1996)", "Clueless (1995)", "Mrs. Doubtfire (1993)",
]


def plot_item_embeddings(item_ids, factors: np.ndarray, movies: pd.DataFrame, path: Path, *,
                         counts: pd.Series | None = None, min_ratings: int = 20,
                         labels: list[str] | None = None) -> Path:
    """Scatter the first two principal components of item factors, labelling well-known titles.

    Only movies with at least ``min_ratings`` ratings (when ``counts`` is given) are drawn:
    the factors of rarely rated movies are mostly shrinkage noise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from kagtools.core.io import atomic_path

    item_ids = np.asarray(item_ids)
    keep = np.ones(len(item_ids), bool)
    if counts is not None:
        keep = pd.Series(item_ids).map(counts).fillna(0).to_numpy() >= min_ratings
    ids, pts = item_ids[keep], PCA(n_components=2, random_state=0).fit_transform(factors[keep])
    titles = movies["title"].reindex(ids).to_numpy()
    fig, ax = plt.subplots(figsize=(11, 9))
    ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.3, color="tab:blue")
    wanted = set(labels or WELL_KNOWN)
    for (x, y_), title in zip(pts, titles, strict=True):
        if title in wanted:
            ax.scatter([x], [y_], s=18, color="tab:red")
            ax.annotate(title, (x, y_), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("PC 1 of item factors")
    ax.set_ylabel("PC 2 of item factors")
    ax.set_title(f"Movie embeddings (PCA), {keep.sum()} movies with >= {min_ratings} ratings")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
