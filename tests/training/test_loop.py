"""The training loop end to end on the digits: the run folder, the report and plots, resume
after SIGKILL, corrupted checkpoints, the NaN guard and every architecture."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from training_helpers import TINY

import fmicl_registry as fm
from fmicl_registry import components, plugins
from fmicl_registry.objectives import FMICL
from fmicl_registry.training import CheckpointError, TrainingDiverged, load_spec, train


def _quiet(_: str) -> None:
    pass


def test_a_run_writes_spec_metrics_checkpoints_report_and_plots(tmp_path: Path) -> None:
    spec = load_spec(None, [*TINY, "eval.baselines=true"])
    result = train(spec, tmp_path, log=_quiet)
    run = result.run_dir
    assert run == tmp_path / "digits"
    for name in ("spec.toml", "metrics.jsonl", "report.json", "report.md"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / "checkpoints" / "previous.pt").is_file()  # epoch 1, kept beside epoch 2
    for plot in ("loss", "accuracy", "distances", "alignment_uniformity"):
        with Image.open(run / f"{plot}.png") as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 100
    report = json.loads((run / "report.json").read_text())
    assert report == json.loads(json.dumps(result.report, default=str))
    metrics = report["metrics"]
    assert 0.5 < metrics["linear_top1"] <= 1 and 0.3 < metrics["knn_top1"] <= 1
    assert 0 <= metrics["alignment"] <= 4 and metrics["uniformity"] < 0
    assert set(report["baselines"]) == {"raw_input", "random_encoder"}
    assert report["training"]["steps"] == 2 * (1437 // 128)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "knn_top1" in r] == [1, 2]
    assert all(r["loss"] == r["loss"] for r in records if "loss" in r)  # no NaN
    markdown = (run / "report.md").read_text()
    assert "| linear top-1 (%) |" in markdown and "raw input" in markdown
    # a second run with the same name never overwrites the first
    assert train(spec, tmp_path, log=_quiet).run_dir == tmp_path / "digits-2"


def _cli(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "fmicl_registry.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


SLOW_TINY = [*TINY, "train.epochs=4", "train.batch_size=32", "eval.every=0"]


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    settings = [a for s in SLOW_TINY for a in ("--set", s)]
    whole = _cli("train", *settings, "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=600) == 0, whole.communicate()[1]

    killed = _cli("train", *settings, "--out", str(tmp_path / "killed"))
    run = tmp_path / "killed" / "digits"
    deadline = time.monotonic() + 600
    while not (run / "checkpoints" / "last.pt").exists():
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (run / "report.json").exists(), "the run ended before it could be killed"

    resumed = _cli("train", "--resume", str(run))
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resuming" in out
    a = json.loads((tmp_path / "whole" / "digits" / "report.json").read_text())
    b = json.loads((run / "report.json").read_text())
    assert a["metrics"] == b["metrics"]
    state_a = torch.load(tmp_path / "whole" / "digits" / "checkpoints" / "last.pt")["model"]
    state_b = torch.load(run / "checkpoints" / "last.pt")["model"]
    for key, value in state_a.items():
        assert torch.equal(value, state_b[key]), key
    losses = [
        [json.loads(line).get("loss") for line in (folder / "metrics.jsonl").open()]
        for folder in (tmp_path / "whole" / "digits", run)
    ]
    assert losses[0] == losses[1]  # the lost tail of the killed run was dropped on resume


def test_a_corrupted_checkpoint_is_reported_clearly(tmp_path: Path) -> None:
    spec = load_spec(None, [*TINY, "train.epochs=1", "eval.every=0"])
    run = train(spec, tmp_path, log=_quiet).run_dir
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated") as err:
        fm.training.evaluate_checkpoint(run, log=_quiet)
    assert str(last) in str(err.value)
    cli = _cli("eval", str(run))
    _, stderr = cli.communicate(timeout=300)
    assert cli.returncode == 2 and "corrupted or truncated" in stderr
    assert "Traceback" not in stderr


@pytest.fixture
def pm() -> Iterator[Any]:
    plugins.reset()
    yield plugins.get_plugin_manager()
    plugins.reset()


class _Explodes(FMICL):
    """f-MICL whose negative term becomes inf at the 14th call (the 3rd step of epoch 2)."""

    calls = 0

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, queue: Any = None) -> torch.Tensor:
        loss = super().forward(z1, z2, queue)
        type(self).calls += 1
        if type(self).calls == 14:
            self.last_terms["negative term"] = torch.tensor(float("inf"))
            return loss * float("inf")
        return loss


class _ExplodingPlugin:
    @fm.hookimpl
    def register_objectives(self, register: Any) -> None:
        register(name="explodes", factory=_Explodes, description="goes inf at step 14")


def test_the_nan_guard_names_step_and_term_and_keeps_the_last_checkpoint(
    tmp_path: Path, pm: Any
) -> None:
    pm.register(_ExplodingPlugin(), name="explodes")
    components.clear()
    _Explodes.calls = 0
    spec = load_spec(None, [*TINY, "objective.name=explodes", "eval.every=0"])
    with pytest.raises(TrainingDiverged) as err:
        train(spec, tmp_path, log=_quiet)
    message = str(err.value)
    assert "step 14 (epoch 2)" in message
    assert "non-finite: negative term" in message
    assert "last.pt" in message
    run = tmp_path / "digits"
    state = torch.load(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["step"] == 11
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "diverged" and last["step"] == 14


@pytest.mark.parametrize(
    "architecture, objective",
    [
        ("simclr", "fmicl"),
        ("simclr", "infonce"),
        ("moco", "fmicl"),
        ("moco", "moco_infonce"),
        ("mocov3", "fmicl"),
        ("mocov3", "align_uniform"),
    ],
)
def test_every_architecture_runs_through_the_loop(
    tmp_path: Path, architecture: str, objective: str
) -> None:
    settings = [
        *TINY,
        f"architecture.name={architecture}",
        f"objective.name={objective}",
        "backbone.name=small_cnn",
        "backbone.width=8",
        "backbone.output_dim=16",
        "train.max_steps=2",
        "eval.every=0",
    ]
    if architecture == "moco":
        settings.append("architecture.queue_size=256")
    result = train(load_spec(None, settings), tmp_path, log=_quiet)
    assert result.report["training"]["steps"] == 2
    assert 0 < result.report["metrics"]["linear_top1"] <= 1


def test_moco_with_an_objective_without_a_queue_is_refused(tmp_path: Path) -> None:
    spec = load_spec(None, [*TINY, "architecture.name=moco", "objective.name=infonce"])
    with pytest.raises(fm.FmiclError, match="queue"):
        train(spec, tmp_path, log=_quiet)
    assert not (tmp_path / "digits" / "checkpoints").exists()


def test_a_misspelled_component_option_names_the_section(tmp_path: Path) -> None:
    spec = load_spec(None, [*TINY, "backbone.widht=8"])
    with pytest.raises(
        fm.FmiclError, match=r"\[backbone\] backbone 'small_cnn'.*did you mean 'width'"
    ):
        train(spec, tmp_path, log=_quiet)
