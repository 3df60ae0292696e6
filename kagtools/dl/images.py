"""Image helpers shared by the vision models: loading with presizing, batch augmentation in one
pass, TTA, and a model wrapper that normalises and resizes.

Images are kept as uint8 tensors at a *presize* larger than the training size (decoded once,
cached). Training batches are augmented on the device in ONE resampling pass: random resized
crop, flip, rotation and translation are composed into a single affine matrix per image, so an
image is interpolated once (fastai's presizing idea), then brightness is jittered. The output
size is an argument, which is what progressive resizing changes between phases.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AugmentConfig", "augment_batch", "affine_resample", "tta_thetas", "tta_predict",
           "ImageModel", "load_image", "load_images", "mixup_fn", "classification_loss"]


@dataclass(frozen=True)
class AugmentConfig:
    """Random affine augmentation: zoom (fraction of the side kept), rotation, shift, flip, brightness."""

    min_scale: float = 0.35      # random resized crop: the crop keeps this fraction of the area, at least
    max_scale: float = 1.0
    max_rotate: float = 10.0     # degrees
    max_translate: float = 0.0   # extra shift, fraction of the half side (beyond what the crop allows)
    flip: bool = True
    brightness: float = 0.2      # multiplicative jitter: x * (1 + U(-b, b))


def _rand(n: int, lo: float, hi: float, device, generator=None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, device=device, generator=generator)


def affine_resample(x: torch.Tensor, theta: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resample a batch ``x`` (uint8 or float, N x C x H x W) through affine ``theta`` (N x 2 x 3)
    to ``size``, as floats in [0, 1]; one bilinear interpolation, borders reflected."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    h, w = (size, size) if isinstance(size, int) else size
    grid = F.affine_grid(theta.to(x.dtype), [x.shape[0], x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def augment_batch(x: torch.Tensor, size: int | tuple[int, int], cfg: AugmentConfig,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random resized crop + flip + rotation + shift in one resampling pass, then brightness."""
    n, dev = x.shape[0], x.device
    # The crop keeps a fraction `s` of the side; centre shifts stay inside the image.
    s = _rand(n, math.sqrt(cfg.min_scale), math.sqrt(cfg.max_scale), dev, generator)
    room = (1 - s) + cfg.max_translate
    tx, ty = _rand(n, -1, 1, dev, generator) * room, _rand(n, -1, 1, dev, generator) * room
    a = _rand(n, -1, 1, dev, generator) * math.radians(cfg.max_rotate)
    flip = torch.where(torch.rand(n, device=dev, generator=generator) < 0.5, -1.0, 1.0) if cfg.flip \
        else torch.ones(n, device=dev)
    cos, sin = torch.cos(a) * s, torch.sin(a) * s
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    out = affine_resample(x, theta, size)
    if cfg.brightness:
        out = out * (1 + _rand(n, -cfg.brightness, cfg.brightness, dev, generator)).view(n, 1, 1, 1)
    return out.clamp_(0, 1)


def tta_thetas(n: int, *, flip: bool = True, zoom: float = 0.9, shift: float = 0.0,
               rotate: float = 0.0) -> list[torch.Tensor]:
    """``n`` deterministic 2 x 3 affine views for TTA; the first is always the identity.

    Photos (``flip=True``): identity, flip, centre zoom, zoomed flip, then the four zoomed
    corners. Digits (``flip=False``): identity then small shifts/rotations (``shift`` is a
    fraction of the half side, ``rotate`` in degrees).
    """
    def mat(s=1.0, f=1.0, tx=0.0, ty=0.0, deg=0.0):
        a = math.radians(deg)
        return torch.tensor([[math.cos(a) * s * f, -math.sin(a) * s, tx], [math.sin(a) * s * f, math.cos(a) * s, ty]])

    if flip:
        c = 1 - zoom
        views = [mat(), mat(f=-1), mat(s=zoom), mat(s=zoom, f=-1)] + [
            mat(s=zoom, tx=dx * c, ty=dy * c) for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1))]
    else:
        views = [mat()] + [v for k in (shift, 2 * shift) for v in (
            mat(tx=k), mat(tx=-k), mat(ty=k), mat(ty=-k))] + [mat(deg=rotate), mat(deg=-rotate)]
    if n > len(views):
        raise ValueError(f"tta: at most {len(views)} views")
    return views[:max(n, 1)]


def tta_predict(learner, loader, size: int | tuple[int, int], thetas: Sequence[torch.Tensor],
                activation: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Average ``activation`` of the learner's outputs over the affine views ``thetas``."""
    total = None
    for theta in thetas:
        def tfm(x, theta=theta):
            return affine_resample(x, theta.to(x.device).expand(x.shape[0], 2, 3), size)

        probs = activation(learner.predict(loader, tfm=tfm))
        total = probs if total is None else total + probs
    return total / len(thetas)


class ImageModel(nn.Module):
    """Wrap a network: uint8 batches are resized (centre, whole image) to ``size`` and scaled to
    [0, 1]; every batch is then normalised with ``mean``/``std``. Float batches are taken as
    already at the right size (the augmented training batches, the TTA views)."""

    def __init__(self, net: nn.Module, *, size: int, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.net, self.size = net, size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
            if x.shape[-1] != self.size or x.shape[-2] != self.size:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                                  align_corners=False)
        return self.net((x - self.mean) / self.std)


@lru_cache(maxsize=50_000)
def load_image(path: str, presize: int) -> torch.Tensor:
    """Decode an image file to a 3 x presize x presize uint8 tensor (shorter side resized to
    ``presize``, centre crop); cached, so every fold decodes each photo once."""
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2.functional import center_crop, resize

    img = resize(decode_image(str(path), mode=ImageReadMode.RGB), presize, antialias=True)
    return center_crop(img, [presize, presize])


def load_images(paths: Sequence[str | Path], presize: int) -> torch.Tensor:
    """Stack :func:`load_image` of every path (N x 3 x presize x presize, uint8)."""
    return torch.stack([load_image(str(p), presize) for p in paths])


def mixup_fn(num_classes: int, *, mixup: float = 0.0, cutmix: float = 0.0, label_smoothing: float = 0.0):
    """timm's ``Mixup`` (mixup and/or cutmix with label smoothing), or ``None`` when both are 0."""
    if mixup <= 0 and cutmix <= 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=label_smoothing,
                 num_classes=num_classes)


def classification_loss(label_smoothing: float, mixing: bool) -> nn.Module:
    """Cross-entropy; with mixup the targets are already smoothed class probabilities."""
    return nn.CrossEntropyLoss(label_smoothing=0.0 if mixing else label_smoothing)
