import shutil

import pandas as pd
import pytest

from kagtools.core.data import load_competition, read_csv
from kagtools.core.spec import load_spec
from kagtools.errors import KagtoolsError


@pytest.fixture
def titanic_copy(tmp_path, mirror):
    dst = tmp_path / "titanic"
    shutil.copytree(mirror / "titanic", dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def test_reads_the_real_files(mirror):
    data = load_competition(load_spec("titanic"))
    assert data.train.shape == (891, 12) and data.test.shape == (418, 11)
    assert len(data.sample_submission) == 418
    assert data.data_dir == (mirror / "titanic").resolve()


def test_missing_data_dir_says_what_to_do(tmp_path):
    with pytest.raises(KagtoolsError, match="kagtools download titanic"):
        load_competition(load_spec("titanic"), tmp_path / "nowhere")


def test_missing_file(titanic_copy):
    (titanic_copy / "test.csv").unlink()
    with pytest.raises(KagtoolsError, match=r"missing file: .*test\.csv"):
        load_competition(load_spec("titanic"), titanic_copy)


def test_malformed_csv(titanic_copy):
    (titanic_copy / "train.csv").write_text('a,b\n1,"unterminated\n')
    with pytest.raises(KagtoolsError, match=r"train\.csv: malformed CSV"):
        load_competition(load_spec("titanic"), titanic_copy)


def test_empty_csv(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    with pytest.raises(KagtoolsError, match="empty"):
        read_csv(p)


@pytest.mark.parametrize("column", ["PassengerId", "Survived"])
def test_missing_id_or_target_column(titanic_copy, column):
    df = pd.read_csv(titanic_copy / "train.csv").drop(columns=[column])
    df.to_csv(titanic_copy / "train.csv", index=False)
    with pytest.raises(KagtoolsError, match=f"missing column '{column}'"):
        load_competition(load_spec("titanic"), titanic_copy)


def test_nan_target_names_the_row(titanic_copy):
    df = pd.read_csv(titanic_copy / "train.csv")
    df["Survived"] = df["Survived"].astype(float)
    df.loc[5, "Survived"] = None
    df.to_csv(titanic_copy / "train.csv", index=False)
    with pytest.raises(KagtoolsError, match="'Survived' has 1 missing value.*row 7"):
        load_competition(load_spec("titanic"), titanic_copy)


def test_duplicate_ids(titanic_copy):
    df = pd.read_csv(titanic_copy / "train.csv")
    df.loc[3, "PassengerId"] = df.loc[2, "PassengerId"]
    df.to_csv(titanic_copy / "train.csv", index=False)
    with pytest.raises(KagtoolsError, match="duplicates"):
        load_competition(load_spec("titanic"), titanic_copy)


def test_sample_submission_must_match_test(titanic_copy):
    sample = pd.read_csv(titanic_copy / "gender_submission.csv")
    sample.loc[0, "PassengerId"] = 5
    sample.to_csv(titanic_copy / "gender_submission.csv", index=False)
    with pytest.raises(KagtoolsError, match="id '?892'? of .*test.csv is missing from the sample"):
        load_competition(load_spec("titanic"), titanic_copy)
    sample.iloc[:-1].to_csv(titanic_copy / "gender_submission.csv", index=False)
    with pytest.raises(KagtoolsError, match="417 rows but .*test.csv has 418"):
        load_competition(load_spec("titanic"), titanic_copy)
