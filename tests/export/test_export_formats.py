"""``fmicl export`` in each format: the file loads into the plain model (torchvision's ResNet,
the registered backbone, a torch.export program) and gives the run's own encoder's features."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from click.testing import CliRunner
from export_runs import (
    features,
    normalise,
    quiet,
    reference_encoder,
    shared_cifar_run,
    shared_digits_run,
)
from safetensors import safe_open
from safetensors.torch import load_file

import fmicl_registry as fm
from fmicl_registry.cli import cli
from fmicl_registry.data import digits


def _digits_inputs(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    test = digits(split="test")
    images = torch.stack([test[i][0] for i in range(n)])
    return images, normalise(images, test.mean, test.std)


def _cifar_inputs() -> torch.Tensor:
    _, _, written = shared_cifar_run()
    images = torch.from_numpy(written["test"][0])  # type: ignore[index]
    # CIFAR-10's training statistics, as the cifar10 data set gives them
    train = fm.build("datasets", "cifar10", root=shared_cifar_run()[1], split="pretrain")
    return normalise(images, train.mean, train.std)


def test_safetensors_loads_into_the_registered_backbone_with_the_runs_features(
    tmp_path: Path,
) -> None:
    run = shared_digits_run()
    path = fm.export(run, out=tmp_path, log=quiet)
    assert path == tmp_path / "digits.safetensors"
    _, x = _digits_inputs()
    expected = features(reference_encoder(run), x)

    loaded = fm.load_encoder(path)
    assert not loaded.training
    torch.testing.assert_close(features(loaded, x), expected)

    # what the metadata says is enough to rebuild it by hand, with the registry
    with safe_open(str(path), framework="pt") as handle:
        info = json.loads(handle.metadata()["fmicl_export"])
    assert info["backbone"] == "small_cnn" and info["input_shape"] == [1, 8, 8]
    assert info["options"] == {"width": 8, "output_dim": 16} and info["output_dim"] == 16
    test = digits(split="test")
    assert info["mean"] == pytest.approx(test.mean) and info["std"] == pytest.approx(test.std)
    assert info["objective"]["name"] == "fmicl" and info["objective"]["divergence"] == "js"
    assert info["version"] == fm.__version__ and info["run"] == "digits"
    by_hand = fm.build(
        "backbones", info["backbone"], input_shape=tuple(info["input_shape"]), **info["options"]
    )
    by_hand.load_state_dict(load_file(str(path)), strict=True)
    torch.testing.assert_close(features(by_hand.eval(), x), expected)


def test_a_run_folder_loads_as_its_trained_encoder() -> None:
    run = shared_digits_run()
    _, x = _digits_inputs()
    encoder = fm.load_encoder(run, log=quiet)
    torch.testing.assert_close(features(encoder, x), features(reference_encoder(run), x))
    assert encoder.encoder_info.input_shape == (1, 8, 8)


def test_torchvision_export_loads_into_plain_torchvision_resnet18(tmp_path: Path) -> None:
    run, _, _ = shared_cifar_run()
    path = fm.export(run, "torchvision", tmp_path / "encoder.pth", log=quiet)
    x = _cifar_inputs()
    expected = features(reference_encoder(run), x)

    # the README's lines: torchvision's resnet18, without fc, with the CIFAR stem
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = torch.nn.Identity()
    model.load_state_dict(torch.load(path, weights_only=True))  # strict
    torch.testing.assert_close(features(model.eval(), x), expected)
    assert expected.shape == (4, 512)


def test_the_printed_torchvision_recipe_runs_and_gives_the_same_features(tmp_path: Path) -> None:
    run, _, _ = shared_cifar_run()
    out = tmp_path / "r18.pth"
    result = CliRunner().invoke(
        cli, ["export", str(run), "--format", "torchvision", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    recipe = result.output.split("load it into torchvision:\n", 1)[1]
    assert "model.maxpool = torch.nn.Identity()" in recipe
    scope: dict[str, object] = {}
    exec(recipe, scope)  # the lines a user copies
    model = scope["model"]
    assert isinstance(model, torch.nn.Module)
    x = _cifar_inputs()
    torch.testing.assert_close(features(model.eval(), x), features(reference_encoder(run), x))


@pytest.mark.parametrize("which", ["digits", "cifar"])
def test_torch_export_program_gives_the_runs_features_at_any_batch_size(
    tmp_path: Path, which: str
) -> None:
    run = shared_digits_run() if which == "digits" else shared_cifar_run()[0]
    path = fm.export(run, "torch-export", tmp_path, log=quiet)
    assert path.suffix == ".pt2"
    program = torch.export.load(path).module()
    x = _digits_inputs()[1] if which == "digits" else _cifar_inputs()
    reference = reference_encoder(run)
    for batch in (x[:1], x):  # the batch size is not fixed by the export
        torch.testing.assert_close(features(program, batch), features(reference, batch))


def test_torchvision_format_is_refused_for_a_backbone_that_is_not_torchvision(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(
        cli, ["export", str(shared_digits_run()), "--format", "torchvision", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "'small_cnn'" in result.output and "resnet18, resnet50" in result.output
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


def test_an_existing_export_is_kept_unless_force(tmp_path: Path) -> None:
    run = str(shared_digits_run())
    target = tmp_path / "mine.safetensors"
    target.write_text("keep me")
    refused = CliRunner().invoke(cli, ["export", run, "--out", str(target)])
    assert refused.exit_code == 2 and "already exists" in refused.output
    assert "--force" in refused.output and target.read_text() == "keep me"
    forced = CliRunner().invoke(cli, ["export", run, "--out", str(target), "--force"])
    assert forced.exit_code == 0, forced.output
    assert fm.load_encoder(target).encoder_info.backbone == "small_cnn"
    assert [p.name for p in tmp_path.iterdir()] == ["mine.safetensors"]  # no temporary left


@pytest.mark.parametrize("command", ["export", "embed"])
def test_the_commands_help_imports_no_torch(command: str) -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('torch loaded:', 'torch' in sys.modules))\n"
        "from fmicl_registry.cli import main\n"
        f"sys.argv = ['fmicl', {command!r}, '--help']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"Usage: fmicl {command}" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "torch loaded: False"


def test_an_export_path_in_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(shared_digits_run(), run)
    shutil.rmtree(run / "checkpoints")  # reading the run would fail: the output is first
    (run / "checkpoints").mkdir()
    (tmp_path / "p1.toml").write_text("[run]\n")
    result = CliRunner().invoke(
        cli, ["export", str(run), "--out", str(tmp_path / "p1.toml" / "x.safetensors")]
    )
    assert result.exit_code == 2, result.output
    assert "p1.toml is a file, not a folder" in result.output
    assert "Traceback" not in result.output and "has no checkpoint" not in result.output
    assert (tmp_path / "p1.toml").read_text() == "[run]\n"
    target = tmp_path / "taken"
    (target / "run.safetensors").mkdir(parents=True)  # --out FOLDER: FOLDER/run.safetensors
    result = CliRunner().invoke(cli, ["export", str(run), "--out", str(target), "--force"])
    assert result.exit_code == 2 and "run.safetensors is a folder" in result.output
    result = CliRunner().invoke(cli, ["export", str(run), "--out", f"{tmp_path / 'new'}/"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "new").exists()  # not a file named like the folder


def test_an_export_into_a_runs_checkpoints_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(shared_digits_run(), run)
    last = run / "checkpoints" / "last.pt"
    kept = last.read_bytes()
    link = tmp_path / "link.pt"
    link.symlink_to(last)
    linked_folder = tmp_path / "ckpts"
    linked_folder.symlink_to(run / "checkpoints", target_is_directory=True)
    for out in (last, run / "checkpoints", link, linked_folder / "x.safetensors"):
        result = CliRunner().invoke(cli, ["export", str(run), "--out", str(out), "--force"])
        assert result.exit_code == 2, (out, result.output)
        assert "checkpoints folder of the run" in result.output, result.output
        assert "Traceback" not in result.output
    assert last.read_bytes() == kept and link.is_symlink()
    with pytest.raises(fm.FmiclError, match="checkpoints folder"):
        fm.export(run, out=last, force=True, log=quiet)
    assert last.read_bytes() == kept
