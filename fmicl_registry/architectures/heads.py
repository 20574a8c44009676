"""MLP projection and prediction heads (SimCLR, MoCo v2, MoCo v3)."""

from __future__ import annotations

from torch import nn

from ._common import check_int


class MLPHead(nn.Sequential):
    """``num_layers`` linear layers, ``in_dim -> hidden_dim -> ... -> out_dim``.

    Between layers: BatchNorm1d (when ``batch_norm``) and ReLU. The heads of the papers:

    - f-MICL / SimCLR (Lu et al. 2023; Chen et al. 2020): 3 layers, BN,
      output 512;
    - MoCo v2 (Chen, Fan, Girshick and He 2020): 2 layers, no BN, hidden 2048, output 128;
    - MoCo v3 (Chen, Xie and He 2021): projector 3 layers with BN after every layer, the last
      one without affine parameters (``last_batch_norm=True``), hidden 4096, output 256;
      predictor 2 layers, BN between.

    A linear layer followed by BatchNorm has no bias (the BN shift replaces it).

    Example:
        >>> import torch
        >>> head = MLPHead(512, 2048, 128, num_layers=3)
        >>> head(torch.randn(4, 512)).shape
        torch.Size([4, 128])
        >>> len(MLPHead(8, 8, 4, num_layers=1))  # a single linear layer
        1
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_batch_norm: bool = False,
    ) -> None:
        for option, value in (
            ("in_dim", in_dim),
            ("hidden_dim", hidden_dim),
            ("out_dim", out_dim),
            ("head layers", num_layers),
        ):
            check_int("head", option, value)
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            last = i == num_layers - 1
            norm = last_batch_norm if last else batch_norm
            layers.append(nn.Linear(dims[i], dims[i + 1], bias=not norm))
            if norm:
                layers.append(nn.BatchNorm1d(dims[i + 1], affine=not last))
            if not last:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        self.num_layers = num_layers
