"""ResNet-18 and ResNet-50 from torchvision (He et al. 2016), optionally with the CIFAR stem.

The f-MICL paper (Lu et al. 2023) trains ResNet-18 on CIFAR-10 and ResNet-50 on STL-10 and
TinyImageNet. For small images the usual CIFAR variant (SimCLR, Chen et al. 2020, appendix
B.9) replaces the 7x7 stride-2 first convolution by a 3x3 stride-1 one and drops the max pool.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from ._common import BackboneError, check_input_shape, set_output_dim

#: Feature size of each depth (the input of torchvision's ``fc``).
RESNET_OUTPUT_DIMS = {"resnet18": 512, "resnet50": 2048}


def _resnet(
    name: Literal["resnet18", "resnet50"],
    input_shape: tuple[int, int, int],
    cifar_stem: bool | None,
) -> nn.Module:
    channels, height, width = check_input_shape(name, input_shape)
    if cifar_stem is not None and not isinstance(cifar_stem, bool):
        raise BackboneError(
            f"backbone {name!r}: cifar_stem must be true, false or None (auto: true when the "
            f"height is at most 64), got {cifar_stem!r}"
        )
    if cifar_stem is None:
        cifar_stem = height <= 64
    import torchvision

    model = getattr(torchvision.models, name)(weights=None)
    if cifar_stem:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.fc = nn.Identity()
    setattr(model, "input_shape", (channels, height, width))  # noqa: B010
    setattr(model, "cifar_stem", cifar_stem)  # noqa: B010
    return set_output_dim(model, RESNET_OUTPUT_DIMS[name])


def resnet18(
    input_shape: tuple[int, int, int] = (3, 32, 32), cifar_stem: bool | None = None
) -> nn.Module:
    """torchvision's ResNet-18 (``weights=None``) with ``fc = Identity``: ``(N, 512)`` features.

    Args:
        input_shape: ``(C, H, W)``; the first convolution takes ``C`` channels.
        cifar_stem: 3x3 stride-1 first convolution and no max pool (True), the ImageNet stem
            (False), or None: the CIFAR stem when ``H <= 64``.

    The state dict keeps torchvision's names (``conv1.weight``, ``layer1.0...``), without ``fc``.

    Example:
        >>> import torch
        >>> net = resnet18(input_shape=(3, 32, 32))
        >>> net(torch.randn(2, 3, 32, 32)).shape, net.output_dim, net.cifar_stem
        (torch.Size([2, 512]), 512, True)
    """
    return _resnet("resnet18", input_shape, cifar_stem)


def resnet50(
    input_shape: tuple[int, int, int] = (3, 32, 32), cifar_stem: bool | None = None
) -> nn.Module:
    """torchvision's ResNet-50 (``weights=None``) with ``fc = Identity``: ``(N, 2048)`` features.

    Options as :func:`resnet18`.

    Example:
        >>> net = resnet50(input_shape=(3, 96, 96))
        >>> net.output_dim, net.cifar_stem
        (2048, False)
    """
    return _resnet("resnet50", input_shape, cifar_stem)
