"""A project folder of the user's own: init/new, spec and pipeline lookup, reuse of unchanged
runs, and the one-line message of a missing extra."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from kagtools.cli.main import main
from kagtools.core.extras import extra_for, needs_extra
from kagtools.errors import KagtoolsError
from kagtools.workflow.context import open_context, run_model, run_pipeline_models


def _competition(folder, n=120, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    x = rng.normal(size=n + 40)
    frame = pd.DataFrame({"id": np.arange(n + 40), "x": x, "z": rng.normal(size=n + 40),
                          "y": (x + 0.5 * rng.normal(size=n + 40) > 0).astype(int)})
    frame.iloc[:n].to_csv(folder / "train.csv", index=False)
    frame.iloc[n:].drop(columns="y").to_csv(folder / "test.csv", index=False)
    frame.iloc[n:][["id"]].assign(y=0).to_csv(folder / "sample_submission.csv", index=False)
    return folder


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder, the working directory, with its data in ./data/my-comp."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAGTOOLS_DATA_DIR", raising=False)
    _competition(tmp_path / "data" / "my-comp")
    return tmp_path


def test_new_writes_a_spec_with_its_data_folder_and_a_pipeline_that_runs(project, capsys):
    assert main(["new", "my-comp", "--pipeline", "--n-repeats", "1", "--submission", "labels"]) == 0
    spec_text = (project / "competitions" / "my-comp.toml").read_text()
    assert 'data_dir = "data/my-comp"' in spec_text and 'pipeline = "pipelines.my_comp"' in spec_text
    module = (project / "pipelines" / "my_comp.py").read_text()
    assert "def features(" in module and "MODELS = " in module
    # The project's own pipeline is what runs, from any working directory, with no flags.
    (project / "pipelines" / "my_comp.py").write_text(
        module.replace('MODELS = dict(DEFAULT_MODELS)', 'MODELS = {"lgbm": ("lgbm", {"n_estimators": 20})}')
        .replace('ts.name = "my-comp-v1"', 'ts.X["twice"] = ts.X["x"] * 2\n    ts.X_test["twice"] = ts.X_test["x"] * 2\n'
                 '    ts.name = "mine-v2"'))
    ctx = open_context("my-comp", workdir=project)
    runs = run_pipeline_models(ctx)
    assert [r.record.model for r in runs] == ["lgbm"]
    assert runs[0].record.features == "mine-v2" and "twice" in runs[0].record.columns
    assert main(["init", "my-comp"]) != 0
    assert "exists; pass --force" in capsys.readouterr().err


def test_a_project_pipeline_is_found_before_the_shipped_one_of_the_same_name(project):
    (project / "competitions").mkdir()
    (project / "competitions" / "mine.toml").write_text(
        'slug = "mine"\ntask = "binary"\nid_col = "id"\ntarget_cols = ["y"]\nmetric = "accuracy"\n'
        'data_dir = "data/my-comp"\npipeline = "pipelines.titanic"\n[cv]\nn_splits = 3\nstratify = "y"\n')
    (project / "pipelines").mkdir()
    (project / "pipelines" / "titanic.py").write_text(
        "from kagtools.workflow.pipeline import default_features as features\n"
        'MODELS = {"logreg": ("logreg", {})}\n')
    ctx = open_context("mine", workdir=project)
    assert ctx.pipeline.__file__ == str((project / "pipelines" / "titanic.py").resolve())
    assert list(ctx.pipeline.MODELS) == ["logreg"]


def test_a_missing_pipeline_file_names_where_it_looked(project):
    (project / "competitions").mkdir()
    (project / "competitions" / "mine.toml").write_text(
        'slug = "mine"\ntask = "binary"\nid_col = "id"\ntarget_cols = ["y"]\nmetric = "accuracy"\n'
        'pipeline = "pipelines.nowhere"\n')
    with pytest.raises(KagtoolsError, match=r"nowhere\.py in"):
        _ = open_context("mine", workdir=project).pipeline


def test_unchanged_runs_are_reused_and_changed_data_retrains(project):
    main(["init", "my-comp", "--n-repeats", "1", "--submission", "labels"])
    ctx = open_context("my-comp", workdir=project)
    first = run_model(ctx, "logreg", {"C": 1.0}, reuse=True)
    again = run_model(open_context("my-comp", workdir=project), "logreg", {"C": 1.0}, reuse=True)
    assert again.record.inputs == first.record.inputs
    assert again.record.provenance["created"] == first.record.provenance["created"]  # not retrained
    # One feature value of test.csv changes: same run id, new inputs, retrained.
    test = pd.read_csv(project / "data" / "my-comp" / "test.csv")
    test.loc[0, "z"] += 1.0
    test.to_csv(project / "data" / "my-comp" / "test.csv", index=False)
    changed = run_model(open_context("my-comp", workdir=project), "logreg", {"C": 1.0}, reuse=True)
    assert changed.run_id == first.run_id and changed.record.inputs != first.record.inputs


def test_a_missing_extra_is_one_line_naming_the_pip_install():
    with pytest.raises(KagtoolsError, match=r"model 'x' needs timm.*pip install 'kagtools\[vision\]'"):
        with needs_extra("model 'x'", "vision"):
            raise ModuleNotFoundError("No module named 'timm'", name="timm")
    with pytest.raises(KagtoolsError, match=r"pip install 'kagtools\[text\]'"):
        with needs_extra("pipeline 'p'"):
            raise ModuleNotFoundError("No module named 'transformers'", name="transformers")
    with pytest.raises(ModuleNotFoundError):  # not an optional package: a real bug, raised as it is
        with needs_extra("model 'x'"):
            raise ModuleNotFoundError("No module named 'nonexistent'", name="nonexistent")
    assert extra_for("torch") == "all" and extra_for("dask.distributed") == "scale"


def test_scale_features_without_their_extra_say_which_pip_install(monkeypatch):
    import importlib.util

    from kagtools.core.parallel import scheduler_context
    from kagtools.tuning.storage import open_storage

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask were not installed
    with pytest.raises(KagtoolsError, match=r"pip install 'kagtools\[scale\]'"):
        with scheduler_context("tcp://127.0.0.1:1"):
            pass
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n.startswith("psycopg") else real(n, *a))
    with pytest.raises(KagtoolsError, match=r"PostgreSQL study storage needs psycopg2.*kagtools\[scale\]"):
        open_storage("postgresql://u:p@127.0.0.1:1/db")
