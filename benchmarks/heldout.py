"""Issue 11's held-out generators: acceptance, definition time and float32 accuracy per entry.

The table (about sixty valid generators from the literature, none of them the catalog's, and
about twenty that must be refused) and its mpmath references are ``tests/dsl/heldout.py``, the
same table ``tests/dsl/test_heldout.py`` runs. For each entry, with the disk cache off (so the
time is a cold definition):

- accepted or refused; for a refusal, the first line of the reason and whether it was expected
  (a ``DivergenceSpecError`` whose message matches the table's pattern; a valid entry refused,
  an invalid one accepted, or another exception is marked ``WRONG``);
- the definition time in seconds;
- for ``positive_term`` and ``negative_term``: the worst relative error of the float32 value and
  of its autograd gradient against the reference, on ``log_r`` in ``[-80, 80]`` (a grid, around
  0 and the integers, the tails and the piece boundaries), with the ``log_r`` where it occurs;
  counted wherever the exact value is finite and fits float32; the target is 1e-5;
- whether the f-MICL objective (Gaussian similarity; gamma 1 with alpha 40, gamma 20 with
  alpha 409600) gives a finite loss and gradients on a random batch of 16.

Run: ``.venv/bin/python benchmarks/heldout.py`` (several minutes on 2 cores); ``--only NAME``
for one entry, ``--markdown`` for a Markdown table, ``--threads 1`` for one torch thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def load_table() -> ModuleType:
    """``tests/dsl/heldout.py`` by path (this script is also called ``heldout``)."""
    path = ROOT / "tests" / "dsl" / "heldout.py"
    spec = importlib.util.spec_from_file_location("heldout_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


COLUMNS = [
    "name", "status", "def s", "pos value", "pos grad", "neg value", "neg grad",
    "obj g=1", "obj g=20", "note",
]  # fmt: skip


def _error_cell(w: Any, target: float) -> str:
    mark = "" if w.error <= target else " !"
    return f"{w.error:.1e} @{w.log_r:.4g}{mark}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else "").strip()[:90]


def run_entry(entry: Any, table: ModuleType) -> dict[str, Any]:
    """Define one entry and measure it; every cell of its row, and whether it is right."""
    import fmicl_registry as fm
    from fmicl_registry import divergence as divergence_module

    memo = getattr(divergence_module, "_MEMO", None)
    if memo is not None:
        memo.clear()  # a disguise may simplify to an earlier entry's expression: stay cold
    row: dict[str, Any] = {c: "" for c in COLUMNS}
    row["name"] = entry.name
    start = time.perf_counter()
    try:
        d = fm.define_divergence(entry.text, **entry.define_kwargs())
        error: BaseException | None = None
    except Exception as caught:  # MemoryError and the like are findings here, not crashes
        error = caught
    row["def s"] = f"{time.perf_counter() - start:.2f}"
    row["meets"] = False
    if error is not None:
        spec_error = isinstance(error, fm.DivergenceSpecError)
        matches = bool(entry.refusal and re.search(entry.refusal, str(error)))
        right = not entry.valid and spec_error and matches
        kind = "" if spec_error else f"{type(error).__name__}: "
        by_rule = entry.valid and spec_error and table.refused_by_rule(entry, str(error))
        row["by rule"] = by_rule
        if by_rule:
            verdict = "allowed: a valid generator refused by a rule the message states"
        elif entry.valid:
            verdict = "WRONG: a valid generator refused"
        elif not spec_error:
            verdict = "WRONG: not a DivergenceSpecError"
        elif not matches:
            verdict = f"WRONG: reason does not match /{entry.refusal}/"
        else:
            verdict = "expected"
        row["status"] = "refused" if right else "refused (rule)" if by_rule else "refused (WRONG)"
        row["note"] = f"{verdict}; {kind}{_first_line(error)}"
        row["meets"] = right
        return row
    if not entry.valid:
        row["status"] = "accepted (WRONG)"
        row["note"] = f"must be refused: {entry.source}"
        return row
    row["status"] = "accepted"
    notes = []
    ok = True
    points = table.points_for(d.pieces)
    for term, short in (("positive_term", "pos"), ("negative_term", "neg")):
        try:
            value, slope = table.measure_term(getattr(d, term), entry, points, term)
        except Exception as caught:
            row[f"{short} value"] = row[f"{short} grad"] = "crash"
            notes.append(f"{term}: {type(caught).__name__}: {_first_line(caught)}")
            ok = False
            continue
        row[f"{short} value"] = _error_cell(value, table.TARGET)
        row[f"{short} grad"] = _error_cell(slope, table.TARGET)
        for what, w in (("value", value), ("grad", slope)):
            if not w.ok:
                ok = False
                notes.append(
                    f"{short} {what}: {w.failing}/{w.checked} pts, got {w.got:.6g} want "
                    f"{w.want:.6g} at {w.log_r!r}"
                )
    finite = True
    for gamma, alpha in table.OBJECTIVE_SETTINGS:
        cell = f"obj g={gamma:g}"
        try:
            objective = fm.get_objective(
                "fmicl", divergence=d, similarity="gaussian", gamma=gamma, alpha=alpha
            )
            problem = table.objective_problem(objective)
            crashed = False
        except Exception as caught:
            problem = f"{type(caught).__name__}: {_first_line(caught)}"
            crashed = True
        if problem is None:
            row[cell] = "finite"
        elif problem == "exceeds float32":
            row[cell] = "n/a (exact > float32)"
        else:
            row[cell] = "CRASH" if crashed else "NOT FINITE"
            notes.append(f"objective gamma={gamma:g}: {problem}")
            finite = False
    row["note"] = "; ".join(notes)
    row["meets"] = ok
    row["objective ok"] = finite
    return row


def print_table(rows: list[dict[str, Any]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "|".join("---" for _ in COLUMNS) + "|")
        for row in rows:
            cells = [str(row[c]).replace("|", "\\|") for c in COLUMNS]
            print("| " + " | ".join(cells) + " |")
        return
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS[:-1]}
    header = "  ".join(f"{c:<{widths[c]}}" for c in COLUMNS[:-1]) + "  note"
    print(header)
    print("-" * len(header))
    for row in rows:
        print("  ".join(f"{row[c]!s:<{widths[c]}}" for c in COLUMNS[:-1]) + f"  {row['note']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", metavar="NAME", action="append", help="just this entry")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    os.environ["FMICL_CACHE_DIR"] = "off"  # cold definitions, nothing kept on disk
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    table = load_table()
    entries = table.TABLE
    if args.only:
        unknown = sorted(set(args.only) - set(table.BY_NAME))
        if unknown:
            parser.error(f"unknown entries {unknown}; the table has {sorted(table.BY_NAME)}")
        entries = [table.BY_NAME[name] for name in args.only]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, python "
        f"{sys.version.split()[0]}; float32 target {table.TARGET:g} relative "
        f"(|got - want| / max(|want|, {table.FLOOR:g})); cache off\n"
    )
    rows = []
    for entry in entries:
        try:
            rows.append(run_entry(entry, table))
        except Exception:  # the benchmark reports, it does not stop
            traceback.print_exc()
            row = {c: "" for c in COLUMNS} | {"name": entry.name, "status": "BENCH ERROR"}
            rows.append(row | {"meets": False})
        print(f"  done {entry.name}", file=sys.stderr, flush=True)
    print_table(rows, args.markdown)
    valid = [r for r, e in zip(rows, entries, strict=True) if e.valid]
    invalid = [r for r, e in zip(rows, entries, strict=True) if not e.valid]
    accepted = [r for r in rows if "objective ok" in r]
    objective_ok = sum(bool(r["objective ok"]) for r in accepted)
    total = sum(float(r["def s"] or 0) for r in rows)
    by_rule = sum(bool(r.get("by rule")) for r in valid)
    print(
        f"\n{sum(r['meets'] for r in valid)} of {len(valid)} valid meet the criterion"
        f"{f' ({by_rule} refused by a stated rule)' if by_rule else ''}; "
        f"{sum(r['meets'] for r in invalid)} of {len(invalid)} invalid refused correctly; "
        f"{objective_ok} of {len(accepted)} accepted give finite objectives at gamma 1 and 20; "
        f"definitions {total:.1f} s in all"
    )


if __name__ == "__main__":
    main()
