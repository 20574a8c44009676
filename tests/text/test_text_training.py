"""A SimCSE-style text run end to end: pretraining on ``textlines`` through the objective,
STS evaluation on ``stsb`` beside the encoder before training, the report, the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from text_formats import SENTENCES, write_stsbenchmark, write_textlines

import fmicl_registry as fm
from fmicl_registry import components, plugins
from fmicl_registry.cli import cli
from fmicl_registry.objectives import FMICL
from fmicl_registry.training import SpecError, load_spec, train

SPEC = Path(__file__).resolve().parents[2] / "specs" / "experiments" / "simcse_minilm.toml"


def _quiet(_: str) -> None:
    pass


def _data(root: Path) -> list[str]:
    """Text files in the real formats under ``root``, and the settings of a tiny run."""
    wiki = write_textlines(
        root / "wiki1m_for_simcse.txt", [f"{s} ({i})" for i in range(2) for s in SENTENCES]
    )
    write_stsbenchmark(root / "data")
    return [
        f'data.file="{wiki}"',
        f'data.eval_root="{root / "data" / "stsbenchmark"}"',
        "train.batch_size=8",
        "train.max_steps=3",
        "train.log_every=1",
        "train.progress=false",
        "backbone.max_length=16",
        "eval.batch_size=16",
    ]


class _Counting(FMICL):
    """f-MICL that counts its calls and keeps the shapes of what it was given."""

    calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []  # noqa: RUF012

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, queue: Any = None) -> torch.Tensor:
        type(self).calls.append((tuple(z1.shape), tuple(z2.shape)))
        return super().forward(z1, z2, queue)


class _CountingPlugin:
    @fm.hookimpl
    def register_objectives(self, register: Any) -> None:
        register(name="counting_fmicl", factory=_Counting, description="f-MICL, counted")


@pytest.fixture
def pm() -> Iterator[Any]:
    plugins.reset()
    yield plugins.get_plugin_manager()
    plugins.reset()


def test_a_text_run_trains_through_the_objective_and_reports_sts(tmp_path: Path, pm: Any) -> None:
    pm.register(_CountingPlugin(), name="counting")
    components.clear()
    _Counting.calls = []
    settings = [*_data(tmp_path), "objective.name=counting_fmicl", "objective.divergence=kl"]
    result = train(load_spec(SPEC, settings), tmp_path / "runs", log=_quiet)
    # every step went through the objective: a batch of 8 sentences, 384-dim head outputs
    assert _Counting.calls == [((8, 384), (8, 384))] * 3
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["training"]["steps"] == 3
    losses = [
        r["loss"] for r in map(json.loads, (result.run_dir / "metrics.jsonl").open()) if "loss" in r
    ]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    metrics, before = report["metrics"], report["baselines"]["before_training"]
    for row in (metrics, before):
        assert -1 <= row["sts_spearman"] <= 1 and -1 <= row["sts_pearson"] <= 1
        assert 0 <= row["alignment"] <= 4 and row["uniformity"] < 0
    # the baseline is the pretrained MiniLM as loaded: it ranks the hand-written pairs well
    assert before["sts_spearman"] > 0.85
    # three small steps move the weights a little, not the ranking much
    assert metrics["sts_spearman"] > 0.5 and metrics["sts_spearman"] != before["sts_spearman"]
    markdown = (result.run_dir / "report.md").read_text()
    assert "| STS Spearman x 100 |" in markdown and "before training" in markdown
    assert "evaluated on `stsb` (test)" in markdown
    for plot in ("loss", "sts", "distances", "alignment_uniformity"):
        with Image.open(result.run_dir / f"{plot}.png") as image:
            image.verify()
    assert not (result.run_dir / "accuracy.png").exists()


def test_the_cli_runs_the_shipped_spec_and_eval_rereads_the_checkpoint(tmp_path: Path) -> None:
    args = [
        a
        for s in [*_data(tmp_path), "train.max_steps=2", "eval.baselines=false", "eval.every=1"]
        for a in ("--set", s)
    ]
    out = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["train", str(SPEC), *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "STS Spearman" in result.output and "stsb test (20 pairs)" in result.output
    run = out / "simcse-minilm"
    report = json.loads((run / "report.json").read_text())
    assert report["baselines"] == {} and report["training"]["steps"] == 2
    # eval.every = 1: STS Spearman after the epoch, in the log and in metrics.jsonl
    epoch = [json.loads(line) for line in (run / "metrics.jsonl").open()][-1]
    assert epoch["epoch"] == 1 and epoch["sts_spearman"] == report["metrics"]["sts_spearman"]
    assert f"loss {epoch['epoch_loss']:.4f}, STS Spearman" in result.output
    again = CliRunner().invoke(cli, ["eval", str(run)])
    assert again.exit_code == 0, again.output
    rerun = json.loads((run / "report.json").read_text())
    assert rerun["metrics"]["sts_spearman"] == pytest.approx(report["metrics"]["sts_spearman"])


def test_missing_text_data_is_reported_with_where_to_get_it(tmp_path: Path) -> None:
    settings = _data(tmp_path)
    missing_sts = [*settings, f'data.eval_root="{tmp_path / "nowhere"}"']
    with pytest.raises(fm.FmiclError, match=r"Stsbenchmark\.tar\.gz"):
        train(load_spec(SPEC, missing_sts), tmp_path / "runs", log=_quiet)
    result = CliRunner().invoke(
        cli,
        [
            "train",
            str(SPEC),
            "--set",
            f'data.file="{tmp_path / "none.txt"}"',
            "--out",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 2 and "wiki1m_for_simcse.txt" in result.output
    assert not (tmp_path / "runs").exists()  # no half-made run folder is left behind
    assert "Traceback" not in result.output


def test_text_runs_refuse_augmentation_and_non_sts_evaluation(tmp_path: Path) -> None:
    settings = _data(tmp_path)
    with pytest.raises(SpecError, match=r"\[augment\].*text.*dropout"):
        train(load_spec(SPEC, [*settings, "augment.name=simclr"]), tmp_path, log=_quiet)
    with pytest.raises(SpecError, match=r"STS data set.*'textlines' is not one"):
        train(
            load_spec(SPEC, [*settings, "data.eval_name=textlines", "data.eval_split=train"]),
            tmp_path,
            log=_quiet,
        )


@pytest.mark.slow
def test_a_sweep_of_a_text_spec_tabulates_sts(tmp_path: Path) -> None:
    from fmicl_registry.training import sweep

    settings = [*_data(tmp_path), "train.max_steps=1", "eval.baselines=false"]
    result = sweep(
        str(SPEC), settings, divergences=["kl"], baselines=["infonce"], out=tmp_path, log=_quiet
    )
    table = (result["dir"] / "comparison.md").read_text()
    assert "| objective | STS Spearman x 100 | STS Pearson x 100 |" in table
    rows = {r["objective"]: r for r in result["rows"]}
    assert set(rows) == {"kl", "infonce"}
    for row in rows.values():
        assert f"| {row['objective']} | {100 * row['sts_spearman']:.2f} |" in table


def test_an_image_run_refuses_a_text_evaluation_set(tmp_path: Path) -> None:
    write_stsbenchmark(tmp_path, splits=("train", "test"))
    settings = ["data.eval_name=stsb", f'data.eval_root="{tmp_path / "stsbenchmark"}"']
    with pytest.raises(SpecError, match=r"'digits' is an image data set.*'stsb', which is text"):
        train(load_spec(None, settings), tmp_path, log=_quiet)


def test_tune_searches_a_text_spec_by_sts_on_the_dev_split(tmp_path: Path) -> None:
    settings = [*_data(tmp_path), "train.max_steps=1", "data.eval_split=dev"]
    write_stsbenchmark(tmp_path / "data", splits=("dev", "test"))
    with pytest.raises(fm.FmiclError, match=r"--metric knn needs knn_top1.*use --metric sts"):
        fm.tune(
            str(SPEC), overrides=settings, objectives=["kl"], trials=1, out=tmp_path, log=_quiet
        )
    result = fm.tune(
        str(SPEC),
        overrides=settings,
        objectives=["kl", "infonce"],
        trials=2,
        metric="sts",
        pruner="none",
        out=tmp_path,
        log=_quiet,
    )
    assert sorted(row.objective for row in result.rows) == ["infonce", "kl"]
    for row in result.rows:
        assert row.trial is not None
        run = Path(row.trial.user_attrs["run_dir"])
        report = json.loads((run / "report.json").read_text())
        assert row.trial.value == report["metrics"]["sts_spearman"]
        assert load_spec(run / "spec.toml").dataset.eval_split == "dev"  # never the test split
