"""The plugin module named by the ``fmicl`` entry point: one function per hook."""

from __future__ import annotations

from importlib.resources import as_file, files
from typing import Any

import fmicl_registry as fm


@fm.hookimpl
def register_divergences(register: Any) -> None:
    """Divergences shipped as TOML spec files in ``specs/``."""
    for entry in (files(__package__) / "specs").iterdir():
        if entry.name.endswith(".toml"):
            with as_file(entry) as path:
                register(**fm.load_divergence_spec(path).as_kwargs())


class Laplace:
    """Laplace-kernel log density ratio: ``log r = log mu - gamma ||x - y||`` on unit vectors.

    Like the f-Gaussian similarity (Lu et al. 2023) with the distance instead of its square.
    """

    kind = "log_ratio"

    def __init__(self, gamma: float = 1.0, mu: float = 1.0) -> None:
        import math

        self.gamma = gamma
        self.log_mu = math.log(mu)

    def value_range(self) -> tuple[float, float]:
        return (self.log_mu - 2.0 * self.gamma, self.log_mu)  # ||x - y|| <= 2 on the sphere

    def pairwise(self, a: Any, b: Any) -> Any:
        import torch

        a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
        # sqrt of a clamped squared distance: cdist's gradient is NaN at distance 0.
        squared = (2 - 2 * a @ b.T).clamp_min(1e-12)
        return self.log_mu - self.gamma * squared.sqrt()

    def paired(self, a: Any, b: Any) -> Any:
        import torch

        a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
        squared = (2 - 2 * (a * b).sum(-1)).clamp_min(1e-12)
        return self.log_mu - self.gamma * squared.sqrt()


@fm.hookimpl
def register_similarities(register: Any) -> None:
    register(name="laplace", factory=Laplace, description="log r = log mu - gamma ||x - y||")


def laplace_fmicl(
    divergence: str = "power", gamma: float = 2.0, alpha: float = 4.0, **options: Any
) -> Any:
    """The f-MICL objective with this plugin's divergence and Laplace similarity."""
    return fm.get_objective(
        "fmicl", divergence=divergence, similarity=Laplace(gamma=gamma), alpha=alpha, **options
    )


@fm.hookimpl
def register_objectives(register: Any) -> None:
    register(name="laplace_fmicl", factory=laplace_fmicl, description="f-MICL, power, Laplace")
