"""kagtools as a user installs it: a built wheel, the core install only (no torch), used from a
folder outside the checkout, with the shipped competitions and a project of the user's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

USER_PIPELINE = '''
from kagtools.workflow.pipeline import default_features

MODELS = {"lgbm": ("lgbm", {"n_estimators": 50})}


def features(data, spec):
    ts = default_features(data, spec)
    for X, raw in ((ts.X, data.train), (ts.X_test, data.test)):
        X["name_length"] = raw["Name"].str.len().to_numpy()
    ts.name = "mine-v1"
    return ts
'''


def _run(args: list[str], cwd: Path, env: dict, timeout: int = 900) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel and the core dependencies only."""
    tmp = tmp_path_factory.mktemp("install")
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, cwd=tmp)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    start = time.perf_counter()
    wheel = next(wheels.glob("kagtools-*.whl"))
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", str(wheel)], check=True, cwd=tmp)
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"core install: {seconds:.0f} s, venv {size / 2**20:.0f} MiB")
    return venv


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("KAGTOOLS_DATA_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "HOME": str(tmp), "KAGTOOLS_QUIET": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}


def test_the_core_install_has_no_torch_and_its_models_say_which_extra(core_venv, tmp_path):
    py = core_venv / "bin" / "python"
    out = _run([py, "-c", "import importlib.util as u; print([m for m in ('torch', 'timm', 'transformers', "
                "'dask', 'pipelines') if u.find_spec(m)])"], tmp_path, _env(tmp_path))
    assert out.strip() == "[]"
    assert _run([core_venv / "bin" / "kagtools", "--version"], tmp_path, _env(tmp_path)).startswith("kagtools ")
    proc = subprocess.run([py, "-c", "from kagtools.core.model_registry import create_model; "
                           "create_model('timm_classifier')"], cwd=tmp_path, env=_env(tmp_path), text=True,
                          capture_output=True)
    assert proc.returncode != 0 and "pip install 'kagtools[vision]'" in proc.stderr


def test_shipped_and_own_competitions_from_any_folder(core_venv, tmp_path, mirror):
    kt = str(core_venv / "bin" / "kagtools")
    env = _env(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    # A shipped competition: its spec and pipeline come from the package.
    out = _run([kt, "submit", "titanic", "--data-dir", str(mirror / "titanic"), "--no-eda"], project, env)
    assert "submission:" in out and (project / "submissions" / "titanic" / "submission.csv").is_file()
    # A competition of the user's own: init records the data folder; submit needs no flags.
    (project / "data").mkdir()
    os.symlink(mirror / "titanic", project / "data" / "my-comp")
    out = _run([kt, "init", "my-comp", "--data-dir", "data/my-comp"], project, env)
    spec = (project / "competitions" / "my-comp.toml").read_text()
    assert 'data_dir = "data/my-comp"' in spec
    (project / "pipelines").mkdir()
    (project / "pipelines" / "mine.py").write_text(USER_PIPELINE)
    text = spec.replace('data_dir = "data/my-comp"', 'data_dir = "data/my-comp"\npipeline = "pipelines.mine"')
    (project / "competitions" / "my-comp.toml").write_text(text)
    out = _run([kt, "submit", "my-comp", "--no-eda"], project, env)
    assert (project / "submissions" / "my-comp" / "submission.csv").is_file()
    records = [p.read_text() for p in (project / "runs" / "my-comp").glob("lgbm-*/run.json")]
    assert records and '"name_length"' in records[0] and '"mine-v1"' in records[0]
