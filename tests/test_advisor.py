"""The split advisor finds planted groups, a planted time order, imbalance and drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kagtools.advisor import adversarial_auc, advise, compare_schemes, naive_scheme
from kagtools.data import CompetitionData
from kagtools.spec import CompetitionSpec, CVScheme


def grouped(n_users: int = 60, rows: int = 8, seed: int = 0, user_offset: int = 0) -> pd.DataFrame:
    """Rows of users whose target is mostly the user's own level (an entity effect)."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users) + user_offset, rows)
    level = rng.normal(size=n_users + user_offset)[users]
    return pd.DataFrame({"id": np.arange(len(users)) + 10_000 * seed, "user": [f"u{u}" for u in users],
                         "x": rng.normal(size=len(users)), "y": level + 0.3 * rng.normal(size=len(users))})


def test_planted_group_with_new_entities_in_test_gives_group_kfold():
    train, test = grouped(seed=0), grouped(n_users=20, seed=1, user_offset=60).drop(columns="y")
    advice = advise(train, test, id_col="id", target_cols=["y"], task="regression", drift=False)
    assert advice.scheme.splitter == "GroupKFold" and advice.scheme.group == "user"
    assert advice.groups[0].column == "user" and advice.groups[0].target_similarity > 0.8
    assert advice.groups[0].test_overlap == 0.0
    assert any("new entities" in r for r in advice.reasons)


def test_group_shared_with_test_keeps_random_split_but_says_so():
    both = grouped(seed=0)
    train, test = both.iloc[::2], both.iloc[1::2].drop(columns="y")
    advice = advise(train, test, id_col="id", target_cols=["y"], task="regression", drift=False)
    assert advice.scheme.splitter == "KFold" and advice.scheme.group is None
    assert advice.groups[0].column == "user" and advice.groups[0].test_overlap == 1.0
    assert any("--group user" in r for r in advice.reasons)
    forced = advise(train, test, id_col="id", target_cols=["y"], task="regression", drift=False, group="user")
    assert forced.scheme.splitter == "GroupKFold" and forced.scheme.group == "user"


def test_classification_with_groups_is_stratified_group_kfold_and_reports_imbalance():
    train = grouped(seed=0)
    train["y"] = (train["y"] > 1.0).astype(int)  # ~15% positives, clustered by user
    test = grouped(n_users=20, seed=1, user_offset=60).drop(columns="y")
    advice = advise(train, test, id_col="id", target_cols=["y"], task="binary", drift=False)
    assert advice.scheme.splitter == "StratifiedGroupKFold"
    assert advice.scheme.stratify == "y" and advice.scheme.group == "user"
    assert advice.minority_share < 0.3 and any("imbalanced" in r for r in advice.reasons)


def test_planted_time_order_gives_time_series_split():
    rng = np.random.default_rng(0)
    days = pd.date_range("2020-01-01", periods=400, freq="D")
    train = pd.DataFrame({"id": np.arange(300), "date": days[:300].strftime("%Y-%m-%d"),
                          "x": rng.normal(size=300), "y": rng.normal(size=300)})
    test = pd.DataFrame({"id": np.arange(300, 400), "date": days[300:].strftime("%Y-%m-%d"),
                         "x": rng.normal(size=100)})
    advice = advise(train, test, id_col="id", target_cols=["y"], task="regression", drift=False)
    assert advice.scheme.splitter == "TimeSeriesSplit" and advice.scheme.time == "date"
    assert advice.test_after_train is True
    # The same dates drawn at random into train and test: the time is no reason to split by it.
    shuffled = pd.concat([train, test]).sample(frac=1, random_state=0)
    advice = advise(shuffled.iloc[:300], shuffled.iloc[300:].drop(columns="y"), id_col="id", target_cols=["y"],
                    task="regression", drift=False)
    assert advice.scheme.splitter == "KFold" and advice.time_col == "date" and advice.test_after_train is False


def test_adversarial_validation_names_the_drifting_column():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"id": range(400), "a": rng.normal(size=400), "b": rng.normal(size=400), "y": 0})
    test = pd.DataFrame({"id": range(400, 600), "a": rng.normal(size=200), "b": rng.normal(3, 1, size=200)})
    auc, top = adversarial_auc(train, test, id_col="id", target_cols=["y"])
    assert auc > 0.9 and top[0] == "b"
    same = pd.DataFrame({"id": range(400, 600), "a": rng.normal(size=200), "b": rng.normal(size=200)})
    auc, _ = adversarial_auc(train, same, id_col="id", target_cols=["y"])
    assert auc < 0.65


def test_compare_schemes_shows_the_optimism_of_a_naive_split(tmp_path):
    """With a feature that identifies the user, a random split lets a model memorise users."""
    train = grouped(n_users=50, rows=6, seed=0)
    train["user_code"] = train["user"].str[1:].astype(float)  # the entity, as a numeric feature
    test = grouped(n_users=10, rows=6, seed=1, user_offset=50).drop(columns="y")
    test["user_code"] = test["user"].str[1:].astype(float)
    spec = CompetitionSpec(slug="toy", task="regression", id_col="id", target_cols=("y",), metric="rmse",
                           cv=CVScheme(splitter="GroupKFold", n_splits=5, group="user"))
    data = CompetitionData(train=train, test=test, sample_submission=None, data_dir=tmp_path)
    rows = compare_schemes(spec, data, {"naive": naive_scheme(spec), "spec": spec.cv},
                           params={"n_estimators": 60, "min_child_samples": 5})
    scores = {r["scheme"]: r["cv"] for r in rows}
    assert rows[0]["splitter"] == "KFold" and rows[1]["group"] == "user"
    assert scores["naive"] < scores["spec"] - 0.1  # RMSE: the naive split looks far better than it is


@pytest.mark.slow
def test_advisor_on_real_movielens_sees_users_shared_with_test(mirror):
    train = pd.read_csv(mirror / "movielens" / "train.csv").sample(20000, random_state=0)
    test = pd.read_csv(mirror / "movielens" / "test.csv")
    train.insert(0, "Id", np.arange(len(train)))
    advice = advise(train, test, id_col="Id", target_cols=["rating"], task="regression", drift=False)
    assert advice.scheme.splitter == "KFold"
    assert advice.groups and advice.groups[0].column in ("userId", "movieId")
    assert advice.time_col == "timestamp" and advice.test_after_train is False


def test_folds_verb_explains_and_compares(tmp_path, capsys):
    from kagtools.cli import main

    train = grouped(n_users=40, rows=6, seed=0)
    test = grouped(n_users=10, rows=6, seed=1, user_offset=40).drop(columns="y")
    data = tmp_path / "data"
    data.mkdir()
    train.to_csv(data / "train.csv", index=False)
    test.to_csv(data / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "y": 0.0}).to_csv(data / "sample_submission.csv", index=False)
    common = ["--data-dir", str(data), "--workdir", str(tmp_path / "work")]
    assert main(["init", "toy", *common, "--n-repeats", "1"]) == 0
    assert main(["folds", "toy", *common, "--explain", "--compare", "--n-jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "toy: GroupKFold, 5 folds x 1 repeat(s), seed 42, group user" in out
    assert "proposed: GroupKFold" in out and "new entities" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("naive", "spec"))}
    assert "KFold" in lines["naive"] and "user" in lines["spec"]
    assert (tmp_path / "work" / "runs" / "toy" / "folds.csv").is_file()
