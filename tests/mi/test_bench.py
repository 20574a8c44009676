"""The benchmark loop: estimates, statistics, flags, determinism and the objectives it accepts."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fmicl_registry as fm
from fmicl_registry.mi import (
    BenchConfig,
    BenchError,
    Objective,
    divergence_estimate,
    infonce_estimate,
    resolve_objectives,
    run_benchmark,
)
from fmicl_registry.mi.bench import _Run, _statistics, train_critic
from fmicl_registry.mi.truth import Truth

TINY = BenchConfig(
    dim=4,
    batch_size=16,
    levels=(1.0, 2.0),
    steps_per_level=6,
    hidden=8,
    embed=4,
    mc_samples=1024,
)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(2, 64),
    st.floats(-50, 50),
    st.integers(0, 2**31 - 1),
)
def test_infonce_never_exceeds_log_batch_size(b: int, scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    scores = scale * torch.randn(b, b, generator=g, dtype=torch.float64)
    scores.diagonal().add_(abs(scale) * 10)  # even a critic that separates perfectly
    assert float(infonce_estimate(scores)) <= math.log(b) + 1e-9


def test_divergence_estimate_uses_the_diagonal_as_positives() -> None:
    kl = fm.get_divergence("kl")
    scores = torch.tensor([[1.0, -2.0, 0.5], [0.0, 2.0, -1.0], [3.0, 1.0, -0.5]])
    off = scores[~torch.eye(3, dtype=torch.bool)]
    want = (scores.diagonal() + 1).mean() - torch.exp(off).mean()  # NWJ with T = log r + 1
    torch.testing.assert_close(divergence_estimate(kl, scores, clip=1e6), want)
    # The soft clip keeps the log ratios within +-clip.
    huge = torch.full((3, 3), 1e4)
    assert math.isfinite(float(divergence_estimate(kl, huge, clip=40.0)))


def test_a_tiny_run_reports_every_objective_critic_and_level() -> None:
    result = run_benchmark(["kl", "js"], TINY)
    names = [o.name for o in result.objectives]
    assert names == ["kl", "js", "infonce"]
    assert len(result.rows) == 3 * 2 * 2
    assert set(result.histories) == {(n, c) for n in names for c in ("separable", "concat")}
    assert all(len(h) == 12 for h in result.histories.values())
    row = result.row("kl", "concat", 1)
    assert row.mi == 2.0 and row.truth.value == pytest.approx(2.0)
    assert row.tail_steps == 3
    tail = torch.tensor(result.histories[("kl", "concat")][-3:], dtype=torch.float64)
    assert row.estimate == pytest.approx(float(tail.mean()))
    assert row.variance == pytest.approx(float(tail.var()))
    assert row.bias == pytest.approx(row.estimate - 2.0)
    assert row.fraction == pytest.approx(row.estimate / 2.0)
    assert result.row("js", "separable", 0).truth.method.startswith("Monte Carlo")
    summary = result.summary()
    assert summary["log_batch_size"] == pytest.approx(math.log(16))
    assert {r["objective"] for r in summary["results"]} == set(names)


def test_runs_are_deterministic_and_independent_of_the_other_objectives() -> None:
    one = run_benchmark(["kl"], replace(TINY, critics=("separable",), infonce=False))
    two = run_benchmark(["js", "kl"], replace(TINY, critics=("separable",), infonce=False))
    assert one.histories[("kl", "separable")] == two.histories[("kl", "separable")]
    other_seed = run_benchmark(["kl"], replace(TINY, critics=("separable",), infonce=False, seed=1))
    assert other_seed.histories[("kl", "separable")] != one.histories[("kl", "separable")]


def test_threads_setting_is_restored() -> None:
    before = torch.get_num_threads()
    run_benchmark(["kl"], replace(TINY, critics=("separable",), threads=1, levels=(1.0,)))
    assert torch.get_num_threads() == before


def test_a_critic_learns_on_the_kl_bound() -> None:
    # 150 steps at 2 nats in 4 dimensions: the NWJ estimate rises towards the truth.
    config = replace(TINY, levels=(2.0,), steps_per_level=150, hidden=32, embed=8)
    history = train_critic(Objective("kl", fm.get_divergence("kl"), ""), "separable", config)
    assert sum(history[-20:]) / 20 > sum(history[:20]) / 20 + 0.5


def test_non_finite_estimates_are_recorded_and_skip_the_update() -> None:
    quartic = fm.define_divergence("(u-1)**4", name="quartic")  # f*(f'(u)) ~ 3 u^4
    run = _Run(Objective("quartic", quartic, ""), "separable", TINY)
    before = [p.detach().clone() for p in run.params]

    class Huge(torch.nn.Module):  # a critic stuck at huge scores: e^(4 * 40) overflows
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], y.shape[0]), 1e4)

    run.model = Huge()
    x = torch.randn(16, 4)
    run.step(x, x)
    assert not math.isfinite(run.history[-1])
    assert all(torch.equal(a, b) for a, b in zip(before, run.params, strict=True))

    truth = Truth(1.0, 0.0, "closed form", True)
    history = [0.5, math.inf, 0.7, -math.inf, 0.9, 0.8]
    row = _statistics(run.objective, "separable", 0, history, truth, TINY, 0.5)
    assert row.nonfinite_steps == 2
    assert row.estimate == pytest.approx((0.9 + 0.8) / 2)  # finite tail values only
    assert any("not finite" in note for note in row.notes)


def test_infinite_truths_and_capped_infonce_are_noted() -> None:
    config = replace(TINY, dim=20, levels=(1.0, 8.0), critics=("separable",))
    result = run_benchmark(["neyman"], config)
    low, high = result.row("neyman", "separable", 0), result.row("neyman", "separable", 1)
    assert math.isfinite(low.truth.value) and low.truth.reliable
    assert high.truth.value == math.inf and high.bias == -math.inf and high.fraction == 0.0
    assert "true value is +inf" in high.notes
    capped = result.row("infonce", "separable", 1)
    assert any("capped at log B" in note for note in capped.notes)


def test_resolve_objectives_accepts_names_paths_and_objects(tmp_path: Path) -> None:
    spec = tmp_path / "triangle.toml"
    spec.write_text('name = "triangle"\ngenerator = "(u-1)**2/(u+1)"\n')
    mine = fm.define_divergence("(sqrt(u)-1)**2", name="hellinger_again")
    objectives = resolve_objectives(["js", str(spec), mine, "infonce"], infonce=False)
    assert [o.name for o in objectives] == ["js", "triangle", "hellinger_again", "infonce"]
    assert objectives[1].source == "file triangle.toml"
    assert objectives[-1].divergence is None and objectives[-1].kind == "infonce"


def test_resolve_objectives_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(fm.RegistryError, match="Did you mean 'js'"):
        resolve_objectives(["jss"])
    with pytest.raises(BenchError, match="given twice"):
        resolve_objectives(["kl", "kl"])
    with pytest.raises(BenchError, match="no divergence to benchmark"):
        resolve_objectives([], infonce=False)
    bad = tmp_path / "concave.toml"
    bad.write_text('name = "concave"\ngenerator = "-(u-1)**2"\n')
    with pytest.raises(fm.DivergenceSpecError, match="convex"):
        resolve_objectives([str(bad)])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"levels": ()}, "at least one MI level"),
        ({"levels": (2.0, -1.0)}, "finite and > 0"),
        ({"critics": ("bilinear",)}, "critics must be among"),
        ({"tail": 0.0}, "tail"),
        ({"batch_size": 1}, "batch_size"),
        ({"device": "no-such-device"}, "device 'no-such-device'"),
    ],
)
def test_config_validation(change: dict[str, object], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        run_benchmark(["kl"], replace(TINY, **change))  # type: ignore[arg-type]


@pytest.mark.slow
def test_worker_processes_give_the_same_results() -> None:
    config = replace(TINY, critics=("separable",), levels=(1.0,))
    serial = run_benchmark(["kl", "js"], config)
    parallel = run_benchmark(["kl", "js"], replace(config, workers=2))
    assert parallel.histories == serial.histories


def test_a_collapsed_critic_is_flagged() -> None:
    pearson = Objective("pearson", fm.get_divergence("pearson"), "")
    truth = Truth(53.6, 0.0, "closed form", True)
    collapsed = [-1.0] * 6  # the bound of a critic at log r -> -inf: -2 - (-1)
    row = _statistics(pearson, "concat", 0, collapsed, truth, TINY, 0.4)
    assert "below 0: worse than the constant critic" in row.notes
    fine = _statistics(pearson, "concat", 0, [5.0] * 6, truth, TINY, 0.4)
    assert fine.notes == ()
