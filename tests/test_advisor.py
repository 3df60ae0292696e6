"""The split advisor finds planted groups, a planted time order, imbalance and drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kagtools.analysis.split_advisor import (
    adversarial_auc,
    advise,
    compare_schemes,
    leak_probe,
    naive_scheme,
)
from kagtools.core.data import CompetitionData
from kagtools.core.spec import CompetitionSpec, CVScheme
from kagtools.workflow.pipeline import build_training_set


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
    assert advice.scheme.splitter == "StratifiedGroupKFold" and advice.scheme.group == "user"
    assert advice.scheme.stratify == "y"  # a continuous target: stratified on its quantile bins
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
    assert advice.groups[0].leak is None  # the test settles it: no probe unless asked
    probed = advise(train, test, id_col="id", target_cols=["y"], task="regression", drift=False, probe=True)
    assert probed.scheme.splitter == "KFold" and probed.groups[0].leak > 0.3
    assert any("rewards memorising these entities, which the test rewards too" in r for r in probed.reasons)
    forced = advise(train, test, id_col="id", target_cols=["y"], task="regression", drift=False, group="user")
    assert forced.scheme.splitter == "StratifiedGroupKFold" and forced.scheme.group == "user"


def test_planted_group_is_proposed_by_the_leak_probe_when_the_test_cannot_tell():
    """A 30-row visible test shares every user, but is too small to stand for the scored one:
    the probe sees a random split reward memorising users, and proposes the grouping."""
    train = grouped(seed=0)
    test = train.sample(30, random_state=0).drop(columns="y")
    advice = advise(train, test, id_col="id", target_cols=["y"], task="regression", drift=False)
    assert advice.scheme.splitter == "StratifiedGroupKFold" and advice.scheme.group == "user"
    g = advice.groups[0]
    assert g.test_overlap == 1.0 and g.leak > 0.3 and g.probe[0] > g.probe[1] + 0.3
    assert any("too small" in r and "memorise entities" in r for r in advice.reasons)
    # No test at all: the probe decides the same way.
    assert advise(train, None, id_col="id", target_cols=["y"], task="regression").scheme.group == "user"
    # The same users with no entity effect: nothing to memorise, so no grouping.
    rng = np.random.default_rng(1)
    flat = train.assign(y=train["x"] + rng.normal(size=len(train)))
    advice = advise(flat, test, id_col="id", target_cols=["y"], task="regression", drift=False)
    assert advice.scheme.splitter == "KFold" and advice.groups[0].column == "user"
    assert advice.groups[0].leak < 0.02 and any("no leak worth grouping for" in r for r in advice.reasons)


def test_leak_probe_on_classes_and_a_categorical_entity():
    train = grouped(seed=0)
    train["y"] = np.where(train["y"] > 0.5, "hi", np.where(train["y"] < -0.5, "lo", "mid"))
    scores = leak_probe(train, id_col="id", target_cols=["y"], task="multiclass", groups=["user"])
    assert scores[None][0] > scores["user"][0] + 0.2


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
    auc, gain = adversarial_auc(train, test, id_col="id", target_cols=["y"])
    assert auc > 0.9 and gain.index[0] == "b" and gain["b"] > 0
    same = pd.DataFrame({"id": range(400, 600), "a": rng.normal(size=200), "b": rng.normal(size=200)})
    auc, _ = adversarial_auc(train, same, id_col="id", target_cols=["y"])
    assert auc < 0.65


def test_eda_and_split_advisor_report_the_same_drift_auc(tmp_path):
    """One adversarial validation: the EDA report and `kagtools folds --explain` print one figure."""
    from kagtools.analysis.eda import build_eda

    rng = np.random.default_rng(1)
    train = pd.DataFrame({"id": range(300), "a": rng.normal(size=300), "c": rng.choice(list("pqr"), 300),
                          "y": rng.normal(size=300)})
    test = pd.DataFrame({"id": range(300, 450), "a": rng.normal(0.5, 1, size=150),
                         "c": rng.choice(list("pqrs"), 150)})
    spec = CompetitionSpec(slug="toy", task="regression", id_col="id", target_cols=("y",), metric="rmse",
                           cv=CVScheme(seed=7))
    data = CompetitionData(train=train, test=test, sample_submission=None, data_dir=tmp_path)
    report = build_eda(spec, data)
    advice = advise(train, test, id_col="id", target_cols=["y"], task="regression", seed=spec.cv.seed)
    assert report.adversarial_auc == advice.drift_auc > 0.55


def test_compare_schemes_shows_the_optimism_of_a_naive_split(tmp_path):
    """With a feature that identifies the user, a random split lets a model memorise users."""
    train = grouped(n_users=50, rows=6, seed=0)
    train["user_code"] = train["user"].str[1:].astype(float)  # the entity, as a numeric feature
    test = grouped(n_users=10, rows=6, seed=1, user_offset=50).drop(columns="y")
    test["user_code"] = test["user"].str[1:].astype(float)
    spec = CompetitionSpec(slug="toy", task="regression", id_col="id", target_cols=("y",), metric="rmse",
                           cv=CVScheme(splitter="GroupKFold", n_splits=5, group="user"))
    data = CompetitionData(train=train, test=test, sample_submission=None, data_dir=tmp_path)
    rows = compare_schemes(spec, data, build_training_set(spec, data), {"naive": naive_scheme(spec), "spec": spec.cv},
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


@pytest.mark.slow
def test_advisor_groups_real_us_patent_by_anchor(mirror):
    """Issue 5's lesson: a random split leaks anchors; the 36-row visible test shares them all,
    but cannot stand for the scored test, and the probe sees the leak."""
    slug = "us-patent-phrase-to-phrase-matching"
    train = pd.read_csv(mirror / slug / "train.csv")
    test = pd.read_csv(mirror / slug / "test.csv")
    advice = advise(train, test, id_col="id", target_cols=["score"], task="regression", drift=False)
    # The shipped spec's split, found from the files alone.
    assert (advice.scheme.splitter, advice.scheme.group, advice.scheme.stratify) == (
        "StratifiedGroupKFold", "anchor", "score")
    anchor = next(g for g in advice.groups if g.column == "anchor")
    assert anchor.test_overlap == 1.0 and anchor.leak >= 0.03
    assert any("too small" in r and "leak" in r for r in advice.reasons)


def test_folds_verb_explains_and_compares(tmp_path, capsys):
    from kagtools.cli.main import main

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
    assert "toy: StratifiedGroupKFold, 5 folds x 1 repeat(s), seed 42, stratify y, group user" in out
    assert "proposed: StratifiedGroupKFold" in out and "new entities" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("naive", "spec"))}
    assert "KFold" in lines["naive"] and "user" in lines["spec"]
    assert (tmp_path / "work" / "runs" / "toy" / "folds.csv").is_file()
