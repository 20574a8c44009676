"""The resolved spec (every default filled in) and ``fmicl train --print-spec`` / ``--dry-run``.

The claim tested: a run records what it used, and building from that record makes the same
run. The reference for "the same run" is training both and comparing the weights and losses,
not the resolution code.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from training_helpers import TINY

import fmicl_registry as fm
from fmicl_registry import plugins
from fmicl_registry.cli import cli
from fmicl_registry.components import clear
from fmicl_registry.training import load_spec, train
from fmicl_registry.training.build import build
from fmicl_registry.training.resolve import resolve

QUICK = [*TINY, "train.epochs=1", "train.max_steps=3", "eval.every=0", "eval.linear_epochs=1"]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return state["model"]


def _losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if '"loss"' in line]


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # the digits default
        ["objective.name=infonce", "objective.temperature=0.2"],
        ["architecture.name=mocov3", "backbone.name=small_cnn", "architecture.hidden_dim=32"],
        ["augment.name=null"],  # the data set's recipe, with the recipe's own defaults
        ["objective.divergence=tsallis", "objective.similarity_options={mu = 0.5}"],
    ],
)
def test_training_from_the_recorded_spec_is_the_same_run(
    overrides: list[str], tmp_path: Path
) -> None:
    spec = load_spec(None, [*QUICK, *overrides])
    first = train(spec, tmp_path / "a", log=lambda _: None).run_dir
    recorded = first / "spec.toml"
    again = train(load_spec(recorded), tmp_path / "b", log=lambda _: None).run_dir
    assert _losses(first) == _losses(again) and len(_losses(first)) >= 1
    one, two = _weights(first), _weights(again)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=0, atol=0, msg=key)
    assert (again / "spec.toml").read_text().splitlines()[1:] == recorded.read_text().splitlines()[
        1:
    ]  # resolving a resolved spec changes nothing but the "resolved from" line


def test_a_spec_that_names_little_records_every_default(tmp_path: Path) -> None:
    """The issue's case: only [train] and [objective] ran a ResNet-18 on 8x8 digits with lr
    0.1 while spec.toml had empty [backbone] and [augment] sections."""
    given = tmp_path / "short.toml"
    given.write_text('[train]\nepochs = 1\n\n[objective]\nname = "fmicl"\ndivergence = "kl"\n')
    result = CliRunner().invoke(cli, ["train", str(given), "--print-spec"])
    assert result.exit_code == 0, result.output
    printed = tomllib.loads(result.output)
    assert printed["backbone"]["name"] == "resnet18"
    assert "cifar_stem not set" not in result.output  # a component's unset option reads:
    assert "# cifar_stem: not set, the component chooses" in result.output
    assert printed["train"]["lr"] == 0.1
    assert printed["augment"]["name"] == "digits" and printed["augment"]["degrees"] == 10.0
    assert printed["augment"]["crop_scale"] == [0.7, 1.0] and printed["augment"]["batched"]
    assert printed["objective"] | {"divergence": "kl", "alpha": 40.0} == printed["objective"]
    assert printed["architecture"]["out_dim"] == 512
    assert not list(tmp_path.glob("runs*")) and not Path("runs", "run").exists()


def test_dry_run_says_what_would_run_and_writes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["train", "--dry-run", "--set", "train.batch_size=100", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 0, result.output
    assert "# data: digits, 1437 items (1x8x8) for pretraining" in result.output
    assert f"# steps: {1437 // 100} per epoch x 100 epochs = {1437 // 100 * 100}" in result.output
    encoder = fm.build("backbones", "small_cnn", input_shape=(1, 8, 8))
    count = sum(p.numel() for p in encoder.parameters())
    assert f"(encoder {count:,})" in result.output
    assert tomllib.loads(result.output)["train"]["batch_size"] == 100
    assert f"# run folder: {tmp_path / 'o' / 'digits'}\n" in result.output
    assert not (tmp_path / "o").exists()
    (tmp_path / "o" / "digits").mkdir(parents=True)  # taken: the run would get digits-2
    again = CliRunner().invoke(cli, ["train", "--dry-run", "--out", str(tmp_path / "o")])
    assert f"# run folder: {tmp_path / 'o' / 'digits-2'}\n" in again.output
    assert list((tmp_path / "o").iterdir()) == [tmp_path / "o" / "digits"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dry-run", "--set", "train.batch_size=5000"], "fewer than train.batch_size (5000)"),
        (["--print-spec", "--set", "backbone.width=-1"], "[backbone]"),
        (
            ["--dry-run", "--set", "data.name=cifar10", "--set", "data.root=/nonexistent"],
            "not found",
        ),
        (["--dry-run", "--resume", "."], "--print-spec and --dry-run describe a new run"),
    ],
)
def test_dry_run_fails_as_the_run_would(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.fixture
def odd_backbone() -> Iterator[None]:
    """A plugin backbone with defaults TOML cannot hold (an object, None, a tuple with None)
    and an option without a default the build does not pass."""

    class Plugin:
        @fm.hookimpl
        def register_backbones(self, register: Any) -> None:
            def odd(
                input_shape: tuple[int, int, int],
                width: int = 4,
                act: type = torch.nn.ReLU,
                pads: tuple[int, None] = (1, None),
                sizes: tuple[int, int] = (2, 3),
                note: str | None = None,
                **extra: Any,
            ) -> torch.nn.Module:
                net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, width), act())
                net.output_dim = width  # type: ignore[assignment]
                return net

            register(name="odd", factory=odd)

    plugins.reset()
    plugins.get_plugin_manager().register(Plugin(), name="odd-plugin")
    clear()
    yield
    plugins.reset()
    clear()


def test_defaults_without_a_toml_form_are_named_not_written(odd_backbone: None) -> None:
    spec = build(load_spec(None, ["backbone.name=odd"])).spec
    assert spec is not None
    assert spec["backbone"] == {"name": "odd", "width": 4, "sizes": [2, 3]}
    assert spec.comments["backbone"] == "act, pads, note: not set, the component chooses"
    text = spec.to_toml()
    assert "# act, pads, note: not set, the component chooses" in text
    assert resolve(spec, backbone="odd", recipe="digits").data == spec.data  # idempotent


def test_dry_run_checks_the_loggers_too() -> None:
    result = CliRunner().invoke(cli, ["train", "--dry-run", "--set", "train.logger=tensorbord"])
    assert result.exit_code == 2
    assert "tensorboard" in result.output  # the did-you-mean


def test_print_spec_needs_no_data_and_nothing_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundled spec's resolved form can be read before its data is fetched, and neither
    --print-spec nor --dry-run acts on data.download."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "cifar"
    args = ["cifar10_simclr_resnet18", "--set", "data.download=true", "--set", f"data.root={root}"]
    printed = CliRunner().invoke(cli, ["train", *args, "--print-spec"])
    assert printed.exit_code == 0, printed.output
    spec = tomllib.loads(printed.output)
    assert spec["backbone"]["name"] == "resnet18" and spec["augment"]["name"] == "simclr"
    assert spec["data"]["download"] is True and spec["data"]["root"] == str(root)
    shown = CliRunner().invoke(cli, ["train", *args, "--dry-run"])
    assert shown.exit_code == 2 and "a dry run does not download" in shown.output
    assert not root.exists() and list(tmp_path.iterdir()) == []
    # without a recipe in the spec and without data, the comment says why it is missing
    bare = CliRunner().invoke(
        cli, ["train", "--print-spec", "--set", "data.name=cifar10", "--set", "augment.name=null",
              "--set", f"data.root={root}"],
    )  # fmt: skip
    assert bare.exit_code == 0, bare.output
    assert "# name not set: the data set's default recipe" in bare.output


def test_the_recorded_spec_says_what_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    spec = build(load_spec(None, ["augment.name=none", "data.root=images"])).spec
    assert spec is not None
    assert spec["augment"]["batched"] is False  # 'none' has no batched form: per image ran
    assert spec["data"]["root"] == str(tmp_path / "images")  # absolute: readable from anywhere
    assert build(load_spec(None, [])).spec["augment"]["batched"] is True  # type: ignore[index]


def test_an_empty_spec_is_warned_about(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing yet\n")
    with pytest.warns(UserWarning, match="sets nothing: the run uses every default"):
        load_spec(empty)
    result = CliRunner().invoke(cli, ["train", str(empty), "--print-spec"])
    assert result.exit_code == 0
    assert "warning: " in result.stderr and "Warning" not in result.stderr  # one plain line
