"""The command line as a Kaggle user meets it: --version, "did you mean", help, the models table,
credentials checked before work, and read-only commands that need no data folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kagtools.cli.main import build_parser, main, version
from kagtools.cli.options import COMMANDS
from kagtools.errors import KagtoolsError
from tests.fake_kaggle import clean_identity

KERNEL_ACTIONS = ("push", "status", "output", "submit")


def _exit(argv: list[str]) -> int:
    """``main(argv)``'s exit status, also when argparse exits (--help, --version, bad choices)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_version(capsys):
    assert _exit(["--version"]) == 0
    out = capsys.readouterr().out
    assert out == f"kagtools {version()}\n" and version()[0].isdigit()


@pytest.mark.parametrize(("argv", "suggestion"), [
    (["sumbit", "titanic"], "did you mean 'submit'?"),
    (["kernel", "pusj", "titanic"], "did you mean 'push'?"),
    (["submit", "titanik"], "did you mean 'titanic'?"),
    (["kernel", "push", "titanik", "--dry-run", "--owner", "bob"], "did you mean 'titanic'?"),
    (["cv", "titanic", "--model", "lgmb"], "did you mean 'lgbm'?"),
    (["blend", "titanic", "--method", "hill_clim"], "did you mean 'hill_climb'?"),
])
def test_misspellings_suggest_the_closest_name(argv, suggestion, tmp_path, capsys):
    assert _exit([*argv, "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert suggestion in err and len(err.splitlines()) <= 2  # argparse's usage line, then one error line
    assert not (tmp_path / "runs").exists()  # failed before reading any data


def test_every_verb_has_clean_help_with_a_description_and_an_example(capsys):
    assert _exit(["--help"]) == 0
    top = capsys.readouterr().out
    assert "``" not in top and "kagtools <verb> <slug>" in top and "--version" in top
    helps = {}
    for verb in COMMANDS.names():
        assert _exit([verb, "--help"]) == 0
        helps[verb] = capsys.readouterr().out
    for action in KERNEL_ACTIONS:
        assert _exit(["kernel", action, "--help"]) == 0
        helps[f"kernel {action}"] = capsys.readouterr().out
    for name, text in helps.items():
        usage, description = text.split("\n\n")[:2]
        assert description.strip() and not description.startswith(("positional", "options")), name
        assert "\nexample:\n  kagtools " + name.split()[0] in text, name
        assert "``" not in text, name
    assert "--dry-run builds\nthe folder only and needs no Kaggle credentials" in helps["kernel push"]
    assert build_parser().prog == "kagtools"


def test_models_table_names_tasks_extra_and_purpose_without_torch():
    code = ("import sys; from kagtools.cli.main import main; main(['models']); "
            "print(sorted(m for m in ('torch', 'timm', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[-1] == "[]"
    assert lines[0].split() == ["model", "tasks", "extra", "what", "it", "is"]
    rows = {line.split()[0]: line for line in lines[2:-2]}
    assert "core" in rows["lgbm"] and "LightGBM" in rows["lgbm"] and "binary, multiclass, regression" in rows["lgbm"]
    assert "vision" in rows["digit_cnn"] and "CNN" in rows["digit_cnn"]
    assert "recsys" in rows["cf_dot"] and "regression" in rows["cf_dot"]  # tasks inherited from CFModel
    assert "text" in rows["hf_group_cross_encoder"] and "regression" in rows["hf_group_cross_encoder"]


def test_models_table_reads_lazy_models_as_their_classes_say():
    """The source-read tasks and descriptions of the torch models match the imported classes."""
    from kagtools.cli.cmd_flow import _class_facts, _first_sentence
    from kagtools.core.model_registry import LAZY_MODELS, get_model_class

    pytest.importorskip("torch")
    for name, module in LAZY_MODELS.items():
        tasks, doc = _class_facts(module, name)
        cls = get_model_class(name)
        assert tasks == tuple(cls.tasks), name
        assert _first_sentence(doc) == _first_sentence(cls.__doc__), name
    assert main(["models", "lgmb"]) == 2


def test_kernel_dry_run_needs_no_credentials(tmp_path, monkeypatch, capsys):
    clean_identity(tmp_path, monkeypatch)
    work = tmp_path / "work"
    assert main(["kernel", "push", "titanic", "--workdir", str(work), "--dry-run"]) == 0
    meta = json.loads((work / "kernels" / "titanic" / "kernel-metadata.json").read_text())
    assert meta["id"] == "your-kaggle-username/kagtools-titanic"
    out = capsys.readouterr().out
    assert "placeholder owner 'your-kaggle-username'" in out
    # A real push still needs the credentials, and says so in one line.
    assert main(["kernel", "push", "titanic", "--workdir", str(work)]) == 2
    assert "no Kaggle credentials found" in capsys.readouterr().err


def test_to_kaggle_checks_credentials_before_any_training(tmp_path, monkeypatch, capsys):
    clean_identity(tmp_path, monkeypatch)

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the credentials")

    monkeypatch.setattr("kagtools.workflow.submit.submit", no_training)
    work = tmp_path / "work"
    assert main(["submit", "titanic", "--workdir", str(work), "--profile", "smoke", "--to-kaggle"]) == 2
    assert "no Kaggle credentials found" in capsys.readouterr().err
    assert not list(work.rglob("run.json"))


def test_submit_file_is_validated_against_the_sample(tmp_path, mirror, capsys):
    mine = tmp_path / "mine.csv"
    mine.write_bytes((mirror / "titanic" / "gender_submission.csv").read_bytes())
    assert main(["submit", "titanic", "--file", str(mine), "--workdir", str(tmp_path)]) == 0
    assert f"{mine}: valid (418 rows" in capsys.readouterr().out
    lines = mine.read_text().splitlines()
    mine.write_text("\n".join(lines[:-1]) + "\n")  # one row short
    assert main(["submit", "titanic", "--file", str(mine), "--workdir", str(tmp_path)]) == 2
    assert "417 rows, the sample submission has 418" in capsys.readouterr().err
    mine.write_text("\n".join([lines[0]] + [line.replace(",0", ",0.3") for line in lines[1:]]) + "\n")
    assert main(["submit", "titanic", "--file", str(mine), "--workdir", str(tmp_path)]) == 2
    assert "'Survived' must be integers" in capsys.readouterr().err
    assert main(["submit", "titanic", "--file", str(mine), "--run", "x", "--workdir", str(tmp_path)]) == 2


def test_runs_and_blend_read_only_artifacts(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    assert main(["cv", "titanic", "--model", "logreg", "--workdir", str(work), "--n-jobs", "1"]) == 0
    assert main(["cv", "titanic", "--model", "lgbm", "--params", '{"n_estimators": 30}', "--workdir", str(work),
                 "--n-jobs", "1"]) == 0
    run_id = next((work / "runs" / "titanic").glob("logreg-*/run.json")).parent.name
    with_data = main(["blend", "titanic", "--workdir", str(work), "--method", "mean"])
    blend_json = next((work / "runs" / "titanic").glob("blend-mean-*/run.json"))
    blend_bytes = (blend_json.parent / "oof.parquet").read_bytes()
    capsys.readouterr()
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("KAGTOOLS_DATA_DIR", str(empty))
    monkeypatch.chdir(tmp_path)

    def no_data(*args, **kwargs):
        raise KagtoolsError("no data for 'titanic'")

    monkeypatch.setattr("kagtools.workflow.context.load_competition", no_data)
    assert main(["runs", "titanic", "--workdir", str(work)]) == 0
    out = capsys.readouterr().out
    assert run_id in out and "StratifiedKFold 5 folds x 10 repeat(s)" in out
    # blend: the recorded targets stand in for the data; the same blend as with the data folder.
    assert with_data == 0
    assert main(["blend", "titanic", "--workdir", str(work), "--method", "mean", "rank_mean"]) == 0
    assert "blending from the recorded runs and targets" in capsys.readouterr().out
    assert (blend_json.parent / "oof.parquet").read_bytes() == blend_bytes
    assert main(["blend", "titanic", "--workdir", str(work), "--method", "stack_lgbm_features"]) == 2
    assert "needs the training set's features" in capsys.readouterr().err
    # Commands that train still need the data, and say so.
    assert main(["cv", "titanic", "--model", "rf", "--workdir", str(work)]) == 2
    assert "no data for 'titanic'" in capsys.readouterr().err
