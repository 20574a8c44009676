"""Semantic textual similarity (STS): how well embedding similarity ranks sentence pairs.

The protocol of SimCSE (Gao, Yao and Chen 2021, section 4) and Sentence-BERT: embed both
sentences of every pair with the frozen encoder, take the cosine similarity of the two
embeddings, and report Spearman's rank correlation between those similarities and the gold
scores (STS Benchmark: 0 to 5), times 100 in papers. Pearson's correlation is reported beside
it. Nothing is fitted, so the number measures the embedding space itself.

Example:
    >>> import torch
    >>> from fmicl_registry.evaluation import sts_spearman
    >>> table = {"a": [1.0, 0.0], "b": [0.9, 0.1], "c": [0.0, 1.0], "d": [0.6, 0.4]}
    >>> def encoder(sentences):   # a lookup table as the "encoder"
    ...     return torch.tensor([table[s] for s in sentences])
    >>> result = sts_spearman(encoder, ["a", "a", "a"], ["b", "c", "d"], [4.5, 0.5, 3.0])
    >>> round(result.spearman, 6), result.pairs
    (1.0, 3)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .features import EvaluationError, _check_batch_size

__all__ = ["STSResult", "encode_sentences", "sts_correlation", "sts_spearman"]


@dataclass(frozen=True)
class STSResult:
    """Correlations between embedding similarity and gold scores (fractions in [-1, 1]).

    Attributes:
        spearman: Spearman's rank correlation (the STS metric of SimCSE and Sentence-BERT).
        pearson: Pearson's correlation of the raw values.
        pairs: how many sentence pairs were scored.
        similarities: the cosine similarity of each pair, in input order (float64, CPU).
    """

    spearman: float
    pearson: float
    pairs: int
    similarities: Tensor


def encode_sentences(
    encoder: nn.Module | Callable[[list[str]], Tensor],
    sentences: Sequence[str],
    *,
    batch_size: int = 128,
) -> Tensor:
    """Embeddings of ``sentences`` from a frozen encoder: ``(N, D)`` float32 on the CPU.

    The encoder runs in eval mode (no dropout) under ``torch.no_grad()``; a module's mode is
    restored afterwards. Sentences go in batches of ``batch_size``, in order.

    Example:
        >>> encode_sentences(lambda s: torch.ones(len(s), 2), ["x", "y", "z"], batch_size=2).shape
        torch.Size([3, 2])
    """
    _check_batch_size(batch_size)
    if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
        raise EvaluationError("sentences must be a list of strings, one sentence each")
    if not sentences:
        raise EvaluationError("no sentences to encode")
    was_training = isinstance(encoder, nn.Module) and encoder.training
    if isinstance(encoder, nn.Module):
        encoder.eval()
    try:
        chunks = []
        with torch.no_grad():
            for start in range(0, len(sentences), batch_size):
                out = encoder(list(sentences[start : start + batch_size]))
                if not isinstance(out, Tensor) or out.ndim != 2:
                    raise EvaluationError(
                        "the encoder must map a list of n sentences to an (n, D) tensor, got "
                        f"{getattr(out, 'shape', type(out).__name__)}"
                    )
                chunks.append(out.detach().float().cpu())
    finally:
        if isinstance(encoder, nn.Module):
            encoder.train(was_training)
    features = torch.cat(chunks)
    if not torch.isfinite(features).all():
        raise EvaluationError("the encoder gave non-finite embeddings")
    return features


def _pearson(x: Tensor, y: Tensor) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = float(x.norm() * y.norm())
    return float((x * y).sum()) / denominator if denominator > 0 else math.nan


def sts_correlation(
    embeddings1: Tensor, embeddings2: Tensor, scores: Sequence[float] | Tensor
) -> STSResult:
    """Spearman and Pearson correlation of ``cos(embeddings1[i], embeddings2[i])`` with
    ``scores[i]``: :func:`sts_spearman` on embeddings already computed.

    Example:
        >>> z1 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
        >>> z2 = torch.tensor([[1.0, 0.1], [0.0, 1.0], [1.0, 1.0]])
        >>> round(sts_correlation(z1, z2, [5.0, 0.0, 2.5]).spearman, 6)
        1.0
    """
    gold = _gold(scores, len(embeddings1), len(embeddings2))
    if embeddings1.ndim != 2 or embeddings1.shape != embeddings2.shape:
        raise EvaluationError(
            f"the two sides' embeddings must be (n, D) of one shape, got "
            f"{tuple(embeddings1.shape)} and {tuple(embeddings2.shape)}"
        )
    similarity = nn.functional.cosine_similarity(
        embeddings1.detach().double().cpu(), embeddings2.detach().double().cpu(), dim=1
    )
    from scipy.stats import spearmanr

    if bool((similarity == similarity[0]).all()) or bool((gold == gold[0]).all()):
        rho = math.nan  # undefined; scipy would warn and return NaN
    else:
        rho = float(spearmanr(similarity.numpy(), gold.numpy()).statistic)
    return STSResult(
        spearman=rho,
        pearson=_pearson(similarity, gold),
        pairs=len(gold),
        similarities=similarity,
    )


def _gold(scores: Sequence[float] | Tensor, first: int, second: int) -> Tensor:
    gold = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    if not first == second == len(gold):
        raise EvaluationError(
            f"sentences1 ({first}), sentences2 ({second}) and scores ({len(gold)}) must have "
            "one entry per pair"
        )
    if len(gold) < 2:
        raise EvaluationError("an STS correlation needs at least 2 sentence pairs")
    if not torch.isfinite(gold).all():
        raise EvaluationError("the gold scores must be finite numbers")
    return gold


def sts_spearman(
    encoder: nn.Module | Callable[[list[str]], Tensor],
    sentences1: Sequence[str],
    sentences2: Sequence[str],
    scores: Sequence[float] | Tensor,
    *,
    batch_size: int = 128,
) -> STSResult:
    """Spearman (and Pearson) correlation of cosine similarity with gold STS scores.

    Args:
        encoder: maps a list of sentences to ``(n, D)`` embeddings (a text backbone such as
            ``minilm``, or a model's ``encoder``); run frozen, in eval mode.
        sentences1, sentences2: the pairs, ``sentences1[i]`` with ``sentences2[i]``.
        scores: the gold similarity of each pair (any scale: only the ranking matters for
            Spearman, a linear rescaling leaves Pearson unchanged).
        batch_size: sentences per encoder call.

    Spearman's rho is ``scipy.stats.spearmanr`` (ties get their average rank). A constant
    similarity or constant gold scores leave the correlation undefined: NaN.

    Raises:
        EvaluationError: lists of different lengths, fewer than 2 pairs, non-finite scores,
            or an encoder that does not return ``(n, D)`` finite embeddings.
    """
    _gold(scores, len(sentences1), len(sentences2))  # refuse bad input before encoding
    first = encode_sentences(encoder, sentences1, batch_size=batch_size)
    second = encode_sentences(encoder, sentences2, batch_size=batch_size)
    return sts_correlation(first, second, scores)
