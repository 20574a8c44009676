"""Unsupervised SimCSE (Gao, Yao and Chen 2021) with any objective: dropout as augmentation.

Each sentence is encoded twice in train mode; the two embeddings differ only by their dropout
masks, and they are the positive pair. The other sentences of the batch are the negatives.
SimCSE trains with InfoNCE at temperature 0.05 (``fm.get_objective("infonce",
temperature=0.05)``); the f-MICL objective plugs in unchanged (``fm.get_objective("fmicl",
divergence="js")``), as it does into SimCLR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from ._common import ArchitectureError, check_backbone, check_int, check_objective

Tensor = torch.Tensor


class SimCSE(nn.Module):
    """Two dropout-masked encodings of the same sentences, an MLP head, the objective's loss.

    ``loss = objective(head(encoder(sentences)), head(encoder(sentences)))`` with the encoder in
    train mode, so the two calls draw different dropout masks. As in SimCSE's code, the
    ``2N`` sentences go through the encoder as one batch (each sentence twice) and the head is
    SimCSE's MLP pooler, one linear layer and tanh over the pooled feature, used in training
    only: ``self.encoder`` (the backbone, without the head) gives the features that evaluation
    uses (SimCSE's unsupervised models are evaluated "without the MLP", Gao et al. section 3).

    ``forward(view1, view2)`` keeps SimCLR's signature so the training loop drives every
    architecture alike; for text, ``view1`` and ``view2`` are the same list of sentences (the
    dropout makes the views). Two different lists (``view2[i]`` a paraphrase of ``view1[i]``)
    give supervised-style positive pairs.

    Args:
        backbone: an ``nn.Module`` taking a list of strings, with an int ``output_dim`` (e.g.
            the ``minilm`` backbone); ``self.encoder``.
        objective: called as ``objective(z1, z2)``, returning a scalar (``self.objective``).
        out_dim: the head's output size; None (default): the backbone's ``output_dim``, as
            in SimCSE.

    Example:
        >>> import fmicl_registry as fm
        >>> from fmicl_registry.backbones import minilm
        >>> model = SimCSE(minilm(max_length=8), fm.get_objective("infonce", temperature=0.05))
        >>> sentences = ["A dog runs.", "A cat sleeps.", "It rains.", "Prices rose."]
        >>> loss = model(sentences, sentences)
        >>> loss.shape, model.head[0].out_features
        (torch.Size([]), 384)
    """

    default_backbone: ClassVar[str] = "minilm"

    def __init__(self, backbone: nn.Module, objective: Any, out_dim: int | None = None) -> None:
        super().__init__()
        features = check_backbone("simcse", backbone)
        check_objective("simcse", objective)
        out = features if out_dim is None else check_int("simcse", "out_dim", out_dim)
        self.encoder = backbone
        self.head = nn.Sequential(nn.Linear(features, out), nn.Tanh())
        self.objective = objective

    def forward(self, view1: Sequence[str], view2: Sequence[str]) -> Tensor:
        """The loss of a batch: ``view1[i]`` and ``view2[i]`` are one sentence (or a pair)."""
        if isinstance(view1, str) or isinstance(view2, str):
            raise ArchitectureError(
                "architecture 'simcse' takes two lists of sentences (for unsupervised SimCSE the "
                "same list twice), got a single string; wrap it in a list"
            )
        if len(view1) != len(view2):
            raise ArchitectureError(
                f"architecture 'simcse': the two views must pair up, got {len(view1)} and "
                f"{len(view2)} sentences"
            )
        z1, z2 = self.head(self.encoder([*view1, *view2])).chunk(2)
        return self.objective(z1, z2)
