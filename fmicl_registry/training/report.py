"""A run's report: ``report.json`` (everything), ``report.md`` (for people) and PNG plots.

Plots (matplotlib, headless): ``loss.png`` (training loss per step), ``accuracy.png`` (kNN
accuracy per evaluated epoch, and the final accuracies beside the baselines; for a text run
``sts.png``, the same for STS Spearman and Pearson; for a run evaluated without labels
``uniformity.png``, the same for uniformity and alignment), ``distances.png`` (histograms of
positive and negative pair distances, the paper's Figure 4) and ``alignment_uniformity.png``
(Wang and Isola's plane: lower-left is better).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__

_NAMES = {
    "knn_top1": "kNN top-1 (%)",
    "linear_top1": "linear top-1 (%)",
    "linear_train_top1": "linear train top-1 (%)",
    "sts_spearman": "STS Spearman x 100",
    "sts_pearson": "STS Pearson x 100",
    "alignment": "alignment",
    "uniformity": "uniformity",
}


def _percent(key: str) -> bool:
    return key.endswith("top1") or key.startswith("sts_")


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}" if _percent(key) else f"{value:.4f}"


def _is_sts(report: dict[str, Any]) -> bool:
    """Whether the run was evaluated on STS (a text run) rather than by classification."""
    return "sts_spearman" in report["metrics"]


def _scores_plot(report: dict[str, Any]) -> tuple[str, str, str]:
    """``(curve metric, second bar metric, file name)`` of the scores plot."""
    if _is_sts(report):
        return "sts_spearman", "sts_pearson", "sts.png"
    if "probes_skipped" in report:
        return "uniformity", "alignment", "uniformity.png"
    return "knn_top1", "linear_top1", "accuracy.png"


def unreadable_line(unreadable: dict[str, Any]) -> str:
    """The sentence naming the image files that could not be read (first few + count)."""
    from ..data._image_files import name_some

    count, files = unreadable["count"], list(unreadable["files"])
    named = name_some(files) + (f" and {count - len(files)} more" if count > len(files) else "")
    return (
        f"skipped {count} image file{'s' if count != 1 else ''} that could not be read "
        f"(left out when scanned, or replaced by the next image when decoding failed): {named}"
    )


def _columns(report: dict[str, Any]) -> list[str]:
    """The column names of the trained encoder and of each baseline."""
    first = "after training" if _is_sts(report) else "pretrained"
    return [first, *(name.replace("_", " ") for name in report["baselines"])]


def _pyplot() -> Any:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_report(
    spec: dict[str, Any],
    run_dir: Path,
    device: torch.device,
    *,
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]],
    training: dict[str, Any],
    seconds: float,
    notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``report.json``: the metrics beside the baselines, the evaluation's ``notes``
    (``probes_skipped``, ``unreadable_images``), how training went, how long the evaluation
    took, the resolved spec and the environment."""
    return {
        "run": spec["run"]["name"],
        "run_dir": str(run_dir),
        "metrics": metrics,
        "baselines": baselines,
        **(notes or {}),
        "training": training,
        "evaluation_seconds": seconds,
        "spec": spec,
        "environment": {
            "fmicl_registry": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(device),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
    }


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: the metrics of the pretrained encoder beside the baselines."""
    columns = _columns(report)
    rows = [report["metrics"], *report["baselines"].values()]
    keys = [k for k in _NAMES if any(k in row for row in rows)]
    lines = [
        f"# Run `{report['run']}`",
        "",
        f"Objective `{report['spec']['objective'].get('name')}` "
        + ", ".join(f"{k}={v}" for k, v in report["spec"]["objective"].items() if k != "name")
        + f"; architecture `{report['spec']['architecture'].get('name')}`, "
        f"data `{report['spec']['data']['name']}`"
        + _evaluated_on(report["spec"]["data"], report["spec"].get("eval", {})),
        "",
        "| metric | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for key in keys:
        lines.append(
            f"| {_NAMES[key]} | " + " | ".join(_fmt(key, row.get(key)) for row in rows) + " |"
        )
    if "probes_skipped" in report:
        lines += ["", f"kNN and linear probes skipped: {report['probes_skipped']}."]
    unreadable = report.get("unreadable_images") or {}
    if unreadable.get("count"):
        lines += ["", f"Data: {unreadable_line(unreadable)}."]
    training = report.get("training") or {}
    if training:
        rate = training.get("images_per_s")
        unit = "sentences" if _is_sts(report) else "images"
        lines += [
            "",
            f"Training: {training.get('steps')} steps in {training.get('seconds', 0):.1f} s"
            + (f" ({rate:.0f} {unit}/s)" if rate else "")
            + f", {training.get('world_size', 1)} process(es).",
        ]
    plot = _scores_plot(report)[2]
    scores = f"![{plot.removesuffix('.png')}]({plot})"
    lines += [
        "",
        f"![loss](loss.png) {scores}",
        "",
        "![distances](distances.png) ![alignment and uniformity](alignment_uniformity.png)",
        "",
    ]
    return "\n".join(lines)


def write_report(
    report: dict[str, Any], run_dir: Path, *, distances: dict[str, dict[str, np.ndarray]]
) -> None:
    """Write ``report.json``, ``report.md`` and the four plots into ``run_dir``."""
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (run_dir / "report.md").write_text(markdown(report))
    plt = _pyplot()
    records = _records(run_dir)

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [(r["step"], r["loss"]) for r in records if "loss" in r]
    if steps:
        ax.plot(*zip(*steps, strict=True))
    ax.set(xlabel="step", ylabel="training loss", title=f"{report['run']}: loss")
    fig.tight_layout()
    fig.savefig(run_dir / "loss.png", dpi=100)
    plt.close(fig)

    sts = _is_sts(report)
    curve_key, bars, plot = _scores_plot(report)
    scale = 100 if _percent(curve_key) else 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    curve = [(r["epoch"], scale * r[curve_key]) for r in records if curve_key in r]
    if curve:
        left.plot(*zip(*curve, strict=True), marker="o")
    left.set(xlabel="epoch", ylabel=_NAMES[curve_key], title=f"{_NAMES[curve_key]} in training")
    names = _columns(report)
    rows = [report["metrics"], *report["baselines"].values()]
    x = np.arange(len(names))
    for offset, key in ((-0.2, curve_key), (0.2, bars)):
        right.bar(x + offset, [scale * r[key] for r in rows], width=0.4, label=_NAMES[key])
    right.set_xticks(x, names)
    ylabel = "x 100" if sts else "top-1 (%)" if scale == 100 else "lower is better"
    right.set(ylabel=ylabel, title="final scores")
    right.legend()
    fig.tight_layout()
    fig.savefig(run_dir / plot, dpi=100)
    plt.close(fig)

    panels = max(1, len(distances))
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    for ax, (name, d) in zip(axes[0], distances.items(), strict=False):
        bins = np.linspace(0.0, 2.0, 41)
        ax.hist(d["negative"], bins=bins, alpha=0.6, density=True, label="negative pairs")
        ax.hist(d["positive"], bins=bins, alpha=0.6, density=True, label="positive pairs")
        ax.set(xlabel="distance of normalised features", ylabel="density", title=name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "distances.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, row in zip(names, rows, strict=True):
        if "alignment" in row and "uniformity" in row:
            ax.scatter(row["uniformity"], row["alignment"], s=60)
            ax.annotate(name, (row["uniformity"], row["alignment"]))
    ax.set(xlabel="uniformity (lower is better)", ylabel="alignment (lower is better)")
    ax.set_title("alignment and uniformity (Wang and Isola 2020)")
    fig.tight_layout()
    fig.savefig(run_dir / "alignment_uniformity.png", dpi=100)
    plt.close(fig)


def _evaluated_on(data: dict[str, Any], settings: dict[str, Any] | None = None) -> str:
    """Where evaluation scored, when that is not the data set's own test split."""
    name, split = data.get("eval_name") or data["name"], data.get("eval_split", "test")
    holdout = (settings or {}).get("holdout") or 0
    if holdout:
        return (
            f", evaluated on a held-out {100 * holdout:g}% of `{name}` (train split; "
            "eval.holdout), not its test split."
        )
    if name == data["name"] and split == "test":
        return "."
    return f", evaluated on `{name}` ({split})."
