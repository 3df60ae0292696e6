"""The EDA report on messy data (issue 19): it never crashes and never misleads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kagtools.analysis.eda import SMALL_LEVEL, build_eda, write_eda
from kagtools.analysis.split_advisor import advise
from kagtools.core.data import CompetitionData
from kagtools.core.spec import CompetitionSpec, CVScheme


def _spec(task: str = "binary", target: str = "y") -> CompetitionSpec:
    metric = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}[task]
    return CompetitionSpec(slug="toy", task=task, id_col="id", target_cols=(target,), metric=metric,
                           cv=CVScheme(seed=7))


def _data(train: pd.DataFrame, test: pd.DataFrame | None = None, tmp_path=None) -> CompetitionData:
    return CompetitionData(train=train, test=test, sample_submission=None, data_dir=tmp_path)


def _line(res, start: str) -> str:
    return next(s for s in res.summary if s.startswith(start))


def titanic_like(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Sex (a string) decides survival; Fare a little; Noise not at all."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], n)
    survived = np.where(sex == "female", rng.random(n) < 0.9, rng.random(n) < 0.15).astype(int)
    return pd.DataFrame({"id": range(n), "Sex": sex, "Fare": rng.exponential(30, n) * (1 + 0.3 * survived),
                         "Noise": rng.normal(size=n), "Port": rng.choice(list("CQS"), n), "y": survived})


def test_string_feature_that_decides_the_target_tops_the_association_ranking(tmp_path):
    res = build_eda(_spec(), _data(titanic_like()))
    line = _line(res, "association with target (bias-corrected Cramér's V)")
    assert line.split(": ", 1)[1].startswith("Sex 0.")
    assoc = res.association["association"]
    assert assoc.index[0] == "Sex" and assoc["Sex"] > 0.6 and assoc["Noise"] < 0.15
    assert set(assoc.index) == {"Sex", "Fare", "Noise", "Port"}  # every feature, numeric or not
    assert ((assoc >= 0) & (assoc <= 1)).all()
    titles = [t for t, _ in res.sections]
    html = dict(res.sections)["Association with the target"]
    assert "Cramér" in html and "0: unrelated" in html and "Association with the target" in titles


def test_regression_ranks_numbers_and_categories_by_one_correlation_ratio():
    rng = np.random.default_rng(1)
    n = 300
    cat = rng.choice(list("abc"), n)
    x = rng.normal(size=n)
    y = np.select([cat == "a", cat == "b"], [0.0, 5.0], 10.0) + 0.5 * x + rng.normal(0, 0.5, n)
    train = pd.DataFrame({"id": range(n), "cat": cat, "x": x, "noise": rng.normal(size=n), "y": y})
    res = build_eda(_spec("regression"), _data(train))
    assert "adjusted correlation ratio η" in _line(res, "association with target")
    assert list(res.association.index[:2]) == ["cat", "x"]
    assert res.levels["cat"]["n"].sum() == n


def test_multiclass_string_labels_get_class_shares_per_level_and_no_label_code_correlation():
    rng = np.random.default_rng(2)
    n = 300
    color = rng.choice(["red", "green", "blue"], n)
    label = np.where(color == "red", "apple", np.where(color == "green", "pear", rng.choice(["plum", "kiwi"], n)))
    train = pd.DataFrame({"id": range(n), "color": color, "w": rng.normal(size=n), "v": rng.normal(size=n),
                          "fruit": label})
    res = build_eda(_spec("multiclass", "fruit"), _data(train))
    assert res.association.index[0] == "color" and res.association.loc["color", "association"] > 0.7
    per_level = dict(res.sections)["fruit per feature level / binned numeric"]
    assert "each class's share" in per_level
    shares = res.levels["color"]
    assert shares.loc["red", "apple"] == 1.0 and shares.loc["green", "pear"] == 1.0
    assert {"apple", "pear", "plum", "kiwi", "n"} <= set(shares.columns) and shares["n"].sum() == n
    # the heatmap correlates the numeric features only: never the labels' alphabetical codes
    heat = [t for t, _ in res.sections if t.startswith("Spearman")]
    assert heat == ["Spearman rank correlation between numeric features"]


def test_per_level_section_shows_counts_and_marks_tiny_levels():
    train = titanic_like()
    train.loc[0, "Port"] = "X"  # a level of one row: its rate is 0 or 1 and means nothing
    res = build_eda(_spec(), _data(train))
    port = res.levels["Port"]
    assert port.loc["X", "n"] == 1 and port["n"].sum() == len(train)
    assert list(port.columns) == ["share of y=1", "n"]
    html = dict(res.sections)["y per feature level / binned numeric"]
    assert "n = the level's rows" in html and f"pale bars: fewer than {SMALL_LEVEL} rows" in html
    assert 'alt="share of y=1 by Sex"' in html


def test_heatmap_has_a_title_and_numbers(tmp_path):
    path, res = write_eda(_spec(), _data(titanic_like()), tmp_path)
    title = "Spearman rank correlation between numeric features and y"
    assert title in [t for t, _ in res.sections]
    page = path.read_text()
    assert f"<h2>{title}</h2>" in page and f'alt="{title}"' in page


def test_adversarial_auc_is_one_figure_in_eda_and_advisor(tmp_path):
    train = titanic_like(seed=3)
    test = titanic_like(200, seed=4).drop(columns="y")
    test["id"] += 1000
    test["Fare"] *= 1.5  # some drift
    spec = _spec()
    res = build_eda(spec, _data(train, test))
    advice = advise(train, test, id_col="id", target_cols=["y"], task="binary", seed=spec.cv.seed)
    assert res.adversarial_auc is not None and res.adversarial_auc == advice.drift_auc
    figure = f"{res.adversarial_auc:.3f}"
    assert figure in _line(res, "adversarial AUC") and figure in advice.explain()


@pytest.mark.parametrize("labels", [("no", "yes"), (False, True), ("N", "Y")])
def test_string_and_bool_binary_labels(labels):
    train = titanic_like()
    train["y"] = pd.Series(np.where(train["y"] == 1, labels[1], labels[0]), dtype=object)
    train.loc[:4, "y"] = None  # a few unknown targets
    res = build_eda(_spec(), _data(train))
    assert _line(res, "target: ").endswith("(5 rows without a target, left out)")
    assert res.association.index[0] == "Sex"
    assert f"share of y={labels[1]}" in res.levels["Sex"].columns


@pytest.mark.parametrize("rows", [0, 1, 2, 3])
def test_tiny_train_gives_a_short_report(tmp_path, rows):
    train = titanic_like(rows) if rows else titanic_like().iloc[:0]
    test = titanic_like(rows, seed=1).drop(columns="y")
    path, res = write_eda(_spec(), _data(train, test), tmp_path)
    assert res.summary[0].startswith(f"toy: train {rows} x 6")
    if rows:
        assert "too few for the association ranking" in dict(res.sections)["Target by feature"]
        assert _line(res, "association with target: not computed")
    else:
        assert _line(res, "target: no known values")
    assert _line(res, "adversarial AUC: not measured") and res.adversarial_auc is None
    assert path.is_file()


def test_constant_target_says_so():
    train = titanic_like()
    train["y"] = 1
    res = build_eda(_spec(), _data(train))
    assert _line(res, "target: ") == "target: 1=100.0%"
    assert "the target is constant (1)" in _line(res, "association with target: not computed")


def test_inf_values_are_counted_and_read_as_missing():
    train = titanic_like()
    train.loc[:2, "Fare"] = np.inf
    train.loc[3, "Noise"] = -np.inf
    res = build_eda(_spec("regression", "Fare"), _data(train))  # infinite targets are left out too
    assert "inf" not in _line(res, "target: mean") and _line(res, "target: mean").endswith("left out)")
    res = build_eda(_spec(), _data(train))
    assert _line(res, "infinite values") == "infinite values (read as missing): Fare 3, Noise 1"
    assert res.association.loc["Fare", "association"] > 0 and "<NA>" in res.levels["Fare"].index


def test_messy_columns_wide_tables_and_odd_ids(tmp_path):
    rng = np.random.default_rng(5)
    n = 60
    train = pd.DataFrame({"id": [1.5, None] + [f"r{i}" for i in range(n - 3)] + ["r0"], "empty": np.nan,
                          "const": 7, "mixed": [1, "a", 2.5, None] * (n // 4),
                          "lists": [[i % 3] for i in range(n)], "flag": rng.random(n) < 0.5,
                          "y": rng.normal(size=n)})
    wide = pd.DataFrame(rng.normal(size=(n, 500)), columns=[f"f{i}" for i in range(500)])
    train = pd.concat([train, wide], axis=1)
    test = train.drop(columns="y").iloc[:20]
    path, res = write_eda(_spec("regression"), _data(train, test), tmp_path)
    assert _line(res, "id 'id'") == "id 'id': 1 duplicated, 1 missing"
    assert len(res.association) == 505 and len(res.levels) == 24
    heat = next(h for t, h in res.sections if t.startswith("Spearman"))
    assert "The 29 numeric features most associated" in heat
    assert "first 200 of 505 columns" in path.read_text()


def test_single_column_train(tmp_path):
    train = pd.DataFrame({"y": ["a", "b"] * 10})
    path, res = write_eda(_spec("binary"), _data(train, pd.DataFrame({"id": range(5)})), tmp_path)
    assert _line(res, "id 'id' is not a column of train")
    assert res.association is not None and res.association.empty and res.levels == {}
    assert _line(res, "target: ") == "target: a=50.0%, b=50.0%"
