"""Digit Recognizer: the digit CNN adapter, and the pipeline end to end on a slice of the mirror."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kagtools.models import create_model, list_models

MIRROR = Path(os.environ["KAGTOOLS_DATA_DIR"]) / "digit-recognizer"
needs_mirror = pytest.mark.skipif(not (MIRROR / "train.csv").is_file(), reason="no digit-recognizer mirror")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _digits(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic 28 x 28 'digits': class k is a bright bar at row 2 + 2k (easy, so tiny nets learn it)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    img = rng.integers(0, 40, (n, 28, 28))
    for i, k in enumerate(y):
        img[i, 4 + 5 * k: 7 + 5 * k, 4:24] = 255
    return pd.DataFrame(img.reshape(n, -1), columns=[f"pixel{i}" for i in range(784)]), y


def test_digit_cnn_registered_learns_and_pickles_small():
    assert "digit_cnn" in list_models()
    X, y = _digits(256)
    model = create_model("digit_cnn", epochs=3, channels=(8, 16, 32), tta=3, batch_size=32, seed=0, lr=1e-2)
    model.fit(X, y)
    Xv, yv = _digits(128, seed=1)
    proba = model.predict_scores(Xv)
    assert proba.shape == (128, 4)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert (proba.argmax(1) == yv).mean() > 0.9
    blob = pickle.dumps(model)
    assert len(blob) < 200_000  # a CPU float16 state dict, not the module or the learner
    again = pickle.loads(blob)
    np.testing.assert_allclose(again.predict_scores(Xv, tta=1), model.predict_scores(Xv, tta=1), atol=2e-2)


def test_digit_cnn_rejects_wrong_shape():
    with pytest.raises(ValueError, match="784"):
        create_model("digit_cnn")._images(pd.DataFrame(np.zeros((2, 10))))


def _slice(dst: Path, n_train: int, n_test: int) -> Path:
    """A small copy of the mirror with the same layout (train, test, sample submission)."""
    dst.mkdir(parents=True)
    pd.read_csv(MIRROR / "train.csv", nrows=n_train).to_csv(dst / "train.csv", index=False)
    pd.read_csv(MIRROR / "test.csv", nrows=n_test).to_csv(dst / "test.csv", index=False)
    sample = pd.read_csv(MIRROR / "sample_submission.csv", nrows=n_test)
    sample.to_csv(dst / "sample_submission.csv", index=False)
    return dst


@pytest.mark.slow
@needs_mirror
def test_submit_smoke_on_mirror_slice(tmp_path, monkeypatch, capsys):
    from kagtools.cli.main import main

    data = _slice(tmp_path / "data" / "digit-recognizer", 1000, 200)
    monkeypatch.setenv("KAGTOOLS_QUIET", "1")
    main(["submit", "digit-recognizer", "--data-dir", str(data), "--workdir", str(tmp_path / "work"),
          "--profile", "smoke", "--no-eda", "--n-jobs", "1"])
    sub = pd.read_csv(tmp_path / "work" / "submissions" / "digit-recognizer" / "submission.csv")
    assert list(sub.columns) == ["ImageId", "Label"]
    assert sub["ImageId"].tolist() == list(range(1, 201))
    assert sub["Label"].between(0, 9).all() and sub["Label"].nunique() >= 8
    out = capsys.readouterr().out
    assert "cnn" in out or "digit_cnn" in out
    # The CNN run left per-fold OOF rows for every training digit and a sane CV accuracy.
    runs = [p for p in (tmp_path / "work" / "runs" / "digit-recognizer").iterdir() if p.name.startswith("digit_cnn")]
    assert runs
    oof = pd.read_parquet(runs[0] / "oof.parquet")
    assert len(oof) == 1000 and sorted(oof["fold"].unique()) == [0, 1, 2, 3, 4]
    y = pd.read_csv(data / "train.csv", usecols=["label"])["label"].to_numpy()
    pred = oof.sort_values("id")[[f"{c}" for c in oof.columns if c not in ("id", "repeat", "fold")]].to_numpy().argmax(1)
    assert (pred == y).mean() > 0.7  # 3 epochs of the smoke net on 800 digits per fold


@needs_mirror
def test_lr_find_report_writes_png_in_reports(tmp_path):
    from kagtools.workflow.lr_find import lr_find_report

    data = _slice(tmp_path / "data" / "digit-recognizer", 600, 20)
    result, png = lr_find_report("digit-recognizer", "digit_cnn", {"channels": (8, 16, 32), "batch_size": 32},
                                 data_dir=data, workdir=tmp_path / "work", num_it=40)
    assert png == tmp_path / "work" / "reports" / "digit-recognizer" / "lr_find_digit_cnn.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert 1e-5 < result.suggestion < 1.0 and len(result.lrs) >= 10
