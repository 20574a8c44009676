"""The negative pairs of f-MICL: which pairs each negative set takes, and the chunked sums over
them (the values and gradients of the dense path, without its memory)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import fmicl_registry as fm
from fmicl_registry.dsl.ops import SlopedTerm
from fmicl_registry.objectives import ObjectiveError, _pairs
from fmicl_registry.objectives._pairs import (
    NEGATIVES,
    chunk_rows,
    negative_blocks,
    pair_count,
    pair_sum,
    sloped_sum,
)
from fmicl_registry.similarities import Cosine, Gaussian


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach(), want.detach()
    return float((got - want).norm() / want.norm()) if want.norm() else float(got.norm())


@pytest.mark.parametrize("rows,cols,exclude", [(7, 7, (0,)), (5, 12, (3, 8)), (9, 4, (-2,))])
def test_pair_count_matches_a_loop(rows: int, cols: int, exclude: tuple[int, ...]) -> None:
    want = sum(1 for i in range(rows) for j in range(cols) if j - i not in exclude)
    assert pair_count(rows, cols, exclude) == want


@pytest.mark.parametrize(
    ("negatives", "anchors", "per_anchor"),
    [("view1", 6, 17), ("both", 12, 17), ("cross", 6, 17), ("simclr", 12, 34), ("none", 0, 0)],
)
def test_each_negative_set_pairs_every_anchor_with_the_other_samples(
    negatives: str, anchors: int, per_anchor: int
) -> None:
    # A batch of 6 at offset 6 in 18 gathered rows; row j of either view holds the sample id j.
    # A pair is left out exactly when both sides are the same sample; the others are N - 1 per
    # anchor of view 1 (the paper's), also per anchor of view 2 for "both", and SimCLR's 2N - 2
    # over both views.
    keys1 = torch.stack([torch.arange(18.0), torch.zeros(18)], dim=1)
    keys2 = keys1 + torch.tensor([0.0, 1.0])
    blocks = negative_blocks(negatives, keys1[6:12], keys2[6:12], keys1, keys2, offset=6)
    assert sum(len(a) for a, _, _ in blocks) == anchors
    for a, b, skip in blocks:
        same = a[:, None, 0] == b[None, :, 0]
        left_out = torch.zeros_like(same)
        for k in skip:
            left_out.diagonal(k).fill_(True)
        assert torch.equal(left_out, same)
        assert pair_count(len(a), len(b), skip) == len(a) * per_anchor
    with pytest.raises(ObjectiveError, match="negatives must be one of view1, both"):
        negative_blocks("all", keys1, keys2, keys1, keys2, 0)
    assert set(NEGATIVES) == {"view1", "both", "cross", "simclr", "none"}


@pytest.mark.parametrize("name", ["js", "jeffrey", "neyman"])
@pytest.mark.parametrize("exclude", [(), (0,), (3, 40)])
def test_chunked_equals_dense_in_float64(name: str, exclude: tuple[int, ...]) -> None:
    d = fm.get_divergence(name)
    sim = Gaussian(gamma=2.0)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(37, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(53, 6, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return d.negative_term(sim.pairwise(x, y))

    results = []
    for chunk in (None, 5, 37, 100):  # dense; 8 chunks with a short last one; 1; 1 (larger)
        total = pair_sum(fn, a, b, exclude, chunk_size=chunk)
        ga, gb = torch.autograd.grad(total * 1.7, (a, b))
        results.append((total, ga, gb))
    dense = results[0]
    for chunked in results[1:]:
        for got, want in zip(chunked, dense, strict=True):
            assert _rel(got, want) <= 1e-6


def test_chunked_handles_the_same_tensor_on_both_sides_and_critics() -> None:
    d = fm.get_divergence("kl")
    sim = Cosine(scale=3.0)
    a = torch.randn(20, 5, dtype=torch.float64, requires_grad=True)

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return d.f_star(sim.pairwise(x, y))

    (dense,) = torch.autograd.grad(pair_sum(fn, a, a, (0,), chunk_size=None), a)
    (chunked,) = torch.autograd.grad(pair_sum(fn, a, a, (0,), chunk_size=3), a)
    assert _rel(chunked, dense) <= 1e-6


def test_objective_chunked_and_dense_agree_with_a_queue() -> None:
    z1, z2 = (torch.randn(24, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    queue = torch.randn(300, 8, dtype=torch.float64, requires_grad=True)
    out = []
    for chunk in (None, 7):
        objective = fm.get_objective(
            "fmicl", divergence="vlc", negatives="simclr", chunk_size=chunk
        )
        loss = objective(z1, z2, queue=queue)
        out.append((loss, *torch.autograd.grad(loss, (z1, z2, queue))))
    for got, want in zip(out[1], out[0], strict=True):
        assert _rel(got, want) <= 1e-6


def test_auto_chooses_dense_for_small_and_chunks_for_large() -> None:
    assert chunk_rows(256, 256) is None
    assert chunk_rows(4096, 4096) == _pairs.CHUNK_PAIRS["cpu"] // 4096
    assert chunk_rows(256, 65536) == _pairs.CHUNK_PAIRS["cpu"] // 65536
    assert chunk_rows(256, 65536, device="cuda") == _pairs.CHUNK_PAIRS["default"] // 65536
    assert chunk_rows(10, 10, chunk_size=3) == 3  # forced
    assert chunk_rows(10**6, 10**6, chunk_size=None) is None  # forced dense
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_rows(1, 1, chunk_size=0)


def _peak_bytes(fn: object) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()  # type: ignore[operator]
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()  # type: ignore[union-attr]
        if e.name() == "[memory]"
    )
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak


def test_chunked_path_does_not_hold_n_by_k_intermediates() -> None:
    n, k, dim = 32, 32768, 4
    z1, z2 = (torch.randn(n, dim, requires_grad=True) for _ in range(2))
    queue = torch.randn(k, dim)
    one_block = n * k * 4  # one float32 (N, K) tensor: 4 MiB

    def run(chunk: int | None) -> None:
        objective = fm.get_objective("fmicl", divergence="js", negatives="none", chunk_size=chunk)
        objective(z1, z2, queue=queue).backward()

    dense, chunked = _peak_bytes(lambda: run(None)), _peak_bytes(lambda: run(2))
    assert dense > 3 * one_block  # autograd keeps several (N, K) tensors (about 5)
    # Chunks of 2 rows: a few (2, K) tensors at a time and (K, D) copies of the queue; no
    # single (N, K) tensor ever exists.
    assert chunked < one_block


@pytest.mark.parametrize("chunk", [None, 5])
@pytest.mark.parametrize("exclude", [(), (0,), (3, -40)])
def test_sloped_sums_equal_autograd_through_the_term(
    chunk: int | None, exclude: tuple[int, ...]
) -> None:
    # term=: the sum of term(fn(a, b)), differentiated by the term's slope, against autograd
    # through the general form (float64: the same function).
    d = fm.get_divergence("vlc")
    sim = Gaussian(gamma=2.0)
    terms = d.terms_on(*sim.value_range())
    g = torch.Generator().manual_seed(1)
    a = torch.randn(37, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(53, 6, generator=g, dtype=torch.float64, requires_grad=True)

    def plain(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return d.negative_term(sim.pairwise(x, y))

    want = pair_sum(plain, a, b, exclude, chunk_size=None)
    got = pair_sum(sim.pairwise, a, b, exclude, chunk_size=chunk, term=terms.negative)
    for left, right in zip(
        (got, *torch.autograd.grad(got * 1.3, (a, b))),
        (want, *torch.autograd.grad(want * 1.3, (a, b))),
        strict=True,
    ):
        assert _rel(left, right) <= 1e-12


@pytest.mark.parametrize("chunk", [None, 4])
def test_symmetric_sums_differentiate_one_side_and_double_it(chunk: int | None) -> None:
    d = fm.get_divergence("js")
    sim = Gaussian(gamma=1.5)
    terms = d.terms_on(*sim.value_range())
    a = torch.randn(19, 5, dtype=torch.float64, requires_grad=True)
    results = []
    for symmetric in (False, True):
        total = pair_sum(
            sim.pairwise, a, a, (0,), chunk_size=chunk, term=terms.negative, symmetric=symmetric
        )
        results.append((total, *torch.autograd.grad(total, a)))
    for got, want in zip(results[1], results[0], strict=True):
        assert _rel(got, want) <= 1e-12
    assert results[1][0].item() == results[0][0].item()  # the value itself is untouched


def test_excluded_pairs_cannot_poison_the_sum() -> None:
    # The excluded self pairs are zeroed in place; a term that is NaN or infinite there (a
    # huge mu, say) leaves the value and the gradient of the other pairs alone.
    x = torch.tensor([[math.inf, -1.0], [-2.0, math.nan]], requires_grad=True)
    term = SlopedTerm(torch.exp, torch.exp)
    total = sloped_sum(x, term, exclude=(0,))
    total.backward()
    assert x.grad is not None
    assert total.item() == pytest.approx(math.exp(-1.0) + math.exp(-2.0))
    assert x.grad.tolist() == [
        [0.0, pytest.approx(math.exp(-1.0))],
        [pytest.approx(math.exp(-2.0)), 0.0],
    ]
