import numpy as np
import pandas as pd
import pytest

from kagtools.core.folds import ensure_folds, make_folds
from kagtools.core.spec import CVScheme, parse_spec
from kagtools.errors import KagtoolsError


def _spec(**cv):
    return parse_spec({"slug": "s", "task": "binary", "id_col": "id", "target_cols": ["y"],
                       "metric": {"name": "accuracy"}, "cv": cv})


@pytest.fixture
def train():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(200) + 1000, "y": (rng.random(200) < 0.3).astype(int),
                         "g": rng.integers(0, 25, 200), "t": rng.permutation(200)})


def test_stratified_repeated_folds_partition_rows(train):
    spec = _spec(splitter="StratifiedKFold", n_splits=5, n_repeats=3, seed=1, stratify="y")
    table = make_folds(train, spec)
    assert len(table) == 600 and set(table["repeat"]) == {0, 1, 2}
    for _r, part in table.groupby("repeat"):
        assert sorted(part["id"]) == sorted(train["id"])
        assert set(part["fold"]) == set(range(5))
        rates = train.set_index("id").loc[part["id"], "y"].groupby(part["fold"].to_numpy()).mean()
        assert rates.max() - rates.min() < 0.06  # stratified
    first, second = (table[table.repeat == r]["fold"].to_numpy() for r in (0, 1))
    assert (first != second).any()  # repeats are reshuffled


def test_group_folds_never_split_a_group(train):
    spec = _spec(splitter="StratifiedGroupKFold", n_splits=4, stratify="y", group="g")
    table = make_folds(train, spec)
    folds_per_group = table.assign(g=train["g"].to_numpy()).groupby("g")["fold"].nunique()
    assert (folds_per_group == 1).all()


def test_splitter_needs_its_columns(train):
    with pytest.raises(KagtoolsError, match="needs cv.group"):
        make_folds(train, _spec(splitter="GroupKFold"))
    with pytest.raises(KagtoolsError, match="unknown cv.splitter 'Nope'"):
        make_folds(train, _spec(splitter="Nope"))
    with pytest.raises(KagtoolsError, match="'zz' is not in train.csv"):
        make_folds(train, _spec(splitter="StratifiedKFold", stratify="zz"))


def test_folds_are_reused_then_rebuilt_when_data_or_scheme_change(train, tmp_path):
    spec = _spec(splitter="StratifiedKFold", n_splits=5, stratify="y", seed=3)
    a = ensure_folds(train, spec, tmp_path)
    mtime = (tmp_path / "folds.csv").stat().st_mtime_ns
    b = ensure_folds(train, spec, tmp_path)
    assert a.hash == b.hash and (tmp_path / "folds.csv").stat().st_mtime_ns == mtime
    other = ensure_folds(train, _spec(splitter="StratifiedKFold", n_splits=4, stratify="y", seed=3), tmp_path)
    assert other.hash != a.hash and other.n_splits == 4
    changed = train.copy()
    changed.loc[0, "y"] = 1 - changed.loc[0, "y"]
    rebuilt = ensure_folds(changed, _spec(splitter="StratifiedKFold", n_splits=4, stratify="y", seed=3), tmp_path)
    assert rebuilt.scheme == other.scheme
    meta = (tmp_path / "folds.json").read_text()
    assert "data" in meta


def test_same_seed_same_folds(train, tmp_path):
    spec = _spec(splitter="StratifiedKFold", n_splits=5, stratify="y", seed=7)
    assert make_folds(train, spec).equals(make_folds(train, spec))


def test_cv_scheme_roundtrip():
    assert CVScheme(**CVScheme().as_dict()) == CVScheme()


def test_time_series_folds_train_on_every_earlier_row():
    """TimeSeriesSplit: the first block is never validated but is trained on by every fold."""
    from kagtools.core.folds import Folds

    train = pd.DataFrame({"id": np.arange(100) + 1000, "y": np.arange(100) % 2,
                          "t": np.random.default_rng(0).permutation(100)})
    spec = _spec(splitter="TimeSeriesSplit", n_splits=4, time="t")
    table = make_folds(train, spec)
    folds = Folds(table, spec.cv.as_dict(), "h")
    t = train["t"].to_numpy()
    seen = []
    for _r, f, tr, va in folds.splits(train["id"]):
        assert len(tr) > 0 and t[tr].max() < t[va].min()  # the past only
        assert set(np.flatnonzero(t < t[va].min())) == set(tr)  # all of the past
        seen.append(f)
    assert seen == [0, 1, 2, 3] and (table["fold"] == -1).sum() == 20
