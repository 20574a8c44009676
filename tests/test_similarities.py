"""The similarities of Lu et al. 2023 (f-Gaussian, cosine), against loop-computed formulas."""

from __future__ import annotations

import math

import pytest
import torch

import fmicl_registry as fm
from fmicl_registry.hookspecs import Similarity
from fmicl_registry.similarities import Cosine, Gaussian, SimilarityError


def _rows(t: torch.Tensor) -> list[list[float]]:
    out = []
    for row in t.tolist():
        norm = math.sqrt(sum(v * v for v in row))
        out.append([v / norm for v in row])
    return out


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (
        3 * torch.randn(5, 4, generator=g, dtype=torch.float64),
        torch.randn(6, 4, generator=g, dtype=torch.float64),
    )


@pytest.mark.parametrize("gamma,mu", [(1.0, 1.0), (20.0, 1.0), (0.5, 3.0)])
def test_gaussian_is_log_mu_minus_gamma_squared_distance(gamma: float, mu: float) -> None:
    a, b = _data()
    sim = fm.get_similarity("gaussian", gamma=gamma, mu=mu)
    xs, ys = _rows(a), _rows(b)
    want = [
        [math.log(mu) - gamma * sum((p - q) ** 2 for p, q in zip(x, y, strict=True)) for y in ys]
        for x in xs
    ]
    torch.testing.assert_close(sim.pairwise(a, b), torch.tensor(want, dtype=torch.float64))
    torch.testing.assert_close(
        sim.paired(a, b[:5]), torch.tensor([want[i][i] for i in range(5)], dtype=torch.float64)
    )
    low, high = sim.value_range()
    assert (low, high) == (math.log(mu) - 4 * gamma, math.log(mu))
    values = sim.pairwise(torch.cat([a, -a]), a)
    assert values.min() >= low and values.max() <= high
    assert math.isclose(float(values.min()), low)  # antipodal pairs reach the bound


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_cosine_is_scaled_inner_product_of_unit_vectors(scale: float) -> None:
    a, b = _data()
    sim = fm.get_similarity("cosine", scale=scale)
    want = [[scale * sum(p * q for p, q in zip(x, y, strict=True)) for y in _rows(b)]
            for x in _rows(a)]  # fmt: skip
    torch.testing.assert_close(sim.pairwise(a, b), torch.tensor(want, dtype=torch.float64))
    torch.testing.assert_close(sim.paired(a, a), torch.full((5,), scale, dtype=torch.float64))
    assert sim.value_range() == (-scale, scale)


def test_similarities_follow_the_protocol_and_are_registered() -> None:
    assert fm.registry().names("similarities")[:2] == ["cosine", "gaussian"]
    for sim, kind in ((fm.get_similarity("gaussian"), "log_ratio"), (Cosine(), "critic")):
        assert isinstance(sim, Similarity) and sim.kind == kind
    assert repr(fm.get_similarity("gaussian", gamma=20)) == "Gaussian(gamma=20, mu=1)"


def test_values_stay_in_range_in_low_precision() -> None:
    a = torch.nn.functional.normalize(torch.randn(64, 32), dim=-1)
    for dtype in (torch.float32, torch.bfloat16):
        for sim in (Gaussian(gamma=20.0), Cosine()):
            low, high = sim.value_range()
            values = sim.pairwise(a.to(dtype), torch.cat([a, -a]).to(dtype))
            assert values.dtype == dtype
            assert float(values.min()) >= low and float(values.max()) <= high


def test_objects_are_passed_through_and_bad_options_refused() -> None:
    sim = Gaussian(gamma=2.0)
    assert fm.get_similarity(sim) is sim
    with pytest.raises(SimilarityError, match="by name"):
        fm.get_similarity(sim, gamma=3.0)
    with pytest.raises(SimilarityError, match="'gamma' for 'gama'"):
        fm.get_similarity("gaussian", gama=3.0)
    with pytest.raises(SimilarityError, match="finite number > 0"):
        Cosine(scale=math.inf)
    with pytest.raises(fm.RegistryError, match="Did you mean 'cosine'"):
        fm.get_similarity("cosin")
