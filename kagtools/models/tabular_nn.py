"""A tabular neural net in the manner of fastai's ``tabular_learner``.

An embedding per categorical column (fastai's size rule), continuous columns median-imputed
(with a missing indicator for each column that had gaps) and standardised, then an MLP of
``BatchNorm1d -> Dropout -> Linear -> ReLU`` blocks, trained with AdamW under a one-cycle
schedule by the shared :class:`~kagtools.dl.trainer.Learner` (CUDA with mixed precision when
present, else the CPU). Cross-entropy for classes, MSE on the standardised target for
regression.

Imported only when asked for by name (``pip install 'kagtools[tabular]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from kagtools.dl.trainer import BestCheckpoint, EarlyStopping, Learner, get_device, inner_holdout
from kagtools.models import register_model
from kagtools.models.tabular import _CATEGORICAL, _NUMERIC, _as_frame, _RefitRounds, finite_numerics

__all__ = ["TabularNN", "TabularNet", "emb_sz_rule"]

#: Standardised continuous inputs are clipped to +/- this: one extreme value at predict time
#: must not saturate the whole network.
Z_CLIP = 20.0


def emb_sz_rule(n_cat: int) -> int:
    """fastai's embedding size for a column of ``n_cat`` levels (missing/unseen included)."""
    return min(600, round(1.6 * n_cat**0.56))


class TabularNet(nn.Module):
    """Embeddings of the categorical codes and the continuous inputs, through an MLP."""

    def __init__(self, cardinalities: list[int], n_cont: int, n_out: int, layers: tuple[int, ...],
                 dropout: float, emb_dropout: float):
        super().__init__()
        self.embeds = nn.ModuleList(nn.Embedding(n, emb_sz_rule(n)) for n in cardinalities)
        self.emb_drop = nn.Dropout(emb_dropout)
        self.bn_cont = nn.BatchNorm1d(n_cont) if n_cont else None
        sizes = [sum(e.embedding_dim for e in self.embeds) + n_cont, *layers]
        blocks: list[nn.Module] = []
        for n_in, n_hidden in zip(sizes[:-1], sizes[1:], strict=True):
            blocks += [nn.BatchNorm1d(n_in), nn.Dropout(dropout), nn.Linear(n_in, n_hidden, bias=False), nn.ReLU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(sizes[-1], n_out)

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.embeds:
            parts.append(self.emb_drop(torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embeds)], dim=1)))
        if self.bn_cont is not None:
            parts.append(self.bn_cont(x_cont))
        return self.head(self.body(torch.cat(parts, dim=1)))


