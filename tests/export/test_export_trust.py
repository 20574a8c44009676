"""Hostile and broken exports: each is refused with an error that says what is wrong, nothing in
the file runs, and the command line exits 2 without a traceback."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from export_runs import quiet, shared_cifar_run, shared_digits_run
from safetensors import safe_open
from safetensors.torch import save_file

import fmicl_registry as fm
from fmicl_registry.cli import cli


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fm.export(shared_digits_run(), out=tmp_path_factory.mktemp("export"), log=quiet)


def _rewrite(source: Path, target: Path, change: Any) -> Path:
    """``source`` with its fmicl metadata changed by ``change(dict)`` (tensors unchanged)."""
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    info = json.loads(metadata["fmicl_export"])
    change(info)
    metadata["fmicl_export"] = json.dumps(info)
    save_file(tensors, str(target), metadata=metadata)
    return target


def _refused(path: Path, *needles: str) -> None:
    with pytest.raises(fm.CheckpointError) as caught:
        fm.load_encoder(path)
    for needle in needles:
        assert needle in str(caught.value), str(caught.value)
    result = CliRunner().invoke(
        cli, ["embed", str(path), "--data", str(path.parent), "--out", str(path.parent / "e.pt")]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and str(path) in result.output


def test_an_unknown_backbone_is_named_with_what_is_registered(
    exported: Path, tmp_path: Path
) -> None:
    bad = _rewrite(exported, tmp_path / "x.safetensors", lambda i: i.update(backbone="small_cnnn"))
    _refused(bad, "cannot rebuild its backbone 'small_cnnn'", "Did you mean 'small_cnn'")


def test_options_that_do_not_fit_the_tensors_list_the_mismatches(
    exported: Path, tmp_path: Path
) -> None:
    wider = _rewrite(exported, tmp_path / "x.safetensors", lambda i: i["options"].update(width=16))
    _refused(wider, "do not fit backbone 'small_cnn'", "features.0.0.weight has shape [8, 1, 3, 3]")
    unknown = _rewrite(exported, tmp_path / "y.safetensors", lambda i: i["options"].update(depth=3))
    _refused(unknown, "cannot rebuild its backbone", "its options: input_shape, width, output_dim")
    shape = _rewrite(exported, tmp_path / "z.safetensors", lambda i: i.update(input_shape=[8, 8]))
    _refused(shape, "input_shape = [8, 8]", "[channels, height, width]")


def test_a_newer_export_format_asks_for_an_upgrade(exported: Path, tmp_path: Path) -> None:
    newer = _rewrite(exported, tmp_path / "x.safetensors", lambda i: i.update(format=99))
    _refused(newer, "export format 99", "upgrade fmicl-registry")


def test_a_truncated_file_is_refused(exported: Path, tmp_path: Path) -> None:
    data = exported.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 100])
    _refused(cut, "not a readable safetensors file", "truncated")


def test_altered_weights_are_caught_by_the_recorded_checksum(
    exported: Path, tmp_path: Path
) -> None:
    data = bytearray(exported.read_bytes())
    data[-3] ^= 0x40  # a byte of the last tensor
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(bytes(data))
    _refused(flipped, "do not match the SHA-256 recorded", "altered or corrupted")


class _Payload:
    """Unpickling this creates a file: the proof that code in a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_renamed_safetensors_is_refused_without_running(
    tmp_path: Path, writer: str
) -> None:
    marker = tmp_path / "pwned"
    bomb = tmp_path / "model.safetensors"
    payload = {"weight": _Payload(marker)}
    if writer == "pickle":
        bomb.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, bomb)
    _refused(bomb, "not a readable safetensors file", "nothing in it was run")
    assert not marker.exists()


