"""The estimator-contract base of the image classifiers (digit CNN, timm models).

Subclasses say how to turn ``X`` into uint8 images (:meth:`_images`), how to build the network
(:meth:`_build`) and how to train it (:meth:`_train`); this base seeds, carves the optional
inner holdout for early stopping, predicts with TTA, and pickles small: only a CPU ``state_dict``
(float16, half the bytes) is stored, and the network is rebuilt on load. That keeps the fold
models the CV loop pickles into the run directory small.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from kagtools.dl.images import (
    AugmentConfig,
    augment_batch,
    classification_loss,
    mixup_fn,
    tta_predict,
)
from kagtools.dl.trainer import (
    BestCheckpoint,
    EarlyStopping,
    Learner,
    LRFinderResult,
    inner_holdout,
    seed_everything,
)

__all__ = ["ImageClassifierBase"]


def accuracy(out: np.ndarray, y: np.ndarray) -> float:
    return float((out.argmax(1) == (y if y.ndim == 1 else y.argmax(1))).mean())


class ImageClassifierBase(ClassifierMixin, BaseEstimator):
    """Shared fit/predict of the image classifiers; see the subclasses for parameters."""

    parallel_folds = False  # torch uses every core (or the GPU) itself

    # -- subclass hooks ------------------------------------------------------------------------
    def _images(self, X) -> torch.Tensor:  # N x C x H x W uint8
        raise NotImplementedError

    def _build(self, n_classes: int, *, pretrained: bool) -> nn.Module:
        raise NotImplementedError

    def _train(self, learner: Learner, images: torch.Tensor, y: torch.Tensor, holdout) -> list[dict]:
        raise NotImplementedError

    def _augment(self) -> AugmentConfig:
        raise NotImplementedError

    def _tta_views(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def _final_size(self) -> int:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def _loader(self, images, y=None, *, shuffle=False, drop_last=False) -> DataLoader:
        tensors = (images,) if y is None else (images, y)
        g = torch.Generator().manual_seed(int(self.seed or 0))
        bs = min(self.batch_size, len(images)) if drop_last else self.batch_size
        return DataLoader(TensorDataset(*tensors), batch_size=bs, shuffle=shuffle, drop_last=drop_last, generator=g,
                          collate_fn=None if y is not None else (lambda b: torch.stack([r[0] for r in b])))

    def _batch_tfm(self, size_ref: list[int], n_classes: int):
        aug = self._augment() if self.augment else None
        mix = mixup_fn(n_classes, mixup=self.mixup, cutmix=getattr(self, "cutmix", 0.0),
                       label_smoothing=self.label_smoothing)

        def tfm(x, y):
            x = augment_batch(x, size_ref[0], aug) if aug is not None else x
            if mix is not None and len(x) % 2 == 0:
                x, y = mix(x.float() if x.dtype == torch.uint8 else x, y)
            return x, y

        return tfm, mix is not None

    def _setup(self, X, y):
        seed_everything(int(self.seed or 0))
        y = np.asarray(y).astype(int)
        self.n_classes_ = int(self.n_classes or (y.max() + 1))
        self.classes_ = np.arange(self.n_classes_)
        images = self._images(X)
        targets = torch.as_tensor(y, dtype=torch.long)
        holdout, callbacks = None, []
        if self.early_stopping:
            tr, ho = inner_holdout(len(y), frac=0.1, seed=int(self.seed or 0), stratify=y)
            holdout = self._loader(images[ho], targets[ho])
            images, targets = images[tr], targets[tr]
            callbacks = [BestCheckpoint(), EarlyStopping(patience=int(self.early_stopping))]
        model = self._build(self.n_classes_, pretrained=True)
        self._size = [self._final_size()]
        tfm, mixing = self._batch_tfm(self._size, self.n_classes_)
        learner = Learner(model, classification_loss(self.label_smoothing, mixing), device=self.device,
                          grad_accum=self.grad_accum, metric_fn=accuracy, callbacks=callbacks,
                          batch_tfm=tfm, progress=True, bn_eval=bool(getattr(self, "bn_eval", False)))
        return learner, images, targets, holdout

    def fit(self, X, y, X_valid=None, y_valid=None):
        """Train on ``(X, y)``; ``X_valid`` is not used to choose anything (it is the scored
        fold). With ``early_stopping > 0`` an inner holdout of the training rows decides."""
        learner, images, targets, holdout = self._setup(X, y)
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        self.history_ = self._train(learner, images, targets, holdout)
        self.model_ = learner.model.eval()
        return self

    def learner_for(self, X, y) -> tuple[Learner, torch.Tensor, torch.Tensor]:
        """The learner ``fit`` would train, with the training images and targets (for the
        batch-size finder, :mod:`kagtools.dl.batch_size`); nothing is trained."""
        learner, images, targets, _ = self._setup(X, y)
        return learner, images, targets

    def lr_find(self, X, y, **kwargs) -> LRFinderResult:
        """The learning-rate sweep of this model on ``(X, y)`` with its training augmentation
        (all layers trainable, final size); nothing is kept. ``kwargs`` go to ``Learner.lr_find``."""
        learner, images, targets, _ = self._setup(X, y)
        return learner.lr_find(self._loader(images, targets, shuffle=True, drop_last=True), **kwargs)

    def _model(self) -> nn.Module:
        if getattr(self, "model_", None) is None:
            model = self._build(self.n_classes_, pretrained=False)
            model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in self.state_dict_.items()})
            self.model_ = model.eval()
        return self.model_

    def predict_proba(self, X, *, tta: int | None = None) -> np.ndarray:
        """Class probabilities, averaged over ``tta`` views (default: the ``tta`` parameter;
        0 or 1 = the plain image only)."""
        learner = Learner(self._model(), nn.Identity(), device=self.device, progress=False)
        loader = self._loader(self._images(X))
        views = self._tta_views()[: max(int(self.tta if tta is None else tta), 1)]
        return tta_predict(learner, loader, self._final_size(), views, lambda logits: softmax(logits, axis=1))

    def predict_scores(self, X, *, tta: int | None = None) -> np.ndarray:
        """What a run records: (n, K) probabilities, or the positive class's for a binary task."""
        p = self.predict_proba(X, tta=tta)
        return p[:, 1] if self.task == "binary" else p

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(1)

    # -- small pickles --------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        model = state.pop("model_", None)
        if model is not None:
            state["state_dict_"] = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.cpu())
                                    for k, v in model.state_dict().items()}
        state.pop("_size", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.model_ = None
