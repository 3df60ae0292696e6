"""Optional dependencies: which pip extra brings what, and one line when one is missing.

The core install (``pip install kagtools``) is for tabular work: pandas, scikit-learn,
LightGBM, Optuna and the Kaggle client, no torch. Deep learning and scale-out come with extras:

=========  ==========================================  ====================================
extra      packages                                    for
=========  ==========================================  ====================================
vision     torch, torchvision, timm, pillow            image models (timm, the digits CNN)
text       torch, transformers                         cross-encoders, phrase embeddings
recsys     torch                                       the torch collaborative filters
tabular    torch                                       the tabular neural net (tabular_nn)
gbm        catboost, xgboost                           the CatBoost and XGBoost models
scale      dask[distributed], psycopg2-binary          Dask folds, PostgreSQL tuning studies
tracking   mlflow, tensorboard                         MLflow experiment tracking, TensorBoard curves
all        every extra above
=========  ==========================================  ====================================
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kagtools.errors import KagtoolsError

__all__ = ["EXTRAS", "MODEL_EXTRAS", "extra_for", "needs_extra"]

#: extra -> the top-level modules it installs
EXTRAS: dict[str, tuple[str, ...]] = {
    "vision": ("torch", "torchvision", "timm", "PIL"),
    "text": ("torch", "transformers", "tokenizers", "safetensors"),
    "recsys": ("torch",),
    "tabular": ("torch",),
    "gbm": ("catboost", "xgboost"),
    "scale": ("dask", "distributed", "psycopg2", "psycopg"),
    "tracking": ("mlflow", "tensorboard"),
}

#: registered model -> the extra it needs (models not listed need only the core install)
MODEL_EXTRAS: dict[str, str] = {
    "digit_cnn": "vision",
    "timm_classifier": "vision",
    "cf_dot": "recsys",
    "cf_neural": "recsys",
    "hf_cross_encoder": "text",
    "hf_group_cross_encoder": "text",
    "tabular_nn": "tabular",
    "catboost": "gbm",
    "xgboost": "gbm",
}


def extra_for(module: str) -> str:
    """The extra that installs ``module`` (the one that installs least of what is not asked)."""
    top = module.split(".")[0]
    owners = [extra for extra, mods in EXTRAS.items() if top in mods]
    return "all" if not owners or (len(owners) > 1 and top == "torch") else owners[0]


@contextmanager
def needs_extra(what: str, extra: str | None = None) -> Iterator[None]:
    """Turn a missing optional package inside the block into one line naming the pip install.

    ``extra`` is the extra ``what`` needs; ``None`` guesses it from the missing module. A missing
    module that no extra installs is re-raised as it is (a real bug, not an install choice).
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if not any(top in mods for mods in EXTRAS.values()):
            raise
        extra = extra or extra_for(top)
        raise KagtoolsError(f"{what} needs {top}, which the core install leaves out: "
                            f"pip install 'kagtools[{extra}]'") from None
