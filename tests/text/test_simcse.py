"""The SimCSE architecture: the same sentences twice through the dropout-active encoder, an
MLP head, any registered objective."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest
import torch
from torch import nn

import fmicl_registry as fm
from fmicl_registry.architectures import ArchitectureError, SimCSE, get_architecture
from fmicl_registry.backbones import minilm

SENTENCES = [
    "A man is playing a guitar.",
    "The weather is cold today.",
    "Dogs bark at strangers.",
    "She reads a book in the garden.",
]


class _Recorder(nn.Module):
    """An objective that keeps what it was given and returns a differentiable scalar."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        self.seen.append((z1.detach(), z2.detach()))
        return (z1 - z2).pow(2).sum() + z1.sum()


def test_the_two_views_are_two_dropout_masks_of_the_same_sentences() -> None:
    objective = _Recorder()
    model = SimCSE(minilm(max_length=16), objective)
    torch.manual_seed(0)
    model(SENTENCES, SENTENCES)
    z1, z2 = objective.seen[-1]
    assert z1.shape == z2.shape == (4, 384)
    assert not torch.allclose(z1, z2)  # train mode: different dropout masks
    assert z1.abs().max() <= 1  # the head ends in tanh
    model.eval()
    model(SENTENCES, SENTENCES)
    z1, z2 = objective.seen[-1]
    assert torch.equal(z1, z2)  # no dropout, no second view: why SimCSE trains in train mode


def test_the_loss_reaches_encoder_and_head_but_evaluation_uses_the_encoder_alone() -> None:
    model = SimCSE(minilm(max_length=16), fm.get_objective("infonce", temperature=0.05))
    loss = model(SENTENCES, SENTENCES)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.head[0].weight.grad is not None and model.head[0].weight.grad.abs().sum() > 0
    word = model.encoder.model.embeddings.word_embeddings.weight
    assert word.grad is not None and word.grad.abs().sum() > 0
    # every parameter takes part (DistributedDataParallel refuses unused ones)
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert unused == []
    model.eval()
    with torch.no_grad():
        features = model.encoder(SENTENCES)
    assert features.shape == (4, model.encoder.output_dim)  # no head: SimCSE's evaluation


@pytest.mark.parametrize(
    "objective",
    [
        {"name": "fmicl", "divergence": "js"},
        {"name": "fmicl", "divergence": "kl", "gamma": 20.0, "alpha": 409600.0},
        {"name": "infonce", "temperature": 0.05},
        {"name": "align_uniform"},
    ],
    ids=lambda o: "-".join(str(v) for v in o.values()),
)
def test_any_registered_objective_plugs_in(objective: dict[str, Any]) -> None:
    options = dict(objective)
    built = fm.get_objective(options.pop("name"), **options)
    model = get_architecture("simcse", objective=built, backbone_options={"max_length": 12})
    assert type(model.encoder).__name__ == "TransformerEncoder"  # the default backbone: minilm
    loss = model(SENTENCES, SENTENCES)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_options_and_errors() -> None:
    model = SimCSE(minilm(max_length=8), fm.get_objective("infonce"), out_dim=32)
    assert model.head[0].out_features == 32 and SimCSE.default_backbone == "minilm"
    with pytest.raises(ArchitectureError, match="single string"):
        model("one sentence", "one sentence")  # type: ignore[arg-type]
    with pytest.raises(ArchitectureError, match="pair up, got 2 and 1"):
        model(SENTENCES[:2], SENTENCES[:1])
    with pytest.raises(ArchitectureError, match="output_dim"):
        SimCSE(nn.Linear(3, 3), fm.get_objective("infonce"))
    with pytest.raises(ArchitectureError, match="out_dim must be an int"):
        SimCSE(minilm(max_length=8), fm.get_objective("infonce"), out_dim=0)


def test_registered_through_the_builtin_plugin() -> None:
    spec = fm.registry().get("architectures", "simcse")
    assert isinstance(spec, fm.ComponentSpec) and spec.plugin.endswith("architectures")
    assert spec.factory is SimCSE


def test_documented_example_runs() -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    module = importlib.import_module("fmicl_registry.architectures.simcse")
    result = doctest.testmod(module, optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
