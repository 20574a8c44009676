"""SimCLR (Chen, Kornblith, Norouzi and Hinton 2020) with any objective: the f-MICL setup."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ._common import check_backbone, check_int, check_objective
from .heads import MLPHead

Tensor = torch.Tensor


class SimCLR(nn.Module):
    """Shared encoder and projection head on two views; the loss is the objective's.

    ``loss = objective(head(encoder(view1)), head(encoder(view2)))``. With
    ``fm.get_objective("infonce")`` this is SimCLR; with ``fm.get_objective("fmicl", ...)`` it
    is the f-MICL paper's vision setup (Lu et al. 2023: 3-layer head,
    embedding 512), the architecture unchanged.

    The two views go through the encoder as one batch of ``2N`` images, as in SimCLR's code, so
    in train mode BatchNorm statistics are those of both views together (in eval mode this is
    the same as two separate calls).

    Args:
        backbone: an ``nn.Module`` with an int ``output_dim`` (``self.encoder``, the features
            evaluation uses).
        objective: called as ``objective(z1, z2)`` and returning a scalar
            (``self.objective``).
        head_layers: linear layers of the projection head (3 in the f-MICL paper).
        hidden_dim: width of its hidden layers; None (default): the backbone's ``output_dim``,
            SimCLR's choice (512 for ResNet-18, 2048 for ResNet-50).
        out_dim: the embedding size (512 in the f-MICL paper).

    ``default_backbone`` is the backbone a training spec uses when it names none.

    Example:
        >>> import torch, fmicl_registry as fm
        >>> from fmicl_registry.backbones import SmallCNN
        >>> model = SimCLR(SmallCNN((1, 8, 8)), fm.get_objective("fmicl", divergence="kl"))
        >>> loss = model(torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8))
        >>> loss.shape, model.encoder.output_dim
        (torch.Size([]), 128)
    """

    default_backbone: ClassVar[str] = "resnet18"

    def __init__(
        self,
        backbone: nn.Module,
        objective: Any,
        head_layers: int = 3,
        hidden_dim: int | None = None,
        out_dim: int = 512,
    ) -> None:
        super().__init__()
        features = check_backbone("simclr", backbone)
        check_objective("simclr", objective)
        hidden = features if hidden_dim is None else check_int("simclr", "hidden_dim", hidden_dim)
        check_int("simclr", "head_layers", head_layers)
        check_int("simclr", "out_dim", out_dim)
        self.encoder = backbone
        self.head = MLPHead(features, hidden, out_dim, num_layers=head_layers)
        self.objective = objective

    def embed(self, x: Tensor) -> Tensor:
        """The projection ``head(encoder(x))`` of one batch."""
        return self.head(self.encoder(x))

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:
        """The loss of a batch of pairs: ``view1[i]`` and ``view2[i]`` are views of one input."""
        z1, z2 = self.embed(torch.cat([view1, view2])).chunk(2)
        return self.objective(z1, z2)
