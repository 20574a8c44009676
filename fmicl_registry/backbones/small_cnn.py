"""A small convolutional encoder for tiny images (8x8 digits, 28x28 MNIST-like, 32x32)."""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_input_shape, check_positive_int


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three 3x3 conv + BatchNorm + ReLU blocks and global average pooling.

    Widths ``width``, ``2 * width`` and ``output_dim``; strides 1, 2, 2 (8x8 inputs end at 2x2,
    28x28 at 7x7). Built for the quick demos (scikit-learn's 8x8 digits, 28x28 images): a
    few hundred thousand multiply-adds per 8x8 image, so CPU training is fast. Any ``H, W``
    >= 1 work; ``C`` is the first convolution's input channels.

    Args:
        input_shape: ``(C, H, W)`` of the inputs.
        width: channels of the first block.
        output_dim: channels of the last block, the feature size (``self.output_dim``).

    Example:
        >>> import torch
        >>> net = SmallCNN(input_shape=(1, 8, 8), width=16, output_dim=32)
        >>> net(torch.randn(4, 1, 8, 8)).shape, net.output_dim
        (torch.Size([4, 32]), 32)
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        width: int = 32,
        output_dim: int = 128,
    ) -> None:
        super().__init__()
        channels, _, _ = check_input_shape("small_cnn", input_shape)
        width = check_positive_int("small_cnn", "width", width)
        self.output_dim = check_positive_int("small_cnn", "output_dim", output_dim)
        self.input_shape = (channels, *tuple(input_shape)[1:])
        self.features = nn.Sequential(
            _conv_bn_relu(channels, width, stride=1),
            _conv_bn_relu(width, 2 * width, stride=2),
            _conv_bn_relu(2 * width, self.output_dim, stride=2),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, output_dim)``."""
        return self.features(x).mean(dim=(2, 3))

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, output_dim={self.output_dim}"
