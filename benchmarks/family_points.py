"""Cold definition time and float32 accuracy at awkward points of parametrised families.

A tuner (issue 15) samples a family's parameter continuously: Tsallis/Hellinger order
``a = 2.37``, Amari ``alpha = -0.63``, Cressie-Read ``lambda = 1.73``, skew JS ``p = 0.37``.
Each point is a new generator with rational exponents like ``237/100``, derived from scratch.
The points are ``AWKWARD`` in ``tests/dsl/heldout.py`` (with their hand-typed mpmath
references); for each, with the disk cache off and the in-memory memo cleared (a cold
definition), this prints:

- the CPU seconds and wall seconds the definition took (the definition budget is 15 s of CPU);
- the DSL's own measured worst float32 error (``Divergence.accuracy`` and ``slope_accuracy``);
- the worst relative error of ``positive_term`` and ``negative_term``, value and autograd
  gradient, against the held-out reference on ``log_r`` in ``[-80, 80]`` (target 1e-5);
- which conjugate was found (closed form or numeric).

Run: ``.venv/bin/python benchmarks/family_points.py`` (about a minute on 2 cores);
``--only NAME`` for one point, ``--tsallis 2.37`` to define the shipped tsallis spec
(``specs/divergences/tsallis.toml``) at a value (repeatable).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def define_cold(define: Any) -> tuple[Any, float, float, str]:
    """``define()`` with the memo cleared: (divergence or None, CPU s, wall s, error text)."""
    from fmicl_registry import divergence as divergence_module

    divergence_module._compiled.cache_clear()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        found, problem = define(), ""
    except Exception as error:  # a refusal (out of time) is a finding here
        found, problem = None, f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
    return found, time.process_time() - cpu, time.perf_counter() - wall, problem


def row(name: str, d: Any, cpu: float, wall: float, problem: str, entry: Any, table: Any) -> str:
    head = f"{name:<22} {cpu:7.2f} {wall:7.2f}"
    if d is None:
        return f"{head}  FAILED  {problem}"
    own = max([*d.accuracy.values(), *d.slope_accuracy.values()])
    points = table.points_for(d.pieces)
    errors = []
    for term in ("positive_term", "negative_term"):
        value, slope = table.measure_term(getattr(d, term), entry, points, term)
        errors += [value.error, slope.error]
    worst = max(errors)
    mark = "" if worst <= table.TARGET else " !"
    cells = " ".join(f"{e:9.2e}" for e in errors)
    conjugate = "closed" if d.conjugate is not None else "numeric"
    return f"{head} {own:9.2e} {cells} {worst:9.2e}{mark:2} {conjugate}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", metavar="NAME", action="append", help="just this point")
    parser.add_argument("--tsallis", metavar="A", type=float, action="append", default=[],
                        help="also define the tsallis spec at a = A (measured against the "
                        "Hellinger reference of order A)")  # fmt: skip
    args = parser.parse_args()
    os.environ["FMICL_CACHE_DIR"] = "off"  # cold definitions, nothing kept on disk
    import torch
    from heldout import load_table  # benchmarks/heldout.py, beside this script

    import fmicl_registry as fm

    table = load_table()
    entries = table.AWKWARD
    if args.only:
        unknown = sorted(set(args.only) - set(table.BY_NAME))
        if unknown:
            parser.error(f"unknown entries {unknown}")
        entries = [table.BY_NAME[name] for name in args.only]
    fm.get_divergence("kl")  # imports and the first compile outside the timings
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, python "
        f"{sys.version.split()[0]}; cache off; float32 target {table.TARGET:g}\n"
    )
    print(
        f"{'point':<22} {'cpu s':>7} {'wall s':>7} {'dsl own':>9} {'pos val':>9} "
        f"{'pos grad':>9} {'neg val':>9} {'neg grad':>9} {'max err':>9}    conjugate"
    )
    worst_cpu = 0.0
    for entry in entries:
        d, cpu, wall, problem = define_cold(
            lambda entry=entry: fm.define_divergence(entry.text, **entry.define_kwargs())
        )
        worst_cpu = max(worst_cpu, cpu)
        print(row(entry.name, d, cpu, wall, problem, entry, table), flush=True)
    tsallis = fm.load_divergence_spec(ROOT / "specs" / "divergences" / "tsallis.toml")
    for a in args.tsallis:
        entry = table.Entry(f"tsallis_{a}", "(u**a - 1)/(a - 1)", "", {"a": a},
                            ref=table.hellinger_order(a))  # fmt: skip
        d, cpu, wall, problem = define_cold(
            lambda a=a: fm.define_divergence(tsallis.with_params(a=a))
        )
        worst_cpu = max(worst_cpu, cpu)
        print(row(entry.name, d, cpu, wall, problem, entry, table), flush=True)
    print(f"\nslowest cold definition: {worst_cpu:.2f} s of CPU")


if __name__ == "__main__":
    main()
