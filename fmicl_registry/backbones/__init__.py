"""Backbones: encoders mapping a batch of inputs to ``(N, output_dim)`` features.

Every image factory takes ``input_shape=(C, H, W)`` (default ``(3, 32, 32)``) and its own
options; every factory returns an ``nn.Module`` with an int ``output_dim`` attribute, which the
architectures' projection heads read. The built-in plugin registers:

- ``small_cnn``: :class:`SmallCNN`, three conv blocks for 8x8 / 28x28 / 32x32 images;
- ``resnet18``, ``resnet50``: torchvision's, CIFAR stem when ``H <= 64`` (Lu et al. 2023);
- ``vit_small``: torchvision's ``VisionTransformer`` as ViT-S (MoCo v3's backbone);
- ``minilm``, ``transformer``: :class:`TransformerEncoder`, a Hugging Face text encoder taking a
  list of sentences (all-MiniLM-L6-v2, bundled; or any local model folder), for SimCSE.

torchvision and transformers are imported when such a backbone is built, not when this package
is.

Example:
    >>> import torch
    >>> from fmicl_registry.backbones import get_backbone
    >>> net = get_backbone("small_cnn", input_shape=(1, 8, 8))
    >>> net(torch.randn(4, 1, 8, 8)).shape
    torch.Size([4, 128])
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._common import BackboneError, check_input_shape
from .resnet import RESNET_OUTPUT_DIMS, resnet18, resnet50
from .small_cnn import SmallCNN
from .transformer import TransformerEncoder, minilm, minilm_path, transformer
from .vit import vit_small


def get_backbone(name: str, **options: Any) -> nn.Module:
    """A registered backbone built with ``options``; unknown options are a
    :class:`BackboneError` that lists the accepted ones (and the closest name).

    Example:
        >>> get_backbone("small_cnn", widht=8)
        Traceback (most recent call last):
        ...
        fmicl_registry.errors.BackboneError: backbone 'small_cnn': ...
    """
    from ..components import build

    return build("backbones", name, **options)


__all__ = [
    "RESNET_OUTPUT_DIMS",
    "BackboneError",
    "SmallCNN",
    "TransformerEncoder",
    "check_input_shape",
    "get_backbone",
    "minilm",
    "minilm_path",
    "resnet18",
    "resnet50",
    "transformer",
    "vit_small",
]