@register_model("tabular_nn")
class TabularNN(_RefitRounds, BaseEstimator):
    """A fastai-style tabular neural net: categorical embeddings and an MLP, one-cycle training.

    Trains ``epochs`` one-cycle epochs (peak rate ``lr``). With ``early_stopping_rounds`` (in
    epochs) it stops on an inner holdout of ``inner_valid`` of the training rows, never on
    ``X_valid`` (the scored fold), and keeps the best epoch's weights; ``best_iteration_`` is
    then that epoch's number (``None`` without early stopping). ``n_jobs`` is torch's CPU
    threads while fitting and predicting (``None``: leave torch's setting): small batches
    gain nothing from more, and on a busy machine extra threads only spin.
    """

    tasks = ("binary", "multiclass", "regression")
    rounds_param = "epochs"

    def __init__(self, *, task: str = "binary", layers: tuple[int, ...] = (200, 100), dropout: float = 0.1,
                 emb_dropout: float = 0.0, epochs: int = 10, lr: float = 1e-2, wd: float = 0.01,
                 batch_size: int = 256, early_stopping_rounds: int | None = None, inner_valid: float = 0.1,
                 amp: bool = True, device: str | None = None, n_jobs: int | None = 1, seed: int = 0):
        self.task = task
        self.layers = layers
        self.dropout = dropout
        self.emb_dropout = emb_dropout
        self.epochs = epochs
        self.lr = lr
        self.wd = wd
        self.batch_size = batch_size
        self.early_stopping_rounds = early_stopping_rounds
        self.inner_valid = inner_valid
        self.amp = amp
        self.device = device
        self.n_jobs = n_jobs
        self.seed = seed

    @property
    def is_classifier(self) -> bool:
        return self.task in ("binary", "multiclass")

    # ------------------------------------------------------------------ preprocessing

    def _learn_inputs(self, X: pd.DataFrame) -> None:
        self.cat_cols_ = _CATEGORICAL(X)
        self.cont_cols_ = _NUMERIC(X)
        self.levels_ = {c: pd.Index(X[c].astype("string").dropna().unique().astype(object)).sort_values()
                        for c in self.cat_cols_}
        cont = self._cont_values(X)
        self.medians_ = np.nan_to_num(np.nanmedian(cont, axis=0), nan=0.0) if cont.size else np.zeros(0)
        self.na_cols_ = [i for i in range(cont.shape[1]) if np.isnan(cont[:, i]).any()]
        filled = self._fill(cont)
        self.mean_ = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.std_ = np.where(std > 0, std, 1.0)

    def _cont_values(self, X: pd.DataFrame) -> np.ndarray:
        if not self.cont_cols_:
            return np.zeros((len(X), 0))
        return np.column_stack([X[c].to_numpy(dtype=float, na_value=np.nan) for c in self.cont_cols_])

    def _fill(self, cont: np.ndarray) -> np.ndarray:
        missing = np.isnan(cont)
        return np.hstack([np.where(missing, self.medians_, cont), missing[:, self.na_cols_].astype(float)])

    def _tensors(self, X) -> tuple[torch.Tensor, torch.Tensor]:
        """(categorical codes, 0 for missing or unseen; standardised continuous inputs)."""
        X = finite_numerics(_as_frame(X))
        codes = np.zeros((len(X), len(self.cat_cols_)), dtype=np.int64)
        for j, c in enumerate(self.cat_cols_):
            codes[:, j] = self.levels_[c].get_indexer(X[c].astype("string").astype(object)) + 1  # -1: NaN, unseen
        cont = (self._fill(self._cont_values(X)) - self.mean_) / self.std_
        cont = np.clip(cont, -Z_CLIP, Z_CLIP).astype(np.float32)
        return torch.from_numpy(codes), torch.from_numpy(cont)

    # ------------------------------------------------------------------ training

    def fit(self, X, y, X_valid=None, y_valid=None):
        """Fit on ``X``, ``y``. ``X_valid``/``y_valid`` (the scored fold) are not used."""
        X = finite_numerics(_as_frame(X))
        y = np.asarray(y)
        if self.is_classifier:
            self.classes_, y_enc = np.unique(y, return_inverse=True)
            target = torch.from_numpy(y_enc.astype(np.int64))
            n_out = len(self.classes_)
            loss_fn: nn.Module = nn.CrossEntropyLoss()
        else:
            y = y.astype(float)
            self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
            target = torch.from_numpy(((y - self.y_mean_) / self.y_std_).astype(np.float32))[:, None]
            n_out = 1
            loss_fn = nn.MSELoss()
        self._learn_inputs(X)
        x_cat, x_cont = self._tensors(X)
        device = get_device(self.device)
        with _threads(self.n_jobs), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            net = TabularNet([len(self.levels_[c]) + 1 for c in self.cat_cols_], x_cont.shape[1], n_out,
                             tuple(self.layers), self.dropout, self.emb_dropout)
            train_idx, valid_loader, callbacks, best = np.arange(len(y)), None, [], None
            if self.early_stopping_rounds:
                train_idx, hold = inner_holdout(len(y), frac=self.inner_valid, seed=self.seed,
                                                stratify=y if self.is_classifier else None)
                valid_loader = self._loader(x_cat[hold], x_cont[hold], target[hold], shuffle=False)
                best = BestCheckpoint()
                callbacks = [best, EarlyStopping(patience=self.early_stopping_rounds)]
            train_loader = self._loader(x_cat[train_idx], x_cont[train_idx], target[train_idx], shuffle=True)
            learner = Learner(net, loss_fn, device=device, amp=self.amp, progress=False)
            learner.fit_one_cycle(train_loader, self.epochs, self.lr, valid_loader=valid_loader, wd=self.wd,
                                  callbacks=callbacks)
        self.best_iteration_ = best.best_epoch + 1 if best is not None and best.best_epoch is not None else None
        self.net_ = net.to("cpu").eval()
        return self

    def _loader(self, x_cat, x_cont, target, *, shuffle: bool) -> DataLoader:
        """Whole batches sliced from in-memory tensors (no per-row collation); training batches
        are shuffled by a seeded generator and the ragged last one dropped (batch norm needs more than one row)."""
        data = TensorDataset(x_cat, x_cont, target)
        n = len(data)
        if shuffle:
            sampler = BatchSampler(RandomSampler(data, generator=torch.Generator().manual_seed(self.seed)),
                                   min(self.batch_size, n), drop_last=True)
        else:
            sampler = [list(range(i, min(i + 4096, n))) for i in range(0, n, 4096)]
        return DataLoader(data, sampler=sampler, batch_size=None, collate_fn=_as_batch)

    # ------------------------------------------------------------------ prediction

    def _outputs(self, X) -> np.ndarray:
        x_cat, x_cont = self._tensors(X)
        with _threads(self.n_jobs), torch.inference_mode():
            outs = [self.net_(x_cat[i:i + 8192], x_cont[i:i + 8192]).float().numpy()
                    for i in range(0, len(x_cont), 8192)]
        return np.concatenate(outs) if outs else np.zeros((0, self.net_.head.out_features), dtype=np.float32)

    def predict_proba(self, X) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self._outputs(X)).double(), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        if self.is_classifier:
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        return self._outputs(X)[:, 0].astype(float) * self.y_std_ + self.y_mean_

    def predict_scores(self, X) -> np.ndarray:
        """Positive-class probability (binary), class probabilities (multiclass) or values."""
        if not self.is_classifier:
            return self.predict(X)
        proba = self.predict_proba(X)
        return proba[:, 1] if self.task == "binary" else proba

    @staticmethod
    def search_space(trial):
        layers = trial.suggest_categorical("layers", ["200-100", "400-200", "256-128-64", "1000-500", "128"])
        return {
            "layers": tuple(int(n) for n in layers.split("-")) if layers else None,
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "emb_dropout": trial.suggest_float("emb_dropout", 0.0, 0.3),
            "epochs": trial.suggest_int("epochs", 5, 40, log=True),
            "lr": trial.suggest_float("lr", 1e-3, 3e-2, log=True),
            "wd": trial.suggest_float("wd", 1e-6, 0.3, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
        }


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` inside the block (unchanged for ``None``)."""
    before = torch.get_num_threads()
    if n is not None and n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _as_batch(batch):
    """``((codes, continuous), target)`` as the Learner calls ``model(*inputs)``."""
    x_cat, x_cont, target = batch
    return (x_cat, x_cont), target

