"""Titanic: features from names, tickets, cabins and families; five classical models.

The strongest signal after sex and class is what happened to the rest of a passenger's
family: women and children of one family mostly lived or died together. That feature uses the
target, so :class:`FamilySurvival` computes it inside each fold (leave-one-out on the training
rows, training-fold statistics for validation and test rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from kagtools.core.data import CompetitionData
from kagtools.core.engine import TrainingSet
from kagtools.core.spec import CompetitionSpec

__all__ = ["features", "FamilySurvival", "MODELS"]

TITLES = {
    "Mr": "Mr", "Mrs": "Mrs", "Miss": "Miss", "Master": "Master", "Mlle": "Miss", "Ms": "Miss",
    "Mme": "Mrs", "Lady": "Mrs", "Countess": "Mrs", "Dona": "Mrs", "Sir": "Mr", "Don": "Mr",
    "Jonkheer": "Mr", "Capt": "Officer", "Col": "Officer", "Major": "Officer", "Dr": "Officer",
    "Rev": "Officer",
}

MODELS = {
    "logreg": ("logreg", {"C": 0.3}),
    "rf": ("rf", {"n_estimators": 300, "max_depth": 7, "min_samples_leaf": 2, "max_features": 0.5}),
    "et": ("et", {"n_estimators": 300, "max_depth": 8, "min_samples_leaf": 2, "max_features": 0.5}),
    "lgbm": ("lgbm", {"n_estimators": 200, "learning_rate": 0.03, "num_leaves": 8, "min_child_samples": 10,
                      "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0}),
    "hgb": ("hgb", {"max_iter": 150, "learning_rate": 0.05, "max_leaf_nodes": 8, "min_samples_leaf": 10}),
}


def features(data: CompetitionData, spec: CompetitionSpec) -> TrainingSet:
    """Features computed on train and test together (no target is used here)."""
    train, test = data.train, data.test
    full = pd.concat([train.drop(columns=list(spec.target_cols)), test], ignore_index=True)
    f = pd.DataFrame(index=full.index)
    f["Sex"] = full["Sex"].astype("category")
    f["Pclass"] = full["Pclass"].astype(float)
    title = full["Name"].str.extract(r",\s*([^\.]+)\.", expand=False).str.strip()
    f["Title"] = title.map(TITLES).fillna("Officer").astype("category")
    f["FamilySize"] = full["SibSp"] + full["Parch"] + 1
    f["IsAlone"] = (f["FamilySize"] == 1).astype(float)
    f["SibSp"] = full["SibSp"].astype(float)
    f["Parch"] = full["Parch"].astype(float)
    ticket_size = full.groupby("Ticket")["Ticket"].transform("size")
    f["TicketGroupSize"] = ticket_size.astype(float)
    fare = full["Fare"].fillna(full.groupby("Pclass")["Fare"].transform("median"))
    f["FarePerPerson"] = np.log1p(fare / ticket_size)
    f["Deck"] = full["Cabin"].str[0].fillna("U").replace({"T": "U", "G": "U"}).astype("category")
    f["Embarked"] = full["Embarked"].fillna("S").astype("category")
    f["AgeMissing"] = full["Age"].isna().astype(float)
    age_by_group = full.groupby([f["Title"].astype(str), full["Pclass"]])["Age"].transform("median")
    f["Age"] = full["Age"].fillna(age_by_group).fillna(full["Age"].median())
    # Family id in Chris Deotte's sense: surname, class, ticket (last digit dropped), fare, port.
    surname = full["Name"].str.split(",").str[0]
    f["FamilyId"] = (surname + "-" + full["Pclass"].astype(str) + "-" + full["Ticket"].str[:-1] + "-"
                     + fare.round(2).astype(str) + "-" + full["Embarked"].fillna("S"))
    f["WomanChild"] = ((full["Sex"] == "female") | (f["Title"] == "Master")).astype(float)
    n = len(train)
    X, X_test = f.iloc[:n].reset_index(drop=True), f.iloc[n:].reset_index(drop=True)
    return TrainingSet(
        X=X, y=train[spec.target].reset_index(drop=True), ids=train[spec.id_col].reset_index(drop=True),
        X_test=X_test, test_ids=test[spec.id_col].reset_index(drop=True),
        fold_features=FamilySurvival(), name="titanic-v1",
    )


class FamilySurvival(BaseEstimator, TransformerMixin):
    """Survival rate of the other women and children of a passenger's family, fitted in-fold.

    On the rows it is fitted on, each row sees the rate of the *other* members (leave one
    out); on any other rows (validation, test) it sees the rate of all fitted members. Rows
    with no known member get NaN and ``FamilyKnown = 0``. Drops the ``group_col`` afterwards.
    """

    def __init__(self, *, group_col: str = "FamilyId", member_col: str = "WomanChild"):
        self.group_col = group_col
        self.member_col = member_col

    def fit(self, X: pd.DataFrame, y=None):
        self._stats(X, y)
        return self

    def _stats(self, X: pd.DataFrame, y) -> pd.DataFrame:
        y = pd.Series(np.asarray(y, dtype=float), index=X.index)
        members = X[self.member_col] > 0
        grouped = y[members].groupby(X.loc[members, self.group_col])
        self.sums_ = grouped.sum()
        self.counts_ = grouped.size()
        return pd.DataFrame({"y": y, "member": members})

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        g = X[self.group_col]
        sums = g.map(self.sums_).fillna(0.0)
        counts = g.map(self.counts_).fillna(0.0)
        return self._finish(X, sums, counts)

    def fit_transform(self, X: pd.DataFrame, y=None, **_) -> pd.DataFrame:
        info = self._stats(X, y)
        g = X[self.group_col]
        sums = g.map(self.sums_).fillna(0.0) - info["y"].where(info["member"], 0.0)
        counts = g.map(self.counts_).fillna(0.0) - info["member"].astype(float)
        return self._finish(X, sums, counts)

    def _finish(self, X: pd.DataFrame, sums: pd.Series, counts: pd.Series) -> pd.DataFrame:
        out = X.drop(columns=[self.group_col]).copy()
        known = counts > 0
        out["FamilyKnown"] = counts.to_numpy(dtype=float)
        out["FamilySurvival"] = np.where(known, sums / counts.where(known, 1.0), np.nan)
        return out
