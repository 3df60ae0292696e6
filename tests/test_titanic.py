"""Titanic end to end on the real files, through the same CLI that `make titanic-submit` runs."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from kagtools.cli.main import main
from pipelines.titanic import FamilySurvival


def test_family_survival_is_leave_one_out_in_fit_and_full_elsewhere():
    X = pd.DataFrame({"FamilyId": ["a", "a", "a", "b", "c"], "WomanChild": [1.0, 1.0, 0.0, 1.0, 1.0]})
    y = np.array([1, 0, 1, 1, 0])
    fs = FamilySurvival()
    fitted = fs.fit_transform(X, y)
    # row 0 sees row 1 only (row 2 is not a woman/child), row 1 sees row 0, row 3/4 see nobody
    assert fitted["FamilySurvival"].tolist()[:2] == [0.0, 1.0]
    assert np.isnan(fitted["FamilySurvival"].iloc[3]) and fitted["FamilyKnown"].tolist() == [1, 1, 2, 0, 0]
    new = fs.transform(pd.DataFrame({"FamilyId": ["a", "z"], "WomanChild": [1.0, 0.0]}))
    assert new["FamilySurvival"].iloc[0] == 0.5 and np.isnan(new["FamilySurvival"].iloc[1])
    assert "FamilyId" not in new.columns


@pytest.mark.slow
def test_titanic_submit_end_to_end(tmp_path, mirror, capsys):
    assert main(["submit", "titanic", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    sub_path = tmp_path / "submissions" / "titanic" / "submission.csv"
    sub = pd.read_csv(sub_path)
    sample = pd.read_csv(mirror / "titanic" / "gender_submission.csv")
    assert list(sub.columns) == ["PassengerId", "Survived"]
    assert sub["PassengerId"].tolist() == sample["PassengerId"].tolist()
    assert sub["Survived"].dtype == np.int64 and set(sub["Survived"]) <= {0, 1}
    sidecar = json.loads((tmp_path / "submissions" / "titanic" / "submission.json").read_text())
    assert sidecar["cv"] >= 0.83 and sidecar["cv_scheme"]["n_repeats"] == 10
    # The selection-aware estimate of the whole procedure (choice included) is no higher than
    # the naive best CV, and it was made on 50 folds (5 folds x 10 repeats).
    sel = sidecar["selection"]
    assert sel["estimate"] <= sel["naive"] and sel["n_folds"] == 50 and sum(sel["chosen"].values()) == 50
    assert "selection-aware CV accuracy" in out and "gap +- se" in out
    # the printed table: every model, CV mean +- std, the split, the chosen run and the file
    for model in ("logreg", "rf", "et", "lgbm", "hgb", "blend"):
        assert model in out
    assert "StratifiedKFold 5 folds x 10 repeat(s)" in out and "+-" in out and str(sub_path) in out
    eda = (tmp_path / "reports" / "titanic" / "eda.html").read_text()
    assert "data:image/png;base64" in eda and "adversarial" in eda.lower()
    folds = pd.read_csv(tmp_path / "runs" / "titanic" / "folds.csv")
    assert len(folds) == 891 * 10
    # runs leaderboard from the artifacts alone
    assert main(["runs", "titanic", "--workdir", str(tmp_path)]) == 0
    assert "rf-" in capsys.readouterr().out
    # the same command on the same data gives the same submission
    first = sub_path.read_bytes()
    assert main(["submit", "titanic", "--workdir", str(tmp_path), "--no-eda"]) == 0
    assert sub_path.read_bytes() == first


@pytest.mark.slow
def test_single_model_cv_and_submit_a_chosen_run(tmp_path, capsys):
    assert main(["cv", "titanic", "--model", "lgbm", "--params", '{"n_estimators": 50}',
                 "--workdir", str(tmp_path)]) == 0
    run_dir = next((tmp_path / "runs" / "titanic").glob("lgbm-*"))
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["params"] == {"n_estimators": 50} and len(meta["scores"]["folds"]) == 50
    assert main(["submit", "titanic", "--run", run_dir.name, "--workdir", str(tmp_path)]) == 0
    assert (tmp_path / "submissions" / "titanic" / "submission.csv").is_file()


def test_errors_are_one_line_and_exit_2(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "kagtools.cli.main", *args], capture_output=True, text=True,
                              cwd=tmp_path)

    res = run("eda", "nope")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "no competition spec for 'nope'" in res.stderr
    res = run("cv", "titanic", "--model", "lgbm", "--params", "{bad")
    assert res.returncode == 2 and "--params is not valid JSON" in res.stderr and "Traceback" not in res.stderr
    res = run("eda", "titanic", "--data-dir", str(tmp_path / "none"))
    assert res.returncode == 2 and "kagtools download titanic" in res.stderr


@pytest.mark.parametrize("module", ["kagtools", "kagtools.cli.main"])
def test_python_dash_m_knows_the_discovered_commands(module):
    """`python -m kagtools[.cli]` sees the commands of kagtools/commands/ too (tune, kernel...)."""
    proc = subprocess.run([sys.executable, "-m", module, "kernel", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "push" in proc.stdout
