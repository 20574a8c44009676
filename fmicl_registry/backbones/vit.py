"""ViT-Small from torchvision's ``VisionTransformer`` (Dosovitskiy et al. 2021).

The f-MICL paper's ImageNet result (Lu et al. 2023) swaps the objective of MoCo v3 (Chen,
Xie and He 2021), whose backbone is ViT-S: 12 layers, 6 heads, width 384, MLP 1536, patch 16.
For small images (``H <= 64``) the patch defaults to 4, the usual CIFAR choice, so a 32x32
image gives 64 tokens. This is torchvision's model as it is (learned position embedding,
trainable patch projection; MoCo v3 freezes the patch projection and uses sin-cos position
embeddings, which we do not copy); ``heads`` is replaced by ``Identity`` so the output is the
class token's final ``(N, hidden_dim)`` representation.
"""

from __future__ import annotations

import math

from torch import nn

from ._common import BackboneError, check_input_shape, check_positive_int, set_output_dim


def vit_small(
    input_shape: tuple[int, int, int] = (3, 32, 32),
    patch_size: int | None = None,
    num_layers: int = 12,
    num_heads: int = 6,
    hidden_dim: int = 384,
    mlp_dim: int = 1536,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
) -> nn.Module:
    """torchvision's ``VisionTransformer`` as ViT-S/16 (or ViT-S/4 for small images).

    Args:
        input_shape: ``(C, H, W)``, square (``H == W``), divisible by the patch size. For
            ``C != 3`` the patch projection ``conv_proj`` takes ``C`` channels.
        patch_size: None: 4 when ``H <= 64``, else 16.
        num_layers, num_heads, hidden_dim, mlp_dim: the transformer (defaults: ViT-S);
            ``hidden_dim`` is the feature size ``output_dim`` and must divide by ``num_heads``.
        dropout, attention_dropout: as torchvision's (0 in MoCo v3).

    Example:
        >>> import torch
        >>> net = vit_small(input_shape=(3, 32, 32), num_layers=1)
        >>> net.patch_size, net.output_dim
        (4, 384)
        >>> net(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 384])
    """
    name = "vit_small"
    channels, height, width = check_input_shape(name, input_shape)
    if height != width:
        raise BackboneError(
            f"backbone {name!r}: torchvision's VisionTransformer takes square images; "
            f"input_shape {tuple(input_shape)} has height {height} and width {width} "
            "(resize or crop the images to a square)"
        )
    if patch_size is None:
        patch_size = 4 if height <= 64 else 16
    patch_size = check_positive_int(name, "patch_size", patch_size)
    if height % patch_size:
        divisors = [p for p in (2, 4, 7, 8, 14, 16, 32) if height % p == 0]
        fits = ", ".join(map(str, divisors)) or "none of 2, 4, 7, 8, 14, 16, 32"
        raise BackboneError(
            f"backbone {name!r}: image size {height} is not divisible by patch_size "
            f"{patch_size}; pass a patch_size that divides it (here: {fits}) or resize the "
            "images"
        )
    for option, value in (
        ("num_layers", num_layers),
        ("num_heads", num_heads),
        ("hidden_dim", hidden_dim),
        ("mlp_dim", mlp_dim),
    ):
        check_positive_int(name, option, value)
    if hidden_dim % num_heads:
        raise BackboneError(
            f"backbone {name!r}: hidden_dim {hidden_dim} must be divisible by num_heads {num_heads}"
        )
    for option, rate in (("dropout", dropout), ("attention_dropout", attention_dropout)):
        if not 0.0 <= float(rate) < 1.0:
            raise BackboneError(f"backbone {name!r}: {option} must be in [0, 1), got {rate!r}")
    from torchvision.models import VisionTransformer

    model = VisionTransformer(
        image_size=height,
        patch_size=patch_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        mlp_dim=mlp_dim,
        dropout=float(dropout),
        attention_dropout=float(attention_dropout),
    )
    if channels != 3:
        proj = nn.Conv2d(channels, hidden_dim, kernel_size=patch_size, stride=patch_size)
        nn.init.trunc_normal_(proj.weight, std=math.sqrt(1 / (channels * patch_size**2)))
        if proj.bias is not None:  # torchvision's initialisation of the patch projection
            nn.init.zeros_(proj.bias)
        model.conv_proj = proj
    model.heads = nn.Identity()
    setattr(model, "input_shape", (channels, height, width))  # noqa: B010
    return set_output_dim(model, hidden_dim)
