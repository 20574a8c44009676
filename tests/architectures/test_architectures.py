"""Architectures: each trains two SGD steps on each backbone it supports, with f-MICL and with
its baseline. Every step is checked against a hand-built reference: the momentum encoder
follows the EMA formula, the keys come from it, the queue is first in first out, and the loss
is the objective called by hand on the same queries, keys and queued negatives."""

from __future__ import annotations

import copy
import doctest
import importlib
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import fmicl_registry as fm
from fmicl_registry.architectures import (
    ArchitectureError,
    MoCo,
    MoCoV3,
    SimCLR,
    default_backbone,
    get_architecture,
)
from fmicl_registry.backbones import get_backbone

N = 4
QUEUE = 6  # smaller than two steps of keys: the second step wraps around
BACKBONES: dict[str, dict[str, Any]] = {
    "small_cnn": {"input_shape": (1, 8, 8), "width": 8, "output_dim": 16},
    # The ImageNet stem keeps the CPU cost low (the CIFAR stem is tested in tests/backbones).
    "resnet18": {"input_shape": (3, 32, 32), "cifar_stem": False},
    "resnet50": {"input_shape": (3, 32, 32), "cifar_stem": False},
    "vit_small": {"input_shape": (3, 16, 16), "num_layers": 1},
}
SUPPORTED = {
    "simclr": ["small_cnn", "resnet18", "resnet50", "vit_small"],
    "moco": ["small_cnn", "resnet18", "resnet50", "vit_small"],
    "mocov3": ["vit_small", "resnet18"],
}
BASELINE: dict[str, tuple[str, dict[str, Any]]] = {
    "simclr": ("infonce", {"temperature": 0.5}),
    "moco": ("moco_infonce", {"temperature": 0.2, "queue_size": 0}),
    "mocov3": ("moco_infonce", {"temperature": 0.2, "queue_size": 0}),
}
HEADS: dict[str, dict[str, Any]] = {
    "simclr": {"hidden_dim": 32, "out_dim": 16},
    "moco": {"hidden_dim": 32, "out_dim": 16, "queue_size": QUEUE, "momentum": 0.9},
    "mocov3": {"hidden_dim": 32, "out_dim": 16, "predictor_hidden_dim": 24, "momentum": 0.9},
}


class Recorder(nn.Module):
    """Calls the objective and remembers what it was given."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, queue: Any = None) -> torch.Tensor:
        self.calls.append((z1.detach().clone(), z2.detach().clone(), queue))
        if queue is None:
            return self.inner(z1, z2)  # type: ignore[no-any-return]
        return self.inner(z1, z2, queue=queue.clone())  # type: ignore[no-any-return]

    def by_hand(self) -> torch.Tensor:
        total = torch.zeros(())
        for z1, z2, queue in self.calls:
            total = total + (self.inner(z1, z2) if queue is None else self.inner(z1, z2, queue))
        return total


def _objective(kind: str, arch: str) -> nn.Module:
    if kind == "fmicl":
        return fm.get_objective("fmicl", divergence="kl")
    name, options = BASELINE[arch]
    return fm.get_objective(name, **options)


def _build(arch: str, backbone: str, objective: nn.Module, **options: Any) -> nn.Module:
    torch.manual_seed(0)
    return get_architecture(
        arch,
        objective=objective,
        backbone=backbone,
        backbone_options=BACKBONES[backbone],
        **{**HEADS[arch], **options},
    )


def _views(backbone: str, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(N, *BACKBONES[backbone]["input_shape"], generator=g)
    return x + 0.1 * torch.randn(x.shape, generator=g), x + 0.1 * torch.randn(x.shape, generator=g)


def _pairs(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(momentum module, the module it follows)."""
    if isinstance(model, MoCo):
        return [(model.momentum_encoder, model.encoder), (model.momentum_head, model.head)]
    if isinstance(model, MoCoV3):
        return [
            (model.momentum_encoder, model.encoder),
            (model.momentum_projector, model.projector),
        ]
    return []


def _ema_by_loop(model: nn.Module, m: float) -> None:
    """The EMA formula, one parameter at a time, on a copy."""
    with torch.no_grad():
        for target, source in _pairs(model):
            for k, q in zip(target.parameters(), source.parameters(), strict=True):
                k.copy_(m * k + (1 - m) * q)


