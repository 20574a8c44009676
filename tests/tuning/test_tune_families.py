"""``fmicl tune`` moves through a continuous family that a plugin declares, not only the
catalog's: Cressie-Read's power divergence (Cressie & Read 1984), registered by a throwaway
plugin with a range for its lambda, each sampled point derived by the DSL and checked here
against the closed form typed in by hand (mpmath)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mpmath
import pytest
import torch
from optuna.trial import TrialState
from tune_helpers import TINY, quiet, sqlite, trials

import fmicl_registry as fm
from fmicl_registry import components, plugins
from fmicl_registry.training.spec import load_spec
from fmicl_registry.tuning.space import significant

pytestmark = pytest.mark.slow

LOW, HIGH = 0.2, 1.9


class CressieRead:
    @fm.hookimpl
    def register_divergences(self, register: Any) -> None:
        register(
            name="cressie_read",
            generator="(u**(lam + 1) - u - lam*(u - 1))/(lam*(lam + 1))",
            params={"lam": {"default": 0.5, "range": [LOW, HIGH]}},
            description="Cressie & Read 1984, power divergence",
        )


@pytest.fixture
def family() -> Iterator[None]:
    plugins.reset()
    plugins.get_plugin_manager().register(CressieRead(), name="cressie-read-plugin")
    components.clear()
    yield
    plugins.reset()
    components.clear()


def _f_prime(lam: float, x: float) -> float:
    """f'(e^x) = (u^lam - 1)/lam, in 50-digit arithmetic."""
    with mpmath.workdps(50):
        u = mpmath.exp(mpmath.mpf(x))
        lq = mpmath.mpf(str(lam))
        return float((u**lq - 1) / lq)


def test_a_plugin_family_is_searched_through_its_range(family: None, tmp_path: Path) -> None:
    fm.tune(
        overrides=TINY,
        objectives=["cressie_read"],
        trials=3,
        out=tmp_path,
        pruner="none",
        log=quiet,
    )
    found = [t for t in trials(sqlite(tmp_path), "digits") if t.state == TrialState.COMPLETE]
    assert len(found) == 3
    values = [t.params["cressie_read/lam"] for t in found]
    assert values[0] == 0.5  # the family's default first
    assert all(LOW <= v <= HIGH for v in values)
    assert len(set(values)) == 3  # it moved through the family
    for t in found:
        kept = load_spec(Path(t.user_attrs["run_dir"]) / "spec.toml")
        lam = kept.objective.options["divergence_options"]["lam"]
        assert lam == significant(t.params["cressie_read/lam"])
        # the point trained is the family at that lambda, derived by the DSL
        divergence = fm.get_divergence("cressie_read", lam=lam)
        x = torch.linspace(-6.0, 6.0, 25, dtype=torch.float32)
        got = divergence.positive_term(x)
        want = torch.tensor([_f_prime(lam, float(v)) for v in x], dtype=torch.float64)
        error = ((got.double() - want).abs() / want.abs().clamp(min=1e-30)).max()
        assert float(error) < 1e-5, (lam, float(error))
