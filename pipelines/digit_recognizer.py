"""Digit Recognizer: a CNN per fold from scratch (with TTA), a random-forest pixel baseline, a blend.

Features are the 784 raw pixels. The CNN (``digit_cnn``) reshapes them to 28 x 28 images; the
forest reads them as columns. ``kagtools submit digit-recognizer`` cross-validates both, blends
their out-of-fold probabilities, and writes ``ImageId,Label`` with 1-based ids.
"""

from __future__ import annotations

import pandas as pd

from kagtools.core.data import CompetitionData
from kagtools.core.engine import TrainingSet
from kagtools.core.spec import CompetitionSpec

__all__ = ["features", "MODELS", "PROFILES", "default_profile"]

PROFILES = {
    # Seconds: proves the flow end to end (tests, CI).
    "smoke": {
        "cnn": ("digit_cnn", {"epochs": 3, "channels": (16, 32, 64), "lr": 1e-2, "tta": 3, "batch_size": 32}),
        "rf": ("rf", {"n_estimators": 30, "max_features": "sqrt"}),
    },
    # Minutes on 2 CPU cores: the default without a GPU.
    "cpu": {
        "cnn": ("digit_cnn", {"epochs": 8, "lr": 4e-3, "tta": 5}),
        "rf": ("rf", {"n_estimators": 200, "max_features": "sqrt"}),
    },
    # For the score: a wider net, longer schedule, mixup.
    "gpu": {
        "cnn": ("digit_cnn", {"epochs": 40, "channels": (32, 64, 128, 256), "batch_size": 256, "lr": 4e-3,
                              "mixup": 0.2, "tta": 11}),
        "lgbm": ("lgbm", {"n_estimators": 400, "learning_rate": 0.1, "num_leaves": 31,
                          "colsample_bytree": 0.3}),
    },
}
MODELS = PROFILES["cpu"]


def default_profile() -> str:
    """``gpu`` when CUDA is available, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def features(data: CompetitionData, spec: CompetitionSpec) -> TrainingSet:
    """The pixel columns of train and test; test ids are Kaggle's 1-based ImageId."""
    pixels = [c for c in data.train.columns if c.startswith("pixel")]
    X = data.train[pixels].astype("float32")
    X_test = test_ids = None
    if data.test is not None:
        X_test = data.test[pixels].astype("float32")
        test_ids = pd.Series(range(1, len(data.test) + 1), name=spec.id_col)
    return TrainingSet(X=X, y=data.train[spec.target], ids=data.train[spec.id_col], X_test=X_test,
                       test_ids=test_ids, name="pixels")
