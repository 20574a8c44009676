"""MoCo v3 (Chen, Xie and He 2021) with any objective: the f-MICL paper's ImageNet setup."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ._common import check_backbone, check_int, check_momentum, check_objective
from .heads import MLPHead
from .momentum import ema_update, frozen_copy

Tensor = torch.Tensor


class MoCoV3(nn.Module):
    """Base encoder + projector + predictor, momentum encoder + projector, symmetric loss.

    ``q_i = predictor(projector(encoder(view_i)))``, ``k_i = momentum_projector(
    momentum_encoder(view_i))`` without a graph, and

        loss = objective(q1, k2) + objective(q2, k1)

    with no queue: the negatives are the other keys of the batch (gathered across processes by
    the objective). ``fm.get_objective("moco_infonce", queue_size=0)`` gives MoCo v3's InfoNCE
    (up to its ``2 * temperature`` scale); the f-MICL paper swaps in f-MICL with ViT-S on
    ImageNet (Lu et al. 2023). The momentum encoder and projector follow
    ``m * k_param + (1 - m) * q_param`` once per training ``forward`` (not in eval mode);
    ``self.momentum`` can be changed between steps (MoCo v3 anneals it to 1 with a cosine).
    They are in the ``state_dict``, with ``requires_grad=False``: give the optimizer only the
    parameters that require grad.

    Heads as MoCo v3's ViT model (BatchNorm after every projector layer, the last without
    affine parameters; predictor with BatchNorm between its layers), 2048 wide by default
    rather than 4096. MoCo v3 uses SyncBatchNorm in the heads on several processes: convert
    with ``torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)`` if you want that.

    Args:
        backbone: an ``nn.Module`` with an int ``output_dim`` (``self.encoder``).
        objective: ``objective(q, k)`` returns a scalar (``self.objective``).
        momentum: ``m`` (0.99 here; MoCo v3 starts at 0.99 or 0.996).
        hidden_dim, out_dim, head_layers: the projector (2048, 256, 3; MoCo v3 uses 2 layers
            for ResNets).
        predictor_hidden_dim, predictor_layers: the predictor (2048, 2), output ``out_dim``.

    Example:
        >>> import torch, fmicl_registry as fm
        >>> from fmicl_registry.backbones import vit_small
        >>> net = vit_small(input_shape=(3, 8, 8), num_layers=1, hidden_dim=24, num_heads=2)
        >>> model = MoCoV3(net, fm.get_objective("fmicl", divergence="js"), hidden_dim=32)
        >>> model(torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)).shape
        torch.Size([])
    """

    default_backbone: ClassVar[str] = "vit_small"

    def __init__(
        self,
        backbone: nn.Module,
        objective: Any,
        momentum: float = 0.99,
        hidden_dim: int = 2048,
        out_dim: int = 256,
        head_layers: int = 3,
        predictor_hidden_dim: int = 2048,
        predictor_layers: int = 2,
    ) -> None:
        super().__init__()
        features = check_backbone("mocov3", backbone)
        check_objective("mocov3", objective)
        self.momentum = check_momentum("mocov3", momentum)
        for option, value in (
            ("hidden_dim", hidden_dim),
            ("out_dim", out_dim),
            ("head_layers", head_layers),
            ("predictor_hidden_dim", predictor_hidden_dim),
            ("predictor_layers", predictor_layers),
        ):
            check_int("mocov3", option, value)
        self.encoder = backbone
        self.projector = MLPHead(
            features, hidden_dim, out_dim, num_layers=head_layers, last_batch_norm=True
        )
        self.predictor = MLPHead(out_dim, predictor_hidden_dim, out_dim, predictor_layers)
        self.momentum_encoder = frozen_copy(backbone)
        self.momentum_projector = frozen_copy(self.projector)
        self.objective = objective

    @torch.no_grad()
    def momentum_update(self) -> None:
        """One EMA step of the momentum encoder and projector (done by ``forward`` in train
        mode)."""
        ema_update(self.momentum_encoder, self.encoder, self.momentum)
        ema_update(self.momentum_projector, self.projector, self.momentum)

    def queries(self, x: Tensor) -> Tensor:
        """``predictor(projector(encoder(x)))``."""
        return self.predictor(self.projector(self.encoder(x)))

    @torch.no_grad()
    def keys(self, x: Tensor) -> Tensor:
        """``momentum_projector(momentum_encoder(x))``, without a graph."""
        return self.momentum_projector(self.momentum_encoder(x))

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:
        """The symmetric loss of a batch of pairs."""
        q1, q2 = self.queries(view1), self.queries(view2)
        with torch.no_grad():
            if self.training:
                self.momentum_update()
            k1, k2 = self.keys(view1), self.keys(view2)
        return self.objective(q1, k2) + self.objective(q2, k1)

    def extra_repr(self) -> str:
        return f"momentum={self.momentum:g}"
