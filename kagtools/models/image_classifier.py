"""A timm image classifier fine-tuned fastai-style: frozen body first, then discriminative rates."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kagtools.dl.estimator import ImageClassifierBase
from kagtools.dl.images import AugmentConfig, ImageModel, load_images, tta_thetas
from kagtools.dl.trainer import Learner
from kagtools.dl.weights import create_timm_model
from kagtools.models import register_model

__all__ = ["TimmClassifier", "layer_groups"]


def layer_groups(net: nn.Module, head: nn.Module, n_body: int = 2) -> list[list[nn.Parameter]]:
    """The body's parameters cut into ``n_body`` consecutive groups (early layers first), then the
    head's: the groups that get increasing learning rates when fine-tuning."""
    head_ids = {id(p) for p in head.parameters()}
    body = [p for p in net.parameters() if id(p) not in head_ids]
    cuts = np.array_split(np.arange(len(body)), n_body)
    return [[body[i] for i in cut] for cut in cuts if len(cut)] + [list(head.parameters())]


@register_model("timm_classifier")
class TimmClassifier(ImageClassifierBase):
    """Any timm architecture on image files, fine-tuned with fastai's recipe.

    ``X`` has a column ``image_col`` of image file paths. Photos are decoded once at ``presize``
    (larger than the training size) and augmented per batch in one resampling pass. Training is
    ``fine_tune``: ``freeze_epochs`` epochs of the head (body frozen, batch norms trainable), then
    ``epochs`` epochs of everything with discriminative rates (``lr / lr_mult`` for the earliest
    layers up to ``lr`` for the head), split over the sizes of ``sizes`` (progressive resizing:
    e.g. ``(96, 128)`` trains at 96 px first). Predictions average ``tta`` views (flips, crops).

    Parameters
    ----------
    arch : timm model name (``tf_efficientnet_lite0``, ``resnet18``, ``convnext_tiny``, ...).
    pretrained : ``"efficientnet_lite0"`` (offline package weights), ``"hub"``, a weights file, or None.
    image_col : the column of ``X`` with image paths.
    sizes : training image sizes, one phase each (progressive resizing); the last one predicts.
    presize : decoding size (default 1.15 x the largest size).
    epochs, freeze_epochs, lr, lr_mult, batch_size, wd : the fine_tune schedule (AdamW, one cycle).
    dropout : timm's ``drop_rate`` before the classifier.
    label_smoothing, mixup, cutmix : regularisation (timm's ``Mixup`` when mixup or cutmix > 0).
    train_bn : let batch-norm weights train while the body is frozen (fastai's default; off here:
        with a few photos per class it hurts).
    bn_eval : keep batch norms in eval mode throughout (pretrained statistics), for small data
        and small batches; turn off with thousands of photos and large batches.
    augment, tta, grad_accum, early_stopping, n_classes, device, num_threads, task, seed :
        as for ``digit_cnn``.
    """

    tasks = ("binary", "multiclass")

    def __init__(self, *, arch: str = "tf_efficientnet_lite0", pretrained: str | None = "efficientnet_lite0",
                 image_col: str = "path", sizes: tuple[int, ...] = (128,), presize: int | None = None,
                 epochs: int = 4, freeze_epochs: int = 1, lr: float = 2e-3, lr_mult: float = 100.0,
                 batch_size: int = 32, wd: float = 0.01, dropout: float = 0.2, label_smoothing: float = 0.1,
                 mixup: float = 0.0, cutmix: float = 0.0, augment: bool = True, tta: int = 4,
                 grad_accum: int = 1, early_stopping: int = 0, train_bn: bool = False, bn_eval: bool = True,
                 n_classes: int | None = None, device: str | None = None, num_threads: int | None = None,
                 task: str = "multiclass", seed: int = 0):
        self.arch = arch
        self.pretrained = pretrained
        self.image_col = image_col
        self.sizes = sizes
        self.presize = presize
        self.epochs = epochs
        self.freeze_epochs = freeze_epochs
        self.lr = lr
        self.lr_mult = lr_mult
        self.batch_size = batch_size
        self.wd = wd
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.mixup = mixup
        self.cutmix = cutmix
        self.augment = augment
        self.tta = tta
        self.grad_accum = grad_accum
        self.early_stopping = early_stopping
        self.train_bn = train_bn
        self.bn_eval = bn_eval
        self.n_classes = n_classes
        self.device = device
        self.num_threads = num_threads
        self.task = task
        self.seed = seed

    def _images(self, X) -> torch.Tensor:
        return load_images(list(X[self.image_col]), int(self.presize or round(max(self.sizes) * 1.15)))

    def _build(self, n_classes: int, *, pretrained: bool) -> nn.Module:
        net = create_timm_model(self.arch, n_classes, pretrained=self.pretrained if pretrained else None,
                                drop_rate=self.dropout)
        head = net.get_classifier()
        if isinstance(head, nn.Linear):
            # A small init: some timm inits (EfficientNet's) scale by the class count and start
            # with huge logits, which swamps a few fine-tuning steps.
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)
        cfg = getattr(net, "pretrained_cfg", None) or {}
        return ImageModel(net, size=self._final_size(), mean=cfg.get("mean", (0.485, 0.456, 0.406)),
                          std=cfg.get("std", (0.229, 0.224, 0.225)))

    def _augment(self) -> AugmentConfig:
        return AugmentConfig(min_scale=0.35, max_rotate=10, flip=True, brightness=0.2)

    def _tta_views(self) -> list[torch.Tensor]:
        return tta_thetas(8, flip=True, zoom=0.85)

    def _final_size(self) -> int:
        return int(self.sizes[-1])

    def _train(self, learner: Learner, images, y, holdout) -> list[dict]:
        net = learner.model.net
        head = net.get_classifier()
        groups = layer_groups(net, head)
        loader = self._loader(images, y, shuffle=True, drop_last=True)
        # Unfrozen epochs split over the sizes: small images first (progressive resizing). From
        # scratch there is no body to freeze: the same epoch budget trains everything.
        freeze_epochs = self.freeze_epochs if self.pretrained else 0
        epochs = self.epochs + (0 if self.pretrained else self.freeze_epochs)
        per_size = [len(part) for part in np.array_split(np.arange(epochs), len(self.sizes))]
        history = []
        for i, (size, n_epochs) in enumerate(zip(self.sizes, per_size, strict=True)):
            self._size[0] = learner.model.size = int(size)
            history += learner.fine_tune(loader, n_epochs, self.lr, layer_groups=groups, head=head,
                                         freeze_epochs=freeze_epochs if i == 0 else 0, lr_mult=self.lr_mult,
                                         valid_loader=holdout, wd=self.wd, train_bn=self.train_bn)
        return history
