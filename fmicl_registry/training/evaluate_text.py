"""A text run's evaluation: STS Spearman and Pearson (SimCSE's protocol: cosine of frozen
embeddings against the gold scores), alignment on the pairs scored at least
:data:`STS_POSITIVE_SCORE` and uniformity on every sentence (SimCSE's section 5), for the
trained encoder and, as the baseline, the same encoder before training (for ``minilm``: the
pretrained model as loaded)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..evaluation import (
    alignment,
    distance_distribution,
    encode_sentences,
    sts_correlation,
    uniformity,
)
from .evaluate import Evaluation, Scores

#: STS pairs at least this similar (0-5 scale) are the positive pairs of the alignment, as in
#: SimCSE's analysis (Gao, Yao and Chen 2021, section 5: STS-B pairs scored above 4).
STS_POSITIVE_SCORE = 4.0


@dataclass
class TextEvaluation(Evaluation):
    """Scores on ``pairs``, an STS data set (sentence pairs with gold scores)."""

    pairs: Any
    batch_size: int
    untrained: Callable[[], nn.Module] | None = None

    curve: ClassVar[str] = "sts_spearman"

    def measure(
        self, encoder: nn.Module
    ) -> tuple[dict[str, float], tuple[torch.Tensor, torch.Tensor]]:
        """STS metrics of ``encoder`` on the pairs, and its embeddings of the positive pairs."""
        pairs, size = self.pairs, self.batch_size
        z1 = encode_sentences(encoder, pairs.sentences1, batch_size=size)
        z2 = encode_sentences(encoder, pairs.sentences2, batch_size=size)
        result = sts_correlation(z1, z2, pairs.scores)
        metrics = {"sts_spearman": result.spearman, "sts_pearson": result.pearson}
        positive = torch.as_tensor(pairs.scores) >= STS_POSITIVE_SCORE
        if int(positive.sum()) >= 1:
            metrics["alignment"] = alignment(z1[positive], z2[positive])
        metrics["uniformity"] = uniformity(torch.cat([z1, z2]))
        return metrics, (z1[positive], z2[positive])

    def curve_point(self, encoder: nn.Module, device: torch.device) -> float:
        return self.measure(encoder)[0]["sts_spearman"]

    def describe(self, value: float) -> str:
        return f"STS Spearman {100 * value:.2f}"

    def score(self, encoder: nn.Module, device: torch.device) -> Scores:
        metrics, positives = self.measure(encoder)
        scores = Scores(metrics)
        _add_distances(scores, "after training", positives)
        if self.untrained is not None:
            before, positives = self.measure(self.untrained().to(device))
            scores.baselines["before_training"] = before
            _add_distances(scores, "before training", positives)
        return scores

    def summary(self, scores: Scores) -> str:
        pairs, baselines = self.pairs, scores.baselines
        before = (
            f" (before training: {100 * baselines['before_training']['sts_spearman']:.2f})"
            if baselines
            else ""
        )
        return (
            f"STS Spearman {100 * scores.metrics['sts_spearman']:.2f} on {pairs.name} "
            f"{pairs.split} ({len(pairs)} pairs)" + before
        )


def _add_distances(
    scores: Scores, label: str, positives: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """The distance distribution of the positive pairs, when there are at least two."""
    z1, z2 = positives
    if len(z1) >= 2:
        scores.distances[label] = distance_distribution(z1, z2)