def _reference(model: nn.Module, before: nn.Module, v1: torch.Tensor, v2: torch.Tensor) -> None:
    """Check the step just taken by ``model`` against ``before`` (a copy from before it)."""
    recorder = model.objective
    assert isinstance(recorder, Recorder)
    ref = before  # used up: its momentum modules are moved to where the model's should be
    ref.train()
    if isinstance(model, SimCLR):
        (z1, z2, queue), *more = recorder.calls
        assert not more and queue is None
        want1, want2 = ref.embed(torch.cat([v1, v2])).chunk(2)
        torch.testing.assert_close(z1, want1.detach())
        torch.testing.assert_close(z2, want2.detach())
        return
    _ema_by_loop(ref, model.momentum)
    for (target, _), (got, _) in zip(_pairs(ref), _pairs(model), strict=True):
        for want_p, got_p in zip(target.parameters(), got.parameters(), strict=True):
            torch.testing.assert_close(got_p, want_p, rtol=1e-6, atol=1e-7)
            assert not got_p.requires_grad
            with torch.no_grad():  # rounding apart (BN on 4 rows amplifies it), the same
                want_p.copy_(got_p)
    q1, q2 = ref.queries(v1).detach(), ref.queries(v2).detach()  # with a graph, as the model
    with torch.no_grad():
        if isinstance(model, MoCo):
            k1 = ref.momentum_head(ref.momentum_encoder(v1))
            k2 = ref.momentum_head(ref.momentum_encoder(v2))
        else:
            k1 = ref.momentum_projector(ref.momentum_encoder(v1))
            k2 = ref.momentum_projector(ref.momentum_encoder(v2))
    if isinstance(model, MoCoV3):  # symmetric: (q1, k2) then (q2, k1)
        (a1, b1, n1), (a2, b2, n2) = recorder.calls
        assert n1 is None and n2 is None
        for got, want in ((a1, q1), (b1, k2), (a2, q2), (b2, k1)):
            torch.testing.assert_close(got, want)
        return
    (a1, b1, negatives), *more = recorder.calls
    assert not more
    torch.testing.assert_close(a1, q1)
    torch.testing.assert_close(b1, k2)
    # The objective received the queue as it was before the step, as extra negatives.
    assert before.queue is not None and negatives is not None
    torch.testing.assert_close(negatives, before.queue.keys)
    # FIFO: this step's keys (normalised) replaced the oldest entries.
    where = (int(before.queue.position) + torch.arange(N)) % QUEUE
    torch.testing.assert_close(model.queue.keys[where], F.normalize(k2, dim=-1))
    untouched = torch.ones(QUEUE, dtype=torch.bool)
    untouched[where] = False
    torch.testing.assert_close(model.queue.keys[untouched], before.queue.keys[untouched])
    assert int(model.queue.position) == (int(before.queue.position) + N) % QUEUE


CASES = [
    pytest.param(
        arch,
        backbone,
        kind,
        id=f"{arch}-{backbone}-{kind}",
        marks=[pytest.mark.slow] if backbone.startswith("resnet") else [],  # seconds on a CPU
    )
    for arch, backbones in SUPPORTED.items()
    for backbone in backbones
    for kind in ("fmicl", "baseline")
]


@pytest.mark.parametrize(("arch", "backbone", "kind"), CASES)
def test_trains_two_steps_as_the_reference_says(arch: str, backbone: str, kind: str) -> None:
    model = _build(arch, backbone, Recorder(_objective(kind, arch)))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    start = [p.detach().clone() for p in trainable]
    for step in range(2):
        v1, v2 = _views(backbone, step)
        before = copy.deepcopy(model)
        model.objective.calls.clear()
        optimizer.zero_grad()
        loss = model(v1, v2)
        assert loss.shape == () and torch.isfinite(loss)
        torch.testing.assert_close(loss.detach(), model.objective.by_hand())
        _reference(model, before, v1, v2)
        loss.backward()
        optimizer.step()
    grads = [p.grad is not None and bool(p.grad.abs().max() > 1e-6) for p in trainable]
    changed = [not torch.equal(p, s) for p, s in zip(trainable, start, strict=True)]
    assert all(c for c, g in zip(changed, grads, strict=True) if g)
    encoder = {id(p) for p in model.encoder.parameters()}
    assert any(c for p, c in zip(trainable, changed, strict=True) if id(p) in encoder)


