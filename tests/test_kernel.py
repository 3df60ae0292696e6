"""Kernels: the bundle, kernel-metadata.json, and the push -> run -> output -> blend round trip
through the real ``kaggle`` client and the fake server, which runs the bundled script in a
simulated /kaggle layout (temporary folders, PYTHONPATH unset, no kagtools install used)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kagtools.cli.main import main
from kagtools.core.environment import kernel_metadata, kernel_slug
from kagtools.core.io import write_json
from kagtools.core.runs import list_runs, load_run, write_run
from kagtools.errors import KagtoolsError
from kagtools.kaggle.kernel import bundle_sources, import_kernel_runs, kernel_log_text
from kagtools.workflow.context import open_context
from tests.conftest import make_record
from tests.fake_kaggle import FakeKaggle, clean_identity, titanic_competition, write_kaggle_json

ROOT = Path(__file__).resolve().parent.parent
METADATA_FIELDS = ["id", "title", "code_file", "language", "kernel_type", "is_private", "enable_gpu", "enable_tpu",
                   "enable_internet", "machine_shape", "competition_sources", "dataset_sources", "model_sources",
                   "kernel_sources", "keywords"]


def test_kernel_metadata_every_field_explicit(tmp_path, capsys):
    work = tmp_path / "work"
    assert main(["kernel", "push", "titanic", "--workdir", str(work), "--owner", "bob", "--dry-run"]) == 0
    meta = json.loads((work / "kernels" / "titanic" / "kernel-metadata.json").read_text())
    assert list(meta) == METADATA_FIELDS
    assert meta == {
        "id": "bob/kagtools-titanic", "title": "kagtools titanic", "code_file": "kernel.py", "language": "python",
        "kernel_type": "script", "is_private": True, "enable_gpu": False, "enable_tpu": False,
        "enable_internet": False, "machine_shape": None, "competition_sources": ["titanic"],
        "dataset_sources": [], "model_sources": [], "kernel_sources": [], "keywords": [],
    }
    assert "built " in capsys.readouterr().out
    assert main(["kernel", "push", "titanic", "--workdir", str(work), "--owner", "bob", "--dry-run", "--t4x2",
                 "--internet", "--public", "--dataset", "bob/weights", "--kernel-source", "bob/features",
                 "--model-source", "google/bert/pyTorch/base/1", "--title", "Titanic GPU run"]) == 0
    meta = json.loads((work / "kernels" / "titanic" / "kernel-metadata.json").read_text())
    assert meta["id"] == "bob/titanic-gpu-run" and meta["title"] == "Titanic GPU run"
    assert meta["enable_gpu"] is True and meta["machine_shape"] == "NvidiaTeslaT4"
    assert meta["enable_internet"] is True and meta["is_private"] is False
    assert meta["dataset_sources"] == ["bob/weights"] and meta["kernel_sources"] == ["bob/features"]
    assert meta["model_sources"] == ["google/bert/pyTorch/base/1"]
    assert kernel_slug("My  Kernel: v2!") == "my-kernel-v2"
    with pytest.raises(KagtoolsError, match="5 characters"):
        kernel_metadata(owner="bob", title="abc", code_file="k.py", competition="titanic")


def test_bundle_holds_what_the_pipeline_imports_and_nothing_else():
    files = bundle_sources(["kagtools.kaggle.kernel", "pipelines.titanic", "kagtools.models.tabular"],
                           packages=("kagtools", "pipelines"))
    for needed in ("kagtools/__init__.py", "kagtools/kaggle/kernel.py", "kagtools/workflow/submit.py",
                   "kagtools/workflow/context.py", "kagtools/core/engine.py", "kagtools/core/folds.py",
                   "kagtools/models/__init__.py", "kagtools/models/tabular.py", "kagtools/ensemble/blend.py",
                   "pipelines/__init__.py", "pipelines/titanic.py"):
        assert needed in files, needed
    # The CLI, the Kaggle client, the torch models and other competitions' pipelines stay home.
    assert not any(name.startswith(("kagtools/cli/", "kagtools/kaggle/api.py", "kagtools/dl/",
                                    "pipelines/us_patent")) for name in files)
    assert all(path.is_file() for path in files.values())


def test_import_renames_runs_remaps_blends_and_refuses_other_folds(tmp_path):
    out, work = tmp_path / "output", tmp_path / "work"
    src = out / "runs" / "titanic"
    ids = pd.Series([1, 2, 3, 4])
    oof = pd.DataFrame({"id": ids, "repeat": 0, "fold": [0, 0, 1, 1], "pred": [0.1, 0.9, 0.2, 0.8]})
    test = pd.DataFrame({"id": [5, 6], "pred": [0.3, 0.7]})
    base = {"kind": "cv", "model": "lgbm", "pred_cols": ["pred"], "folds_hash": "h1", "scores": {"cv": 0.75}}
    write_run(src, make_record("lgbm-1", **base), oof=oof, test=test)
    write_run(src, make_record("blend-mean-2", **{**base, "kind": "blend", "runs": ["lgbm-1"], "weights": {"lgbm-1": 1.0}}), oof=oof, test=test)
    write_run(src, make_record("stale-3", **{**base, "folds_hash": "old"}), oof=oof, test=test)
    write_json(src / "folds.json", {"hash": "h1"})
    (src / "folds.csv").write_text("id,repeat,fold\n")
    runs = import_kernel_runs(out, "titanic", workdir=work, kernel="alice/kagtools-titanic")
    assert sorted(r.run_id for r in runs) == ["kernel-blend-mean-2", "kernel-lgbm-1"]  # the stale run stays out
    blend = load_run(work / "runs" / "titanic", "kernel-blend-mean-2")
    assert blend.record.runs == ["kernel-lgbm-1"] and blend.record.weights == {"kernel-lgbm-1": 1.0}
    assert blend.record.details["source"]["kernel"] == "alice/kagtools-titanic"
    assert (work / "runs" / "titanic" / "folds.json").is_file()  # no local folds: the kernel's are adopted
    assert [r.run_id for r in list_runs(work / "runs" / "titanic", folds_hash="h1")] == [
        "kernel-blend-mean-2", "kernel-lgbm-1"]
    write_json(work / "runs" / "titanic" / "folds.json", {"hash": "h2"})
    with pytest.raises(KagtoolsError, match="made on folds h1 but the local runs on h2"):
        import_kernel_runs(out, "titanic", workdir=work)


def test_kernel_log_text_reads_kaggle_json_logs():
    log = json.dumps([{"stream_name": "stdout", "time": 1.0, "data": "a\n"},
                      {"stream_name": "stderr", "time": 2.0, "data": "b\n"}])
    assert kernel_log_text(log) == "a\nb\n"
    assert kernel_log_text("plain text") == "plain text"


@pytest.fixture
def kaggle_user(tmp_path, monkeypatch) -> Path:
    cfg = clean_identity(tmp_path, monkeypatch)
    write_kaggle_json(cfg)
    return cfg


@pytest.mark.slow
def test_failed_kernel_ends_in_one_message_with_its_log_tail(tmp_path, mirror, kaggle_user, monkeypatch, capsys):
    comp = titanic_competition(mirror)
    train = pd.read_csv(mirror / "titanic" / "train.csv").drop(columns=["Survived"])
    comp.files["train.csv"] = train.to_csv(index=False).encode()  # the kernel will find no target
    work = tmp_path / "work"
    with FakeKaggle(competitions={"titanic": comp}) as fake:
        monkeypatch.setenv("KAGGLE_API_ENDPOINT", fake.url)
        assert main(["kernel", "push", "titanic", "--workdir", str(work)]) == 0
        assert main(["kernel", "output", "titanic", "--workdir", str(work), "--interval", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "kernel alice/kagtools-titanic failed (ERROR: Your notebook hit an unhandled error" in err
    assert "missing column 'Survived'" in err  # from the kernel's own log


@pytest.mark.slow
def test_push_run_output_import_blend_round_trip(tmp_path, mirror, kaggle_user, monkeypatch, capsys):
    work = tmp_path / "work"
    with FakeKaggle(competitions={"titanic": titanic_competition(mirror)}) as fake:
        monkeypatch.setenv("KAGGLE_API_ENDPOINT", fake.url)
        # Push first (it makes the folds and bundles them), then train locally while it runs.
        assert main(["kernel", "push", "titanic", "--workdir", str(work)]) == 0
        out = capsys.readouterr().out
        assert "pushed alice/kagtools-titanic version 1" in out
        folds_hash = json.loads((work / "runs" / "titanic" / "folds.json").read_text())["hash"]
        assert f"folds: {folds_hash}" in out
        assert main(["submit", "titanic", "--workdir", str(work), "--no-eda"]) == 0
        local_sub = (work / "submissions" / "titanic" / "submission.csv").read_bytes()
        capsys.readouterr()
        kernel = fake.kernels["alice/kagtools-titanic"]
        sent = kernel.metadata
        assert sent["text"] == (work / "kernels" / "titanic" / "kernel.py").read_text()
        # A reader sees the spec and the pipeline in plain text first, the zipped library last.
        text = sent["text"]
        assert text.index("class FamilySurvival") < text.index("def main()") < text.index("BUNDLE = (")
        assert 'n_repeats = 10' in text and "kagtools/core/engine.py" in text
        assert sent["enableInternet"] is False and sent["isPrivate"] is True and sent["enableGpu"] is False
        assert sent["competitionDataSources"] == ["titanic"] and sent["language"] == "python"

        assert main(["kernel", "status", "titanic", "--workdir", str(work), "--wait", "--interval", "0.5"]) == 0
        assert "alice/kagtools-titanic: complete" in capsys.readouterr().out
        assert main(["kernel", "output", "titanic", "--workdir", str(work), "--interval", "0.5"]) == 0
        out = capsys.readouterr().out
        assert "imported" in out and "kernel-rf-" in out

        # The kernel ran offline from its own bundle, in a clean folder, and made the same submission.
        output = work / "kernels" / "titanic" / "output"
        assert (output / "submission.csv").read_bytes() == local_sub
        summary = json.loads((output / "kagtools-kernel.json").read_text())
        assert not Path(summary["kagtools_path"]).is_relative_to(ROOT)
        assert "kagtools-bundle-" in summary["kagtools_path"]
        assert summary["seconds"] < 300
        assert not list(output.rglob("models.joblib"))  # only what is imported comes back by default
        log = kernel_log_text(json.dumps(kernel.log))
        assert "best: " in log and f"hash {summary['folds_hash']}" in log

        # Its runs sit beside the local ones, on the same folds, and blend with them.
        ctx = open_context("titanic", workdir=work)
        runs = {r.run_id: r for r in ctx.runs()}
        local_rf = next(r for name, r in runs.items() if name.startswith("rf-"))
        kernel_rf = runs["kernel-" + local_rf.run_id]
        assert kernel_rf.record.folds_hash == local_rf.record.folds_hash == ctx.folds.hash
        assert kernel_rf.record.details["source"]["kernel"] == "alice/kagtools-titanic"
        np.testing.assert_allclose(kernel_rf.oof["pred"], local_rf.oof["pred"])
        local_lgbm = next(r for name, r in runs.items() if name.startswith("lgbm-"))
        assert main(["blend", "titanic", "--workdir", str(work), "--runs", local_lgbm.run_id, kernel_rf.run_id,
                     "--method", "mean"]) == 0
        capsys.readouterr()
        blends = [r for r in ctx.runs() if r.record.kind == "blend"
                  and sorted(r.record.runs) == sorted([local_lgbm.run_id, kernel_rf.run_id])]
        assert len(blends) == 1 and 0.8 < blends[0].record.scores["cv"] < 0.9

        # A code competition takes the kernel's output, at the pushed version.
        assert main(["kernel", "submit", "titanic", "--workdir", str(work), "-m", "from kernel"]) == 0
        assert fake.code_submissions[-1] == {
            "ref": 1, "competition": "titanic", "kernel": "alice/kagtools-titanic", "version": 1,
            "file": "submission.csv", "description": "from kernel"}
    shutil.rmtree(work)