def test_a_plain_safetensors_file_is_not_taken_for_an_export(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    _refused(plain, "not an encoder exported by fmicl-registry")


def test_export_of_a_run_without_checkpoint_says_so(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(shared_digits_run(), run)
    shutil.rmtree(run / "checkpoints")
    result = CliRunner().invoke(cli, ["export", str(run), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "has no checkpoint" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("*.safetensors"))


def test_export_needs_no_data_the_checkpoint_records_the_inputs(tmp_path: Path) -> None:
    run, root, _ = shared_cifar_run()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(
        cli, ["export", str(run), "--out", str(tmp_path), "--set", f"data.root={empty}"]
    )
    assert result.exit_code == 0, result.output
    info = fm.load_encoder(tmp_path / "cifar.safetensors").encoder_info
    cifar = fm.build("datasets", "cifar10", root=root, split="pretrain")
    assert info.input_shape == (3, 32, 32) and info.mean == cifar.mean and info.std == cifar.std


def test_export_of_an_older_run_reads_the_data_where_data_root_points(tmp_path: Path) -> None:
    """A checkpoint written before the inputs were recorded: the data set is opened."""
    from fmicl_registry.training import checkpoint as ckpt

    shared, root, _ = shared_cifar_run()
    run = tmp_path / "old"
    shutil.copytree(shared, run)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    del state["inputs"]
    ckpt.rotate_and_save(state, run / "checkpoints")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(
        cli, ["export", str(run), "--out", str(tmp_path), "--set", f"data.root={empty}"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "input shape and normalisation" in result.output
    assert "--set data.root=FOLDER" in result.output
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    result = CliRunner().invoke(
        cli, ["export", str(run), "--out", str(tmp_path), "--set", f"data.root={moved}"]
    )
    assert result.exit_code == 0, result.output
    assert fm.load_encoder(tmp_path / "old.safetensors").encoder_info.input_shape == (3, 32, 32)
    embedded = CliRunner().invoke(
        cli,
        ["embed", str(run), "--set", f"data.root={moved}", "--dataset", "cifar10",
         "--data", str(moved), "--split", "test", "--out", str(tmp_path / "e.pt")],
    )  # fmt: skip
    assert embedded.exit_code == 0, embedded.output
    assert torch.load(tmp_path / "e.pt", weights_only=True)["features"].shape == (4, 512)


def test_options_asking_for_a_huge_backbone_are_refused_before_it_is_built(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmicl_registry import components

    huge = _rewrite(
        exported, tmp_path / "huge.safetensors", lambda i: i["options"].update(width=100000)
    )
    real_build = components.build
    devices: list[str] = []

    def watched(kind: str, name: str, /, **options: Any) -> Any:
        device = torch.empty(0).device.type  # where new tensors would go
        devices.append(device)
        if kind == "backbones" and device != "meta":
            raise AssertionError("the backbone was built with real memory before the check")
        return real_build(kind, name, **options)

    monkeypatch.setattr(components, "build", watched)
    with pytest.raises(fm.CheckpointError) as caught:
        fm.load_encoder(huge)
    assert devices == ["meta"]
    message = str(caught.value)
    assert "features.0.0.weight has shape [8, 1, 3, 3] in the file" in message
    assert "[100000, 1, 3, 3] in the backbone" in message
    monkeypatch.setattr(components, "build", real_build)
    _refused(huge, "do not fit backbone 'small_cnn'", "[100000, 1, 3, 3]")


def test_a_zero_or_negative_std_or_another_output_dim_is_refused(
    exported: Path, tmp_path: Path
) -> None:
    for n, std in enumerate(([0.0], [-0.5], [float("inf")])):
        bad = _rewrite(exported, tmp_path / f"s{n}.safetensors", lambda i, s=std: i.update(std=s))
        _refused(bad, f"std = {std!r}", "positive numbers")
    other = _rewrite(exported, tmp_path / "d.safetensors", lambda i: i.update(output_dim=17))
    _refused(other, "output_dim = 17", "gives 16 features")


def test_a_torch_export_program_is_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = fm.export(shared_digits_run(), "torch-export", tmp_path, log=quiet)

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the program was loaded")

    monkeypatch.setattr(torch.export, "load", never)
    renamed = tmp_path / "renamed.safetensors"
    shutil.copyfile(program, renamed)
    for path in (program, renamed):
        _refused(path, "is a torch-export program (.pt2", "loading it runs the program")
    with pytest.raises(fm.CheckpointError, match="safetensors export"):
        fm.load_encoder(program)


class _Net(torch.nn.Module):
    """A backbone object, as a user passes it to fm.train."""

    output_dim = 16

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def test_a_run_of_a_backbone_object_says_how_to_save_it_from_python(tmp_path: Path) -> None:
    from export_runs import DIGITS

    tiny = [o for o in DIGITS if not o.startswith("backbone.")]
    run = fm.train(fm.load_spec(None, tiny), tmp_path, backbone=_Net(), log=quiet).run_dir
    (tmp_path / "data").mkdir()
    needles = ("'python._Net' was an object passed to fm.train(backbone=...)", "result.encoder")
    for args in (
        ["export", str(run), "--out", str(tmp_path)],
        ["embed", str(run), "--dataset", "digits", "--data", str(tmp_path / "data"),
         "--out", str(tmp_path / "e.pt")],
    ):  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "register_backbones" not in result.output
        for needle in needles:
            assert needle in result.output, result.output
    with pytest.raises(fm.CheckpointError, match=r"safetensors\.torch\.save_file"):
        fm.load_encoder(run, log=quiet)
