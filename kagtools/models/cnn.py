"""A small CNN for 28 x 28 digits trained from scratch (Digit Recognizer / MNIST pixel CSVs)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kagtools.dl.estimator import ImageClassifierBase
from kagtools.dl.images import AugmentConfig, ImageModel, tta_thetas
from kagtools.dl.trainer import Learner
from kagtools.models import register_model

__all__ = ["DigitCNN", "digit_net"]


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def digit_net(n_classes: int, channels: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.1) -> nn.Sequential:
    """A stem conv at 28 px, then per further width a stride-2 conv and a conv (28 -> 14 -> 7 -> 4),
    global average pooling and a linear head. Strided convs instead of pooling keep it cheap on a CPU."""
    layers = [_block(1, channels[0])]
    for c_in, c_out in zip(channels, channels[1:], strict=False):
        layers += [_block(c_in, c_out, stride=2), _block(c_out, c_out)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(channels[-1], n_classes))


@register_model("digit_cnn")
class DigitCNN(ImageClassifierBase):
    """A CNN from scratch on 28 x 28 grey digits given as 784 pixel columns (0..255).

    Trained with one-cycle AdamW for ``epochs`` epochs (fixed; no epoch is chosen on the scored
    fold), batch augmentation (small rotations, zooms and shifts, no flips: a flipped 2 is not a
    2), label smoothing, optional mixup, and TTA over small shifts/rotations at predict time.

    Parameters
    ----------
    epochs, lr, batch_size, wd : training schedule (one cycle, AdamW).
    channels : tuple of ints, widths of the stem and of each stride-2 stage.
    dropout : before the linear head.
    label_smoothing, mixup : regularisation (timm's Mixup when ``mixup > 0``).
    augment : random affine augmentation of training batches.
    tta : number of views averaged at predict time (1 = none).
    grad_accum : optimiser step every ``grad_accum`` batches.
    early_stopping : patience in epochs on a 10 % inner holdout of the training rows (0 = off).
    n_classes, device, num_threads, task, seed : as their names say (the CV loop sets task and seed).
    """

    tasks = ("binary", "multiclass")

    def __init__(self, *, epochs: int = 12, lr: float = 3e-3, batch_size: int = 128, wd: float = 0.01,
                 channels: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.1,
                 label_smoothing: float = 0.1, mixup: float = 0.0, augment: bool = True, tta: int = 5,
                 grad_accum: int = 1, early_stopping: int = 0, n_classes: int | None = None,
                 device: str | None = None, num_threads: int | None = None, task: str = "multiclass",
                 seed: int = 0):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.wd = wd
        self.channels = channels
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.mixup = mixup
        self.augment = augment
        self.tta = tta
        self.grad_accum = grad_accum
        self.early_stopping = early_stopping
        self.n_classes = n_classes
        self.device = device
        self.num_threads = num_threads
        self.task = task
        self.seed = seed

    def _images(self, X) -> torch.Tensor:
        pixels = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)
        if pixels.shape[1] != 784:
            raise ValueError(f"digit_cnn expects 784 pixel columns, got {pixels.shape[1]}")
        return torch.from_numpy(np.clip(pixels, 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28))

    def _build(self, n_classes: int, *, pretrained: bool) -> nn.Module:
        return ImageModel(digit_net(n_classes, tuple(self.channels), self.dropout), size=28,
                          mean=(0.1307,), std=(0.3081,))

    def _augment(self) -> AugmentConfig:
        return AugmentConfig(min_scale=0.8, max_scale=1.2, max_rotate=10, max_translate=0.1, flip=False, brightness=0.0)

    def _tta_views(self) -> list[torch.Tensor]:
        return tta_thetas(11, flip=False, shift=0.05, rotate=6)

    def _final_size(self) -> int:
        return 28

    def _train(self, learner: Learner, images, y, holdout) -> list[dict]:
        loader = self._loader(images, y, shuffle=True, drop_last=self.mixup > 0)
        return learner.fit_one_cycle(loader, self.epochs, self.lr, valid_loader=holdout, wd=self.wd)
