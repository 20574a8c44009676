"""Benchmark the divergence DSL: derivation time and the speed of the compiled terms.

Prints, per catalog divergence:
- derivation time cold (empty disk cache, sympy runs) and cached (read from disk);
- the float32 worst relative error measured at definition (value and gradient, log_r in [-80, 80]);
- forward+backward time of positive_term + negative_term on 2^20 float32 log ratios, as a ratio
  against a hand-written torch formula from the paper's table measured in the same run (the
  hand-written one is the naive composition where no stable form is obvious);
- the same for the terms the objective uses: specialised to the benchmark's range of log ratios
  (``terms_on(-30, 10)``) and differentiated by their slopes.

Run: ``.venv/bin/python benchmarks/divergences.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

Term = Callable[[torch.Tensor], torch.Tensor]
A = 1.5

HAND_WRITTEN: dict[str, tuple[Term, Term]] = {
    "kl": (lambda x: x + 1, torch.exp),
    "js": (lambda x: math.log(2) - F.softplus(-x), lambda x: F.softplus(x) - math.log(2)),
    "pearson": (lambda x: 2 * torch.expm1(x), lambda x: torch.expm1(2 * x)),
    "sh": (lambda x: -torch.expm1(-x / 2), lambda x: torch.expm1(x / 2)),
    "tsallis": (
        lambda x: A / (A - 1) * torch.exp((A - 1) * x),
        lambda x: torch.exp(A * x) + 1 / (A - 1),
    ),
    "vlc": (
        lambda x: 1 - 4 / (torch.exp(x) + 1) ** 2,
        lambda x: torch.expm1(x) * (3 * torch.exp(x) + 1) / (torch.exp(x) + 1) ** 2,
    ),
    "reverse_kl": (lambda x: -torch.exp(-x), lambda x: x - 1),
    "neyman": (lambda x: -torch.expm1(-2 * x), lambda x: -2 * torch.expm1(-x)),
    "jeffrey": (lambda x: x - torch.expm1(-x), lambda x: x + torch.expm1(x)),
}


def timed(fn: Callable[[], object], repeat: int = 7) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def fwd_bwd(pos: Term, neg: Term, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        x.grad = None
        loss = pos(x).mean() - neg(x).mean()
        loss.backward()
        return loss

    return run


def main() -> None:
    os.environ["FMICL_CACHE_DIR"] = tempfile.mkdtemp(prefix="fmicl-bench-")
    import fmicl_registry as fm
    from fmicl_registry import divergence

    torch.manual_seed(0)
    x = (torch.rand(2**20) * 40 - 30).requires_grad_()  # log_r in [-30, 10]
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, python {sys.version.split()[0]}")
    columns = [
        "cold s",
        "cached ms",
        "f32 err pos",
        "f32 err neg",
        "ours ms",
        "hand ms",
        "ratio",
        "sloped ms",
        "ratio",
    ]
    header = f"{'divergence':<11} " + " ".join(f"{c:>11}" for c in columns)
    print(header)
    print("-" * len(header))
    for name in fm.list_divergences():
        divergence._MEMO.clear()
        start = time.perf_counter()
        d = fm.get_divergence(name)
        cold = time.perf_counter() - start
        divergence._MEMO.clear()
        start = time.perf_counter()
        d = fm.get_divergence(name)
        cached = time.perf_counter() - start
        assert d.from_cache
        ours = timed(fwd_bwd(d.positive_term, d.negative_term, x))
        hand = timed(fwd_bwd(*HAND_WRITTEN[name], x))
        on_range = d.terms_on(-30.0, 10.0)
        sloped = timed(fwd_bwd(on_range.positive, on_range.negative, x))
        err = d.accuracy
        cells = [
            f"{cold:.2f}",
            f"{cached * 1e3:.1f}",
            f"{err['positive_term']:.1e}",
            f"{err['negative_term']:.1e}",
            f"{ours * 1e3:.1f}",
            f"{hand * 1e3:.1f}",
            f"{ours / hand:.2f}",
            f"{sloped * 1e3:.1f}",
            f"{sloped / hand:.2f}",
        ]
        print(f"{name:<11} " + " ".join(f"{c:>11}" for c in cells))


if __name__ == "__main__":
    main()
