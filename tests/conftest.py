"""Shared test set-up: offline, quiet, the real data mirror beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_MIRROR = ROOT.parent / "shared" / "data"

os.environ.setdefault("KAGTOOLS_DATA_DIR", str(_MIRROR))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["KAGTOOLS_QUIET"] = "1"
os.environ["KAGTOOLS_NO_TRACK"] = "1"  # MLflow tracking: on only in the tests of it (tests/test_tracking.py)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real competition data (Kaggle's layout); required, never skipped."""
    path = Path(os.environ["KAGTOOLS_DATA_DIR"])
    assert path.is_dir(), f"data mirror not found at {path}: set KAGTOOLS_DATA_DIR"
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a test module (faster than two on a busy 2-core machine), restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_record(run_id: str, **fields):
    """A :class:`RunRecord` for hand-made test runs: what a test does not say gets a neutral default."""
    from kagtools.core.runs import RunRecord

    defaults = {"slug": "syn", "kind": "cv", "model": run_id, "task": "binary", "pred_cols": ["pred"],
                "scores": {"cv": 0.0}, "folds_hash": "h"}
    return RunRecord(run_id=run_id, **{**defaults, **fields})
