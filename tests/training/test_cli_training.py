"""`fmicl train`, `fmicl eval` and `fmicl sweep` as a user runs them."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from training_helpers import TINY

from fmicl_registry.cli import cli

SETTINGS = [a for s in [*TINY, "train.epochs=1", "eval.every=0"] for a in ("--set", s)]


def test_train_prints_accuracies_and_the_report_path_then_eval_rewrites_it(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(cli, ["train", *SETTINGS, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "kNN top-1" in result.output and "linear top-1" in result.output
    report = tmp_path / "digits" / "report.md"
    assert f"report: {report}" in result.output and report.is_file()
    before = (tmp_path / "digits" / "report.json").read_text()
    again = CliRunner().invoke(cli, ["eval", str(tmp_path / "digits")])
    assert again.exit_code == 0, again.output
    assert "evaluating" in again.output and "epoch 1" in again.output
    after = (tmp_path / "digits" / "report.json").read_text()
    assert before.split('"evaluation_seconds"')[0] == after.split('"evaluation_seconds"')[0]


def test_a_bad_spec_exits_2_naming_file_key_and_type(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("[train]\nepochs = 2.5\n")
    process = subprocess.run(
        [sys.executable, "-m", "fmicl_registry.cli", "train", str(spec), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 2
    assert f"{spec}: train.epochs must be an integer, got number 2.5" in process.stderr
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "run").exists()


def test_resume_refuses_a_spec(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "other.toml", "--resume", str(tmp_path)])
    assert result.exit_code == 2
    assert "--resume continues with the run's own spec.toml; drop SPEC" in result.output


@pytest.mark.slow
def test_sweep_writes_the_comparison_table_csv_and_chart(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "sweep",
            "--divergences",
            "kl,js",
            "--baselines",
            "infonce",
            *SETTINGS,
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "sweep-digits"
    rows = list(csv.DictReader((folder / "comparison.csv").open()))
    assert [r["objective"] for r in rows] == ["kl", "js", "infonce"]
    assert all(0 < float(r["linear_top1"]) <= 1 for r in rows)
    assert "| kl |" in result.output and "linear top-1 (%)" in result.output
    assert (folder / "comparison.png").stat().st_size > 1000
    for label in ("kl", "js", "infonce"):
        assert (folder / f"{label}-seed0" / "report.json").is_file()
    spec = (folder / "js-seed0" / "spec.toml").read_text()
    assert 'divergence = "js"' in spec and "alpha = 40.0" in spec


def test_bench_lists_the_mi_benchmark() -> None:
    result = CliRunner().invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0 and "mi" in result.output


def test_specs_lists_the_bundled_specs_and_prints_one(tmp_path: Path) -> None:
    listed = CliRunner().invoke(cli, ["specs"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "cifar10_simclr_resnet18" in listed.output and "CIFAR-10, SimCLR" in listed.output
    printed = CliRunner().invoke(cli, ["specs", "digits"])
    assert printed.exit_code == 0, printed.output
    copy = tmp_path / "mine.toml"
    copy.write_text(printed.output)
    from fmicl_registry.training import load_spec

    assert load_spec(copy).data == load_spec().data  # a starting point that is the default
    unknown = CliRunner().invoke(cli, ["specs", "digit"])
    assert unknown.exit_code == 2 and "did you mean 'digits'" in unknown.output


def test_a_folder_or_file_named_like_a_bundled_spec_does_not_hide_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()  # e.g. the run folder of `fmicl train --out .`
    printed = CliRunner().invoke(cli, ["train", "digits", "--print-spec"])
    assert printed.exit_code == 0, printed.output
    assert "# resolved from <bundled spec digits>" in printed.output
    (tmp_path / "digits.toml").write_text('[run]\nname = "mine"\n')
    shown = CliRunner().invoke(cli, ["specs", "digits.toml"])
    assert shown.exit_code == 0 and 'name = "digits"' in shown.output  # the bundled one
