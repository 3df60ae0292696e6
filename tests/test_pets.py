"""Oxford-IIIT Pets: file-name labels, the timm adapter with the real EfficientNet-Lite0 weights,
and the pipeline end to end on the mirror photos (a small test layout is written to a tmp dir)."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kagtools.errors import KagtoolsError
from pipelines.oxford_iiit_pet import breed_from_filename

MIRROR = Path(os.environ["KAGTOOLS_DATA_DIR"]) / "oxford-iiit-pet"
needs_mirror = pytest.mark.skipif(not (MIRROR / "labels.csv").is_file(), reason="no oxford-iiit-pet mirror")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_breed_from_filename():
    assert breed_from_filename("great_pyrenees_173.jpg") == "great_pyrenees"
    assert breed_from_filename("Abyssinian_12.jpg") == "Abyssinian"
    with pytest.raises(KagtoolsError, match="not <breed>"):
        breed_from_filename("cat.jpg")


def _pets(n_breeds: int):
    lab = pd.read_csv(MIRROR / "labels.csv")
    keep = sorted(lab["breed"].unique())[:n_breeds]
    lab = lab[lab["breed"].isin(keep)].reset_index(drop=True)
    X = pd.DataFrame({"path": [str(MIRROR / "images" / n) for n in lab["image"]]})
    y = lab["breed"].map({b: i for i, b in enumerate(keep)}).to_numpy()
    held_out = np.arange(len(lab)) % 3 == 2  # the third photo of every breed
    return X, y, held_out


@pytest.mark.slow
@needs_mirror
def test_pretrained_weights_beat_training_from_scratch_on_held_out_photos():
    from kagtools.models import create_model

    X, y, ho = _pets(37)  # 74 photos train, 37 held out (chance: 0.027)
    acc = {}
    for pretrained in ("efficientnet_lite0", None):
        # Pretrained: 8 epochs of the head on the frozen body; scratch: the same 8 epochs, all layers.
        model = create_model("timm_classifier", pretrained=pretrained, sizes=(64,), epochs=0, freeze_epochs=8,
                             batch_size=16, lr=5e-3, tta=1, n_classes=37, seed=0)
        model.fit(X[~ho], y[~ho])
        acc[pretrained] = float((model.predict(X[ho]) == y[ho]).mean())
    # At 64 px with 2 photos per breed the pretrained model gets ~0.2; scratch stays near chance.
    assert acc["efficientnet_lite0"] >= acc[None] + 0.1, acc
    blob = pickle.dumps(model)
    assert len(blob) < 8_000_000  # float16 state dict, ~3.4M parameters


def _test_layout(dst: Path) -> Path:
    """The mirror as a Kaggle-like layout with a test set. The mirror has 3 photos per breed, the
    least that 3-fold stratified CV takes, so the test photos are copies of 12 of them under new
    names (this checks the flow and the submission's format, not accuracy)."""
    lab = pd.read_csv(MIRROR / "labels.csv")
    dst.mkdir(parents=True)
    shutil.copytree(MIRROR / "images", dst / "images")
    lab.to_csv(dst / "labels.csv", index=False)
    test = pd.DataFrame({"image": [f"test_{i:04d}.jpg" for i in range(12)]})
    for name, src in zip(test["image"], lab["image"].iloc[::9], strict=False):
        shutil.copy(MIRROR / "images" / src, dst / "images" / name)
    test.to_csv(dst / "test.csv", index=False)
    test.assign(breed="Abyssinian").to_csv(dst / "sample_submission.csv", index=False)
    return dst


@pytest.mark.slow
@needs_mirror
def test_submit_smoke_writes_breed_submission(tmp_path, monkeypatch):
    from kagtools.cli.main import main

    data = _test_layout(tmp_path / "data" / "oxford-iiit-pet")
    monkeypatch.setenv("KAGTOOLS_QUIET", "1")
    main(["submit", "oxford-iiit-pet", "--data-dir", str(data), "--workdir", str(tmp_path / "work"),
          "--profile", "smoke", "--no-eda", "--n-jobs", "1"])
    sub = pd.read_csv(tmp_path / "work" / "submissions" / "oxford-iiit-pet" / "submission.csv")
    test = pd.read_csv(data / "test.csv")
    assert list(sub.columns) == ["image", "breed"]
    assert sorted(sub["image"]) == sorted(test["image"])
    assert set(sub["breed"]) <= set(pd.read_csv(data / "labels.csv")["breed"])
    run = next((tmp_path / "work" / "runs" / "oxford-iiit-pet").glob("timm_classifier*"))
    oof = pd.read_parquet(run / "oof.parquet")
    assert len(oof) == 111 and sorted(oof["fold"].unique()) == [0, 1, 2]
    assert (run / "models.joblib").stat().st_size < 30_000_000  # three small fold models


@needs_mirror
def test_mirror_without_test_set_trains_but_has_no_test_rows():
    from kagtools.core.data import load_competition
    from kagtools.core.spec import load_spec
    from kagtools.workflow.pipeline import build_training_set

    spec = load_spec("oxford-iiit-pet")
    data = load_competition(spec, MIRROR)
    assert data.test is None and data.sample_submission is None
    tset = build_training_set(spec, data)
    assert len(tset.X) == 111 and tset.X_test is None
    assert tset.y.nunique() == 37