def test_mocov3_loss_is_the_sum_of_two_hand_built_terms() -> None:
    objective = fm.get_objective("fmicl", divergence="js")
    model = _build("mocov3", "vit_small", objective).eval()  # eval: nothing moves
    v1, v2 = _views("vit_small", 0)
    with torch.no_grad():
        q1, q2 = model.queries(v1), model.queries(v2)
        k1, k2 = model.keys(v1), model.keys(v2)
        want = objective(q1, k2) + objective(q2, k1)
        got = model(v1, v2)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, 2 * objective(q1, k2))  # both terms, not one twice


def test_moco_symmetric_uses_both_directions_and_enqueues_both_keys() -> None:
    recorder = Recorder(fm.get_objective("moco_infonce", queue_size=0))
    model = _build("moco", "small_cnn", recorder, symmetric=True, queue_size=8)
    before = copy.deepcopy(model)
    v1, v2 = _views("small_cnn", 0)
    loss = model(v1, v2)
    (_, k2, n1), (_, k1, n2) = recorder.calls
    torch.testing.assert_close(n1, before.queue.keys)
    torch.testing.assert_close(n2, before.queue.keys)
    torch.testing.assert_close(loss.detach(), recorder.by_hand())
    torch.testing.assert_close(model.queue.keys, F.normalize(torch.cat([k1, k2]), dim=-1))
    assert int(model.queue.position) == 0


def test_moco_eval_mode_moves_nothing() -> None:
    model = _build("moco", "small_cnn", fm.get_objective("fmicl", divergence="kl")).eval()
    state = copy.deepcopy(model.state_dict())
    loss = model(*_views("small_cnn", 0))
    assert torch.isfinite(loss)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_moco_refuses_an_objective_without_a_queue_parameter() -> None:
    backbone = get_backbone("small_cnn", **BACKBONES["small_cnn"])
    for name in ("infonce", "align_uniform"):
        with pytest.raises(ArchitectureError, match=r"takes no queue parameter.*'fmicl'") as err:
            MoCo(backbone, fm.get_objective(name))
        assert "moco_infonce" in str(err.value) and "queue_size=0" in str(err.value)
    recorder = Recorder(fm.get_objective("infonce"))
    model = MoCo(backbone, recorder, queue_size=0, hidden_dim=8, out_dim=4)
    assert model.queue is None
    model(*_views("small_cnn", 0))
    assert recorder.calls[0][2] is None  # called as objective(q, k)


def test_moco_with_queue_size_0_lets_the_objective_keep_its_own_queue() -> None:
    objective = fm.get_objective("moco_infonce", queue_size=8)
    model = _build("moco", "small_cnn", objective, queue_size=0)
    model(*_views("small_cnn", 0))
    assert int(objective.queue.position) == N  # the objective enqueued the keys itself


def test_state_dict_resumes_momentum_encoder_and_queue() -> None:
    model = _build("moco", "small_cnn", fm.get_objective("fmicl", divergence="kl"))
    model(*_views("small_cnn", 0))
    state = model.state_dict()
    assert {"queue.keys", "queue.position"} <= set(state)
    assert any(k.startswith("momentum_encoder.") for k in state)
    fresh = _build("moco", "small_cnn", fm.get_objective("fmicl", divergence="kl"))
    fresh.load_state_dict(state)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert int(fresh.queue.position) == N


def test_bn_splits_normalises_queries_per_chunk() -> None:
    recorder = Recorder(fm.get_objective("fmicl", divergence="kl"))
    model = _build("moco", "small_cnn", recorder, bn_splits=2)
    reference = copy.deepcopy(model)
    v1, v2 = _views("small_cnn", 0)
    model(v1, v2)
    with torch.no_grad():
        halves = [reference.head(reference.encoder(c)) for c in v1.chunk(2)]
    torch.testing.assert_close(recorder.calls[0][0], torch.cat(halves))
    model.eval()  # running statistics: the shuffle and the split change nothing
    with torch.no_grad():
        torch.testing.assert_close(model.keys(v2), model._key_network(v2))


