"""Automatic features: column kinds, consistent train/test frames, and no target leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kagtools.core.data import CompetitionData
from kagtools.core.engine import TrainingSet, cross_validate
from kagtools.core.folds import ensure_folds
from kagtools.core.spec import CompetitionSpec, CVScheme
from kagtools.features.auto import AutoFeatures, column_kinds
from kagtools.workflow.pipeline import default_features

WORDS = np.array(["red", "quick", "fox", "lazy", "dog", "jumps", "over", "blue", "cat", "sleeps"])


def table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "row": np.arange(n),
        "num": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "const": 1,
        "color": rng.choice(["red", "green", "blue"], n),
        "code": [f"c{v}" for v in rng.integers(0, 150, n)],
        "when": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
        "text": [" ".join(rng.choice(WORDS, 6)) for _ in range(n)],
        "uid": [f"u{i:05d}" for i in rng.permutation(n)],
    }).assign(when=lambda d: d["when"].dt.strftime("%Y-%m-%d %H:%M"))


def test_column_kinds():
    kinds = column_kinds(table())
    assert kinds == {"row": "id", "num": "numeric", "const": "constant", "color": "category",
                     "code": "high_card", "when": "date", "text": "text", "uid": "id"}
    # A fold's training rows: row numbers with gaps are still row numbers.
    assert column_kinds(table().sample(frac=0.8, random_state=0))["row"] == "id"
    # A few labels of many words (statsmodels' fair: "teacher, nurse, artist, technician or
    # skilled") are a category, not text.
    labels = pd.DataFrame({"job": np.random.default_rng(0).choice(
        ["teacher, nurse, artist or technician", "managerial or business", "white collar worker"], 200)})
    assert column_kinds(labels) == {"job": "category"}


def test_features_are_model_ready_and_the_same_for_test():
    X = table()
    y = (X["color"] == "red").astype(int).to_numpy()
    af = AutoFeatures()
    A = af.fit_transform(X, y)
    test = table(50, seed=1)
    test.loc[0, "color"] = "purple"  # unseen category
    test.loc[1, "code"] = "never-seen"
    B = af.transform(test)
    assert list(A.columns) == list(B.columns) and len(B) == 50
    for dropped in ("row", "const", "uid", "text", "code", "when"):
        assert dropped not in A.columns
    assert {"num", "num__missing", "color", "code__freq", "code__te", "when__year", "when__month",
            "when__dayofweek", "when__time", "text__len", "text__words", "text__tfidf"} <= set(A.columns)
    assert A["color"].dtype == "category" and pd.isna(B.loc[0, "color"])
    assert B.loc[1, "code__te"] == pytest.approx(y.mean())  # unseen -> the prior
    assert all(pd.api.types.is_float_dtype(t) for t in A.drop(columns="color").dtypes)
    assert A["num__missing"].sum() == X["num"].isna().sum()


def test_multiclass_target_encoding_has_one_column_per_class_but_the_last():
    X = table()
    y = np.random.default_rng(0).integers(0, 4, len(X))
    A = AutoFeatures().fit_transform(X, y)
    assert {"code__te0", "code__te1", "code__te2"} <= set(A.columns) and "code__te3" not in A.columns


def _cv_auc(X: pd.DataFrame, y: np.ndarray, tmp_path) -> float:
    ids = pd.Series(np.arange(len(X)))
    spec = CompetitionSpec(slug="leak", task="binary", id_col="id", target_cols=("y",), metric="roc_auc",
                           cv=CVScheme(splitter="StratifiedKFold", n_splits=5, stratify="y"))
    folds = ensure_folds(pd.DataFrame({"id": ids, "y": y}), spec, tmp_path)
    tset = TrainingSet(X=X, y=pd.Series(y), ids=ids, fold_features=AutoFeatures(), name="auto")
    run = cross_validate(spec, tset, folds, "lgbm", {"n_estimators": 80, "min_child_samples": 5},
                         root=tmp_path, save_models=False)
    return run.record.scores["cv"]


def test_target_encoding_and_text_model_do_not_leak(tmp_path):
    """A shuffled target gets chance-level CV, even through high-cardinality and text columns.

    Each ``code`` value covers ~3 rows: encoding the target on the rows it is then scored on
    (in-sample) would give an AUC far above 0.5 on a target that is pure noise.
    """
    rng = np.random.default_rng(1)
    n = 600
    X = pd.DataFrame({"code": [f"c{v}" for v in rng.integers(0, 200, n)],
                      "text": [" ".join(rng.choice(WORDS, 5)) + f" w{rng.integers(0, 300)}" for _ in range(n)]})
    y = rng.permutation(np.r_[np.zeros(n // 2), np.ones(n // 2)]).astype(int)
    auc = _cv_auc(X, y, tmp_path / "noise")
    assert 0.4 < auc < 0.6
    # The same pipeline does find a real signal carried by the same kind of column.
    signal = X["code"].str[1:].astype(int).to_numpy() % 2
    assert _cv_auc(X, signal, tmp_path / "signal") > 0.9


def test_default_features_fit_within_folds_and_skip_train_only_columns(tmp_path):
    train = table(80).assign(y=np.arange(80) % 2, leak=1.0)
    test = table(20, seed=1)
    test.insert(0, "ImageId", np.arange(1, 21))
    spec = CompetitionSpec(slug="t", task="binary", id_col="ImageId", target_cols=("y",), metric="accuracy",
                           options={"train_ids": "row_number", "test_ids": "row_number", "test_id_start": 1})
    train.insert(0, "ImageId", np.arange(80))
    data = CompetitionData(train=train, test=test.drop(columns="ImageId"), sample_submission=None,
                           data_dir=tmp_path)
    tset = default_features(data, spec)
    assert isinstance(tset.fold_features, AutoFeatures)
    assert "leak" not in tset.X.columns and "y" not in tset.X.columns and "ImageId" not in tset.X.columns
    assert tset.test_ids.tolist() == list(range(1, 21))
