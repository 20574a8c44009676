"""Reports of the mutual-information benchmark: JSON, CSV, Markdown and the estimates plot.

The plot follows Poole et al. (2019), "On variational bounds of mutual information", Figure 2:
per objective and critic, the estimate at every training step (faint), its moving average
(solid) and the true value as a staircase over the MI levels (black); InfoNCE also shows its
``log B`` ceiling. A divergence whose truth dwarfs its estimates (Pearson's ``e^{2I} - 1``) is
drawn on a symmetric-log axis; an infinite truth is marked ``+inf``.

Example:
    >>> import tempfile
    >>> from fmicl_registry.mi import BenchConfig, run_benchmark, write_report
    >>> config = BenchConfig(levels=(2.0,), steps_per_level=4, hidden=8, embed=4,
    ...                      critics=("separable",), mc_samples=1024)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     sorted(write_report(run_benchmark(["kl"], config), out))
    ['csv', 'history', 'json', 'markdown', 'plot']
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from .._json import dumps
from .bench import INFONCE, BenchResult, LevelResult

#: File names inside the output folder.
FILES = {
    "json": "results.json",
    "csv": "results.csv",
    "markdown": "results.md",
    "history": "history.json",
    "plot": "mi_estimates.png",
}


def json_report(result: BenchResult) -> str:
    """``results.json``: :meth:`BenchResult.summary` as strict JSON."""
    return dumps(result.summary(), indent=2) + "\n"


def history_json(result: BenchResult) -> str:
    """``history.json``: every step's estimate per objective and critic (6 significant digits),
    with the level boundaries and truths, to redraw the plot."""
    data = {
        "steps_per_level": result.config.steps_per_level,
        "levels": list(result.config.levels),
        "truth": {name: [t.value for t in truths] for name, truths in result.truths.items()},
        "estimates": {
            f"{objective}/{critic}": [float(f"{v:.6g}") for v in values]
            for (objective, critic), values in result.histories.items()
        },
    }
    return dumps(data) + "\n"


CSV_COLUMNS = [
    "objective",
    "critic",
    "level",
    "mi",
    "rho",
    "truth",
    "truth_se",
    "truth_method",
    "truth_reliable",
    "estimate",
    "bias",
    "variance",
    "fraction",
    "tail_steps",
    "nonfinite_steps",
    "notes",
]


def csv_report(result: BenchResult) -> str:
    """``results.csv``: one row per objective, critic and MI level (``repr`` floats, so
    ``inf``/``nan`` read back with ``float``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in result.rows:
        data = row.as_dict()
        data["notes"] = "; ".join(row.notes)
        writer.writerow({k: data[k] for k in CSV_COLUMNS})
    return buffer.getvalue()


def fmt(value: float, digits: int = 4) -> str:
    """A number for a table: ``+inf``, ``nan``, or ``digits`` significant digits."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def fraction_text(value: float) -> str:
    """Two decimals (``0.95``), or two significant digits when that would read ``0.00``."""
    if math.isfinite(value) and 0.01 <= abs(value) < 1e4:
        return f"{value:.2f}"
    return fmt(value, 2)


def truth_text(row: LevelResult) -> str:
    """The true value, with ``± se`` for a Monte-Carlo truth and ``?`` when unreliable."""
    text = fmt(row.truth.value)
    if row.truth.se > 0 and math.isfinite(row.truth.value):
        text += f" ± {row.truth.se:.2g}"
    if not row.truth.reliable and math.isfinite(row.truth.value):
        text += " (?)"
    return text


def table_rows(result: BenchResult) -> list[list[str]]:
    """The per-level table as text cells (shared by the Markdown report and the console)."""
    return [
        [
            row.objective,
            row.critic,
            fmt(row.mi, 3),
            truth_text(row),
            fmt(row.estimate),
            fmt(row.bias),
            fmt(row.variance, 3),
            fmt(row.fraction, 3),
            "; ".join(row.notes),
        ]
        for row in result.rows
    ]


TABLE_HEADER = [
    "objective",
    "critic",
    "KL MI (nats)",
    "true I_f",
    "estimate",
    "bias",
    "variance",
    "fraction",
    "notes",
]


def fraction_rows(result: BenchResult) -> list[list[str]]:
    """One row per objective and critic: the fraction of the true value reached per level."""
    rows = []
    levels = range(len(result.config.levels))
    for objective in result.objectives:
        for critic in result.config.critics:
            cells = []
            for level in levels:
                row = result.row(objective.name, critic, level)
                if math.isinf(row.truth.value):
                    cells.append("0 (truth +inf)")
                else:
                    mark = "" if row.truth.reliable or math.isnan(row.fraction) else " (?)"
                    cells.append(fraction_text(row.fraction) + mark)
            rows.append([objective.name, critic, *cells])
    return rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def markdown_report(result: BenchResult, plot: str | None = None) -> str:
    """``results.md``: settings, the fraction-of-truth overview, the full table and notes
    (and the plot, when ``plot`` names its file next to the report)."""
    c = result.config
    log_b = math.log(c.batch_size)
    lines = [
        "# Mutual-information benchmark",
        "",
        f"Correlated Gaussians, d = {c.dim}, batch {c.batch_size}, true KL MI "
        f"{', '.join(f'{v:g}' for v in c.levels)} nats, {c.steps_per_level} Adam steps per level "
        f"(lr {c.lr:g}), critics: {', '.join(c.critics)} (hidden {c.hidden} x {c.layers}"
        f"{f', embedding {c.embed}' if 'separable' in c.critics else ''}), seed {c.seed}. "
        f"Statistics over the last {c.tail_steps} steps of each level. "
        f"Runtime {result.runtime_s:.0f} s.",
        "",
        "Each divergence's critic maximises that divergence's variational lower bound "
        "(Poole et al. 2019; Song and Ermon 2020); its truth is its own f-mutual information "
        "E_{p(x)p(y)} f(r) at the level's correlation. InfoNCE is measured against the KL MI "
        f"and cannot exceed log B = {log_b:.3f}. `(?)` marks a Monte-Carlo truth that is not "
        "reliable.",
        "",
        *([f"![f-MI estimates against training steps]({plot})", ""] if plot else []),
        "## Fraction of the true value reached",
        "",
        _markdown_table(
            ["objective", "critic", *[f"{v:g} nats" for v in c.levels]], fraction_rows(result)
        ),
        "",
        "## Per level",
        "",
        _markdown_table(TABLE_HEADER, table_rows(result)),
        "",
        "## Ground truth",
        "",
        "Closed form: the generator expands into terms c u^a (log u)^m, whose expectations "
        "E_q[r^a (log r)^m] under the product of the Gaussian marginals are exact (known "
        "closed forms for KL, Pearson and squared Hellinger). Monte Carlo: the exact density "
        "ratio on samples of the mixture of joint and product, 2 f(r) / (1 + r), with its "
        "standard error (`fmicl_registry.mi.truth`).",
        "",
    ]
    for objective in result.objectives:
        truths = result.truths[objective.name]
        methods = sorted({t.method for t in truths})
        generator = objective.describe()["generator"]
        what = f"f(u) = {generator}" if generator else "KL mutual information"
        lines.append(f"- **{objective.name}** ({what}; {objective.source}): {', '.join(methods)}")
        for i, truth in enumerate(truths):
            if truth.note:
                lines.append(f"  - {c.levels[i]:g} nats: {truth.note}")
    lines.append("")
    return "\n".join(lines)


def _ema(values: list[float], span: int) -> list[float]:
    alpha = 2.0 / (span + 1.0)
    out: list[float] = []
    level = math.nan
    for v in values:
        if math.isfinite(v):
            level = v if math.isnan(level) else level + alpha * (v - level)
        out.append(level)
    return out


def plot_estimates(result: BenchResult, path: str | Path) -> Path:
    """Write the estimates-against-steps figure (one panel per objective and critic)."""
    import numpy as np
    from matplotlib.figure import Figure

    c = result.config
    steps = c.steps_per_level
    n_levels = len(c.levels)
    rows, cols = len(result.objectives), len(c.critics)
    fig = Figure(figsize=(4.6 * cols, 2.5 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    edges = np.arange(n_levels + 1) * steps
    span = max(2, steps // 20)
    for i, objective in enumerate(result.objectives):
        truths = [t.value for t in result.truths[objective.name]]
        finite_truths = [t for t in truths if math.isfinite(t)]
        for j, critic in enumerate(c.critics):
            ax = axes[i][j]
            history = result.histories[(objective.name, critic)]
            estimates = np.asarray(history, dtype=float)
            finite = estimates[np.isfinite(estimates)]
            steps_axis = np.arange(1, len(history) + 1)
            ax.plot(steps_axis, estimates, color="tab:blue", alpha=0.25, lw=0.6)
            ax.plot(steps_axis, _ema(history, span), color="tab:blue", lw=1.4, label="estimate")
            stair = [t if math.isfinite(t) else math.nan for t in truths]
            ax.stairs(stair, edges, color="black", lw=1.4, label="truth", baseline=None)
            if objective.name == INFONCE:
                ax.axhline(math.log(c.batch_size), color="tab:red", ls="--", lw=1, label="log B")
            low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
            scale = max(abs(float(low)), abs(float(high)), 1.0)
            top = max([float(high), *finite_truths, 0.0])
            bottom = min(float(low), 0.0)
            if (finite_truths and max(finite_truths) > 20 * scale) or scale > 1e3:
                ax.set_yscale("symlog", linthresh=1.0)
                ax.set_ylim(bottom * 1.2 - 0.1, top * 3)
            else:
                pad = 0.08 * (top - bottom or 1.0)
                ax.set_ylim(bottom - pad, top + pad)
            for k, t in enumerate(truths):
                if math.isinf(t):
                    ax.annotate(
                        "truth +inf",
                        xy=((k + 0.5) * steps, 0.97),
                        xycoords=("data", "axes fraction"),
                        ha="center",
                        va="top",
                        fontsize=7,
                    )
            ax.set_title(f"{objective.name} — {critic}", fontsize=9)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel("nats" if objective.name in ("kl", INFONCE) else "I_f", fontsize=8)
            if i == rows - 1:
                ax.set_xlabel("training step", fontsize=8)
            if (i == 0 or objective.name == INFONCE) and j == cols - 1:
                ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        f"f-MI estimates, correlated Gaussians (d = {c.dim}, batch {c.batch_size}); "
        f"true KL MI {', '.join(f'{v:g}' for v in c.levels)} nats",
        fontsize=10,
    )
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def write_report(result: BenchResult, out_dir: str | Path, *, plot: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv``, ``results.md``, ``history.json`` and (unless
    ``plot`` is False) ``mi_estimates.png`` into ``out_dir`` (created); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = {
        "json": json_report(result),
        "csv": csv_report(result),
        "markdown": markdown_report(result, FILES["plot"] if plot else None),
        "history": history_json(result),
    }
    paths: dict[str, Path] = {}
    for key, text in texts.items():
        paths[key] = out / FILES[key]
        paths[key].write_text(text, encoding="utf-8")
    if plot:
        paths["plot"] = plot_estimates(result, out / FILES["plot"])
    return paths
