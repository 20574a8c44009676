"""Benchmark the objectives: forward+backward time and peak memory against references.

Prints, float32 on the CPU, D = 128, gamma = 1, alpha = 40:
- f-MICL (``fm.get_objective("fmicl", divergence=...)``, the paper's view-1 negatives) for every
  catalog divergence at N in {256, 1024, 4096}, against a hand-written torch implementation of
  the same formula measured in the same run: ``torch.pdist`` as the paper's code (pairs i < j,
  half of ours; the mean is the same) and the naive term formulas of ``benchmarks/divergences.py``;
- f-MICL with a MoCo queue (N = 256 queries, K = 65,536 keys, queue negatives only), against
  the dense hand-written ``cdist`` form: here our chunked negative term shows its memory;
- our ``infonce`` against lightly's ``NTXentLoss`` when lightly is installed
  (``pip install lightly``; skipped otherwise).

Peak memory comes from ``torch.profiler`` allocation events (CPU allocator, not Python objects),
measured in a separate run from the timing. Ratios are ours / reference: below 1 is better.

Run: ``.venv/bin/python benchmarks/objectives.py`` (about 1.5 minutes on 2 cores);
``--quick`` for N in {256, 1024} and three divergences (about 20 s); ``--threads 1`` times on
one thread (on a machine shared with other jobs, multi-threaded kernels wait for descheduled
threads at every launch, which inflates whichever side launches more kernels; one thread is
the steadier comparison there).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from divergences import HAND_WRITTEN, Term  # the sibling benchmark's hand-written terms

D, GAMMA, ALPHA = 128, 1.0, 40.0
Loss = Callable[[], torch.Tensor]


def timed(losses: list[Loss], inputs: list[torch.Tensor], repeat: int) -> list[float]:
    """Median seconds of ``loss().backward()`` for each loss, after one warm-up; the losses
    take turns, so a change in machine load hits them alike."""
    samples: list[list[float]] = [[] for _ in losses]
    for i in range(repeat + 1):
        for loss, times in zip(losses, samples, strict=True):
            for x in inputs:
                x.grad = None
            start = time.perf_counter()
            loss().backward()
            if i:
                times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in samples]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The profiler's C++ side writes start/stop lines and a GPU probe's failure to file
    descriptor 2 on every use; keep them out of the table."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_mib(loss: Loss, inputs: list[torch.Tensor]) -> float:
    """Peak bytes allocated (MiB) during ``loss().backward()``, from the profiler's events."""
    for x in inputs:
        x.grad = None
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss().backward()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()  # type: ignore[union-attr]
        if e.name() == "[memory]"
    )
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak / 2**20


def reference_fmicl(z1: torch.Tensor, z2: torch.Tensor, pos: Term, neg: Term) -> torch.Tensor:
    """The f-MICL objective (Lu et al. 2023) by hand, as the paper's code does (pdist, i < j)."""
    x, y = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    log_r_pos = -GAMMA * (x - y).pow(2).sum(1)
    log_r_neg = -GAMMA * torch.pdist(x).pow(2)
    return -(pos(log_r_pos).mean() - ALPHA * neg(log_r_neg).mean())


def reference_queue(
    z1: torch.Tensor, z2: torch.Tensor, queue: torch.Tensor, pos: Term, neg: Term
) -> torch.Tensor:
    """f-MICL with queue negatives only, by hand: one dense (N, K) cdist."""
    x, y, k = F.normalize(z1, dim=1), F.normalize(z2, dim=1), F.normalize(queue, dim=1)
    log_r_pos = -GAMMA * (x - y).pow(2).sum(1)
    log_r_neg = -GAMMA * torch.cdist(x, k).pow(2)
    return -(pos(log_r_pos).mean() - ALPHA * neg(log_r_neg).mean())


def row(cells: list[str], widths: list[int]) -> str:
    return " ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def compare(label: str, ours: Loss, ref: Loss, inputs: list[torch.Tensor], repeat: int) -> str:
    with torch.no_grad():
        a, b = float(ours()), float(ref())
    diff = abs(a - b) / max(1.0, abs(b))
    t_ours, t_ref = timed([ours, ref], inputs, repeat)
    m_ours, m_ref = peak_mib(ours, inputs), peak_mib(ref, inputs)
    cells = [
        label,
        f"{t_ours * 1e3:.1f}",
        f"{t_ref * 1e3:.1f}",
        f"{t_ours / t_ref:.2f}",
        f"{m_ours:.1f}",
        f"{m_ref:.1f}",
        f"{m_ours / m_ref:.2f}",
        f"{diff:.0e}",
    ]
    return row(cells, WIDTHS)


COLUMNS = ["case", "ours ms", "ref ms", "t ratio", "ours MiB", "ref MiB", "m ratio", "rel diff"]
WIDTHS = [24, 9, 9, 8, 9, 9, 8, 9]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and divergences")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("FMICL_CACHE_DIR", tempfile.mkdtemp(prefix="fmicl-bench-"))
    import fmicl_registry as fm

    sizes = [256, 1024] if args.quick else [256, 1024, 4096]
    names = ["js", "kl", "pearson"] if args.quick else fm.list_divergences()
    keys = 65536
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, D={D}, "
        f"gamma={GAMMA:g}, alpha={ALPHA:g}; ratios are ours / reference"
    )
    header = row(COLUMNS, WIDTHS)

    print(f"\nf-MICL, view-1 negatives; reference: hand-written pdist (pairs i < j)\n{header}")
    print("-" * len(header))
    for n in sizes:
        z1, z2 = (torch.randn(n, D, requires_grad=True) for _ in range(2))
        repeat = 3 if n >= 4096 else 7
        for name in names:
            objective = fm.get_objective("fmicl", divergence=name, gamma=GAMMA, alpha=ALPHA)
            ours = partial(objective, z1, z2)
            ref = partial(reference_fmicl, z1, z2, *HAND_WRITTEN[name])
            print(compare(f"N={n} {name}", ours, ref, [z1, z2], repeat))

    print(f"\nf-MICL with a queue: N=256, K={keys}; reference: dense hand-written cdist\n{header}")
    print("-" * len(header))
    z1, z2 = (torch.randn(256, D, requires_grad=True) for _ in range(2))
    queue = torch.randn(keys, D)
    for name in names:
        objective = fm.get_objective(
            "fmicl", divergence=name, gamma=GAMMA, alpha=ALPHA, negatives="none"
        )
        ours = partial(objective, z1, z2, queue=queue)
        ref = partial(reference_queue, z1, z2, queue, *HAND_WRITTEN[name])
        print(compare(f"K={keys} {name}", ours, ref, [z1, z2], 3))

    try:
        from lightly.loss import NTXentLoss
    except Exception as error:  # not installed, or broken against this torch
        print(f"\nskipping infonce vs lightly's NTXentLoss: lightly unavailable ({error!r})")
        return
    print(f"\ninfonce (temperature 0.5) vs lightly's NTXentLoss\n{header}")
    print("-" * len(header))
    lightly_loss = NTXentLoss(temperature=0.5)
    ours_loss = fm.get_objective("infonce", temperature=0.5)
    for n in sizes:
        z1, z2 = (torch.randn(n, D, requires_grad=True) for _ in range(2))
        ours, ref = partial(ours_loss, z1, z2), partial(lightly_loss, z1, z2)
        print(compare(f"N={n} infonce", ours, ref, [z1, z2], 3 if n >= 4096 else 7))


if __name__ == "__main__":
    main()
