"""STS evaluation: Spearman and Pearson against hand computations, and a pretrained sentence
encoder scoring clearly above a randomly initialised one on hand-written graded pairs."""

from __future__ import annotations

import doctest
import importlib
import math
from collections.abc import Sequence

import pytest
import torch
from text_formats import STS_PAIRS
from torch import nn

from fmicl_registry.backbones import minilm
from fmicl_registry.evaluation import (
    EvaluationError,
    encode_sentences,
    sts_correlation,
    sts_spearman,
)

FIRST = [a for a, _, _ in STS_PAIRS]
SECOND = [b for _, b, _ in STS_PAIRS]
GOLD = [s for _, _, s in STS_PAIRS]


def _angle_encoder(angles: dict[str, float]) -> nn.Module:
    """Sentences as unit vectors at given angles: cosines known in closed form."""

    class Angles(nn.Module):
        def forward(self, sentences: Sequence[str]) -> torch.Tensor:
            t = torch.tensor([angles[s] for s in sentences], dtype=torch.float64)
            return torch.stack([torch.cos(t), torch.sin(t)], dim=1)

    return Angles()


def test_spearman_and_pearson_match_a_hand_computation() -> None:
    # pair i: "x" (angle 0) against "y_i" (angle a_i): similarity cos(a_i)
    angles = [0.1, 0.5, 0.9, 1.2, 2.0]
    table = {"x": 0.0, **{f"y{i}": a for i, a in enumerate(angles)}}
    gold = [4.0, 5.0, 2.0, 3.0, 0.0]
    result = sts_spearman(_angle_encoder(table), ["x"] * 5, [f"y{i}" for i in range(5)], gold)
    # similarities cos(a) decrease with a: ranks 5, 4, 3, 2, 1; gold ranks 4, 5, 2, 3, 1;
    # d = 1, -1, 1, -1, 0; rho = 1 - 6 * 4 / (5 * 24) = 0.8
    assert result.spearman == pytest.approx(0.8, abs=1e-12)
    sims = [math.cos(a) for a in angles]
    ms, mg = sum(sims) / 5, sum(gold) / 5
    cov = sum((s - ms) * (g - mg) for s, g in zip(sims, gold, strict=True))
    var_s = sum((s - ms) ** 2 for s in sims)
    var_g = sum((g - mg) ** 2 for g in gold)
    # embeddings come back as float32: agreement to float32 precision
    assert result.pearson == pytest.approx(cov / math.sqrt(var_s * var_g), abs=1e-6)
    assert result.pairs == 5
    assert torch.allclose(result.similarities, torch.tensor(sims, dtype=torch.float64))


def test_spearman_uses_ranks_only_and_average_ranks_for_ties() -> None:
    z1 = torch.tensor([[1.0, 0.0]] * 4)
    z2 = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 1.0]])  # cosines decrease
    assert sts_correlation(z1, z2, [3.0, 2.0, 1.0, 0.0]).spearman == pytest.approx(1.0)
    # a monotone change of the gold scale changes Pearson, never Spearman
    squashed = sts_correlation(z1, z2, [30.0, 2.0, 1.0, 0.0])
    assert squashed.spearman == pytest.approx(1.0) and squashed.pearson < 0.99
    # ties: gold ranks (1.5, 1.5, 3, 4) against similarity ranks (4, 3, 2, 1) reversed:
    # rho = Pearson of the ranks = -0.9486832980505138 (computed by hand: -3 / sqrt(10))
    tied = sts_correlation(z1, z2, [0.0, 0.0, 1.0, 2.0])
    assert tied.spearman == pytest.approx(-3 / math.sqrt(10))
    assert math.isnan(sts_correlation(z1, z2, [1.0, 1.0, 1.0, 1.0]).spearman)


def test_the_encoder_runs_frozen_in_eval_mode_and_its_mode_is_restored() -> None:
    encoder = minilm(max_length=16)
    assert encoder.training
    first = encode_sentences(encoder, FIRST[:5], batch_size=2)
    again = encode_sentences(encoder, FIRST[:5], batch_size=5)
    assert encoder.training  # restored
    assert torch.allclose(first, again, atol=1e-5)  # no dropout; batching changes nothing
    assert not first.requires_grad and first.dtype == torch.float32


def test_pretrained_minilm_ranks_hand_written_pairs_far_better_than_a_random_one() -> None:
    pretrained = sts_spearman(minilm(), FIRST, SECOND, GOLD, batch_size=8)
    torch.manual_seed(0)
    random = sts_spearman(minilm(pretrained=False), FIRST, SECOND, GOLD, batch_size=8)
    # measured: about 0.96 against 0.59 (a random transformer still sees shared words)
    assert pretrained.spearman > 0.85 and pretrained.pearson > 0.8
    assert random.spearman < pretrained.spearman - 0.2


def test_bad_input_is_refused_before_anything_is_encoded() -> None:
    def never(sentences: list[str]) -> torch.Tensor:
        raise AssertionError("encoded")

    with pytest.raises(EvaluationError, match="one entry per pair"):
        sts_spearman(never, ["a", "b"], ["c"], [1.0, 2.0])
    with pytest.raises(EvaluationError, match="at least 2"):
        sts_spearman(never, ["a"], ["b"], [1.0])
    with pytest.raises(EvaluationError, match="finite"):
        sts_spearman(never, ["a", "b"], ["c", "d"], [1.0, float("nan")])
    with pytest.raises(EvaluationError, match="list of strings"):
        encode_sentences(never, "a sentence")
    with pytest.raises(EvaluationError, match=r"\(n, D\) tensor"):
        encode_sentences(lambda s: torch.ones(len(s)), ["a", "b"])
    with pytest.raises(EvaluationError, match="batch_size"):
        encode_sentences(never, ["a"], batch_size=0)


def test_documented_examples_run() -> None:
    module = importlib.import_module("fmicl_registry.evaluation.sts")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
