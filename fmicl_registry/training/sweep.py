"""A sweep: the same spec once per objective and seed, and the comparison table (Table 2 style).

Each f-MICL divergence runs as ``objective.name = "fmicl"`` with ``objective.divergence`` set
(the spec's other f-MICL options, alpha and gamma, are kept); each baseline runs as its own
objective with its defaults, or with the options written after its name
(``infonce:temperature=0.05``, SimCSE's). The table holds mean and standard deviation over
seeds of every metric, written as ``comparison.md`` and ``comparison.csv``, with a bar chart
``comparison.png``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .loop import run_spec
from .report import _NAMES, _percent, _pyplot
from .spec import Spec, load_spec

METRICS = ("linear_top1", "knn_top1", "sts_spearman", "sts_pearson", "alignment", "uniformity")


def sweep_specs(
    path: str | Path | None,
    overrides: list[str],
    *,
    divergences: list[str],
    baselines: list[str],
    seeds: int,
) -> list[tuple[str, int, Spec]]:
    """``(label, seed, spec)`` of every run of a sweep (checked before anything trains)."""
    if seeds < 1:
        raise SpecError(f"--seeds must be at least 1, got {seeds}")
    if not divergences and not baselines:
        raise SpecError("nothing to sweep: give --divergences and/or --baselines")
    base = load_spec(path, overrides)
    # each divergence keeps the spec's other f-MICL options (alpha, gamma)
    fmicl_options = base.objective.options if base.objective.name == "fmicl" else {}
    runs = []
    first = base.run.seed
    for label in [*divergences, *baselines]:
        for seed in range(first, first + seeds):
            settings = [f"run.seed={seed}", f'run.name="{_folder_name(label)}-seed{seed}"']
            if label in divergences:
                options = {**fmicl_options, "divergence": label}
                settings += ['objective.name="fmicl"'] + [
                    f"objective.{k}={json.dumps(v)}" for k, v in options.items()
                ]
            else:
                name, assignments = _baseline(label)
                settings += [f'objective.name="{name}"', *(f"objective.{a}" for a in assignments)]
            spec = load_spec(path, [*overrides, *settings])
            if seed == first:
                _check_objective(label, spec)
            runs.append((label, seed, spec))
    return runs


def _baseline(label: str) -> tuple[str, list[str]]:
    """``"infonce:temperature=0.05"`` -> ``("infonce", ["temperature=0.05"])``."""
    name, *options = label.split(":")
    for option in options:
        if "=" not in option:
            raise SpecError(
                f"baseline {label!r}: option {option!r} must be key=value, e.g. "
                "infonce:temperature=0.05"
            )
    return name.strip(), [o.strip() for o in options]


def _folder_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")


def _check_objective(label: str, spec: Spec) -> None:
    """Build the objective once, so a misspelled divergence or a wrong baseline option fails
    before anything trains (not after the runs before it)."""
    from ..errors import FmiclError
    from ..objectives import get_objective

    name = spec.objective.name
    assert name is not None
    try:
        get_objective(name, **spec.objective.options)
    except FmiclError as err:
        raise SpecError(
            f"{'baseline' if ':' in label or name != 'fmicl' else 'divergence'} {label!r}: {err}"
        ) from None


def sweep(
    path: str | Path | None,
    overrides: list[str],
    *,
    divergences: list[str],
    baselines: list[str],
    seeds: int = 1,
    out: str | Path = "runs",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train and evaluate every run of the sweep into ``out/sweep-<name>/`` and write the
    comparison table there; returns ``{"dir", "rows"}``."""
    runs = sweep_specs(path, overrides, divergences=divergences, baselines=baselines, seeds=seeds)
    name = load_spec(path, overrides).run.name
    folder, n = Path(out) / f"sweep-{name}", 1
    while os.path.lexists(folder):
        n += 1
        folder = Path(out) / f"sweep-{name}-{n}"
    # not made here: the first run makes it with its own folder, once its data and model
    # are built, so a sweep that cannot start leaves nothing behind
    results: dict[str, list[dict[str, float]]] = {}
    for i, (label, seed, spec) in enumerate(runs, 1):
        log(f"[{i}/{len(runs)}] {label}, seed {seed}")
        result = run_spec(spec, folder, log=log)
        results.setdefault(label, []).append(result.report["metrics"])
    rows = table(results)
    write_table(rows, folder, seeds=seeds)
    log(f"comparison: {folder / 'comparison.md'}")
    return {"dir": folder, "rows": rows}


def table(results: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """One row per objective: mean and standard deviation (0 for one seed) of each metric."""
    rows = []
    for label, runs in results.items():
        row: dict[str, Any] = {"objective": label, "runs": len(runs)}
        for key in METRICS:
            values = [r[key] for r in runs if key in r]
            if values:
                row[key] = statistics.fmean(values)
                row[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def write_table(rows: list[dict[str, Any]], folder: Path, *, seeds: int) -> None:
    """``comparison.md``, ``comparison.csv`` and ``comparison.png`` in ``folder``."""
    keys = [k for k in METRICS if any(k in r for r in rows)]
    with (folder / "comparison.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["objective", "runs", *[c for k in keys for c in (k, k + "_std")]])
        for r in rows:
            writer.writerow(
                [r["objective"], r["runs"], *[r.get(c) for k in keys for c in (k, k + "_std")]]
            )

    def cell(r: dict[str, Any], k: str) -> str:
        if k not in r:
            return "-"
        scale = 100 if _percent(k) else 1
        digits = 2 if _percent(k) else 4
        text = f"{scale * r[k]:.{digits}f}"
        return text + (f" ± {scale * r[k + '_std']:.{digits}f}" if seeds > 1 else "")

    lines = [
        f"Mean{' ± std' if seeds > 1 else ''} over {seeds} seed(s).",
        "",
        "| objective | " + " | ".join(_NAMES[k] for k in keys) + " |",
        "|---|" + "---|" * len(keys),
        *(f"| {r['objective']} | " + " | ".join(cell(r, k) for k in keys) + " |" for r in rows),
    ]
    (folder / "comparison.md").write_text("\n".join(lines) + "\n")

    plt = _pyplot()
    sts = "sts_spearman" in keys
    tops = [k for k in ("linear_top1", "knn_top1", "sts_spearman", "sts_pearson") if k in keys]
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 1.1), 4))
    width = 0.8 / max(1, len(tops))
    for i, k in enumerate(tops):
        x = [j + (i - (len(tops) - 1) / 2) * width for j in range(len(rows))]
        ax.bar(
            x,
            [100 * r[k] for r in rows],
            width=width,
            yerr=[100 * r[k + "_std"] for r in rows] if seeds > 1 else None,
            label=_NAMES[k],
        )
    ax.set_xticks(range(len(rows)), [r["objective"] for r in rows])
    low = min((100 * r[k] for r in rows for k in tops), default=0)
    ax.set_ylim(max(0, low - 5), 100)
    ax.set(ylabel="x 100" if sts else "top-1 (%)", title="objectives compared")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "comparison.png", dpi=100)
    plt.close(fig)