@pytest.mark.parametrize(
    ("arch", "options", "message"),
    [
        ("moco", {"momentum": 1.5}, r"momentum must be in \[0, 1\]"),
        ("moco", {"queue_size": -1}, "queue_size must be an int >= 0"),
        ("mocov3", {"predictor_layers": 0}, "predictor_layers must be an int >= 1"),
        ("simclr", {"head_layers": 0}, "head_layers must be an int >= 1"),
        ("simclr", {"hiden_dim": 8}, r"did you mean 'hidden_dim' for 'hiden_dim'"),
        ("moco", {"momentun": 0.9}, r"did you mean 'momentum' for 'momentun'"),
        ("mocov3", {"queue_size": 8}, "its options: backbone, objective, momentum"),
    ],
)
def test_clear_errors_for_bad_options(arch: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        get_architecture(
            arch,
            objective=fm.get_objective("fmicl"),
            backbone="small_cnn",
            backbone_options=BACKBONES["small_cnn"],
            **options,
        )


def test_backbone_without_output_dim_is_refused() -> None:
    with pytest.raises(ArchitectureError, match="int attribute output_dim"):
        SimCLR(nn.Linear(3, 4), fm.get_objective("infonce"))
    with pytest.raises(ArchitectureError, match="objective must be"):
        SimCLR(get_backbone("small_cnn"), "infonce")


def test_registered_with_default_backbones() -> None:
    assert set(SUPPORTED) <= set(fm.registry().names("architectures"))
    expected = {"simclr": "resnet18", "moco": "resnet18", "mocov3": "vit_small"}
    for name, backbone in expected.items():
        assert fm.registry().get("architectures", name).plugin == "architectures"
        assert fm.registry().get("architectures", name).factory.default_backbone == backbone
        assert default_backbone(name) == backbone
    with pytest.raises(fm.RegistryError, match="Did you mean 'mocov3'"):
        fm.get_component("architectures", "moco_v3")


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_get_component_builds_every_architecture(name: str) -> None:
    backbone = get_backbone("small_cnn", **BACKBONES["small_cnn"])
    model = fm.get_component(
        "architectures", name, backbone=backbone, objective=fm.get_objective("fmicl"), **HEADS[name]
    )
    assert model.encoder is backbone
    assert model(*_views("small_cnn", 0)).shape == ()


def test_default_backbone_is_built_when_none_is_named() -> None:
    model = get_architecture(
        "simclr", objective=fm.get_objective("infonce"), backbone_options={"input_shape": (3, 8, 8)}
    )
    assert model.encoder.output_dim == 512 and model.encoder.cifar_stem is True
    assert model.head[0].in_features == 512 and model.head[0].out_features == 512
    assert model.head[-1].out_features == 512
    assert sum(isinstance(m, nn.Linear) for m in model.head) == 3


def test_paper_heads() -> None:
    backbone = get_backbone("small_cnn", **BACKBONES["small_cnn"])
    moco = MoCo(backbone, fm.get_objective("moco_infonce"), queue_size=8)
    assert [m.out_features for m in moco.head if isinstance(m, nn.Linear)] == [2048, 128]
    assert not any(isinstance(m, nn.BatchNorm1d) for m in moco.head)  # MoCo v2's head
    v3 = MoCoV3(backbone, fm.get_objective("moco_infonce", queue_size=0))
    assert [m.out_features for m in v3.projector if isinstance(m, nn.Linear)] == [2048, 2048, 256]
    assert isinstance(v3.projector[-1], nn.BatchNorm1d) and not v3.projector[-1].affine
    assert [m.out_features for m in v3.predictor if isinstance(m, nn.Linear)] == [2048, 256]


@pytest.mark.parametrize(
    "name",
    [
        "fmicl_registry.architectures",
        "fmicl_registry.architectures.heads",
        "fmicl_registry.architectures.momentum",
        "fmicl_registry.architectures.simclr",
        "fmicl_registry.architectures.moco",
        "fmicl_registry.architectures.mocov3",
    ],
)
def test_docstring_examples(name: str) -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(name), optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
