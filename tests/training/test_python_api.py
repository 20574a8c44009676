"""``fm.train`` from Python: a spec, a path or a bundled name, overrides, and objects in place
of registered names. The reference for the object path is the same run made from names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch.utils.data import Dataset, TensorDataset
from training_helpers import TINY

import fmicl_registry as fm
from fmicl_registry.cli import cli
from fmicl_registry.data import digits
from fmicl_registry.training.objects import given_objects

QUICK = [*TINY, "train.epochs=1", "eval.every=0", "eval.linear_epochs=2"]
#: QUICK without the backbone's options (a backbone object has its own).
OBJECT_QUICK = [o for o in QUICK if not o.startswith("backbone.")]


def _quiet(_: str) -> None:
    pass


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_a_spec_may_be_a_path_a_bundled_name_or_an_object(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[run]\nname = "mine"\n\n[backbone]\nname = "small_cnn"\n')
    by_path = fm.train(path, tmp_path / "a", overrides=QUICK, log=_quiet)
    assert by_path.run_dir == tmp_path / "a" / "mine"
    by_name = fm.train("digits", tmp_path / "b", overrides=QUICK, log=_quiet)
    by_object = fm.train(fm.load_spec(), tmp_path / "c", overrides=QUICK, log=_quiet)
    assert by_name.report["metrics"] == by_object.report["metrics"]
    recorded = fm.load_spec(by_object.run_dir / "spec.toml")
    assert recorded.train.epochs == 1 and recorded.backbone.options["width"] == 8
    assert isinstance(by_object.encoder, torch.nn.Module) and not by_object.encoder.training


def test_data_set_objects_train_the_same_run_as_the_registered_name(tmp_path: Path) -> None:
    """The digits data sets passed as objects make exactly the run the spec makes from the
    name: same weights, same report."""
    named = fm.train(None, tmp_path / "named", overrides=QUICK, log=_quiet)
    given = fm.train(
        None,
        tmp_path / "given",
        overrides=QUICK,
        dataset=digits(split="pretrain"),
        eval_datasets=(digits(split="train"), digits(split="test")),
        log=_quiet,
    )
    one, two = _weights(named.run_dir), _weights(given.run_dir)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=0, atol=0, msg=key)
    assert named.report["metrics"] == given.report["metrics"]
    assert fm.load_spec(given.run_dir / "spec.toml").dataset.name == "python.ImageDataset"


def test_a_backbone_object_is_the_module_trained(tmp_path: Path) -> None:
    backbone = _Dim()
    backbone.body = torch.nn.Linear(64, 64)
    initial = {k: v.clone() for k, v in backbone.state_dict().items()}
    result = fm.train(
        None,
        tmp_path,
        overrides=[*OBJECT_QUICK, "eval.baselines=true"],
        backbone=backbone,
        log=_quiet,
    )
    assert result.encoder is backbone
    saved = _weights(result.run_dir)
    torch.testing.assert_close(saved["encoder.body.weight"], backbone.body.weight.detach())
    assert not torch.equal(backbone.body.weight, initial["body.weight"])  # it was trained
    assert "random_encoder" in result.report["baselines"]  # the copy as given
    assert fm.load_spec(result.run_dir / "spec.toml").backbone.name == "python._Dim"
    # the untrained baseline is built as a copy of the module as given
    with given_objects(backbone=backbone) as overrides:
        first = fm.build("backbones", overrides[0].split("=")[1])
        second = fm.build("backbones", overrides[0].split("=")[1])
    assert first is backbone and second is not backbone
    torch.testing.assert_close(second.state_dict(), backbone.state_dict())


class _PILDigits(Dataset[tuple[Image.Image, int]]):
    """A torchvision-style data set: PIL images, ``targets``, no mean or std."""

    def __init__(self) -> None:
        source = digits(split="train")
        self.images = [Image.fromarray(image[0].numpy(), mode="L") for image, _ in source]
        self.targets = source.labels.tolist()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return self.images[index], self.targets[index]


def test_a_torchvision_style_data_set_and_an_augmentation_callable(tmp_path: Path) -> None:
    calls: list[tuple[int, ...]] = []

    def jitter(image: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(image.shape))
        x = image.float() / 255.0
        return (x + 0.05 * torch.randn_like(x) - 0.3) / 0.4

    result = fm.train(
        None,
        tmp_path,
        overrides=[*QUICK, "eval.baselines=false"],
        dataset=_PILDigits(),
        augmentation=jitter,
        log=_quiet,
    )
    assert calls and set(calls) == {(1, 8, 8)}
    report = result.report
    assert "knn_top1" not in report["metrics"]  # no eval_datasets: scored label-free
    assert {"alignment", "uniformity"} <= set(report["metrics"])
    assert "no labels" in json.dumps(report)
    assert fm.load_spec(result.run_dir / "spec.toml").augment.name == "python.jitter"


def test_mean_and_std_are_measured_when_the_data_set_has_none() -> None:
    from fmicl_registry.data.adapt import as_image_dataset

    x = torch.rand(40, 3, 5, 5) * torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1)
    ds = as_image_dataset(TensorDataset(x))
    quantised = (x * 255).round() / 255
    expected_mean = quantised.transpose(0, 1).reshape(3, -1).mean(1)
    assert torch.allclose(torch.tensor(ds.mean), expected_mean, atol=1e-6)
    assert ds.num_classes == 0 and ds.labels.eq(-1).all()


def test_a_resumed_object_run_takes_the_same_objects(tmp_path: Path) -> None:
    def make() -> Any:
        torch.manual_seed(0)
        return fm.build("backbones", "small_cnn", input_shape=(1, 8, 8), width=8, output_dim=16)

    first = fm.train(None, tmp_path, overrides=OBJECT_QUICK, backbone=make(), log=_quiet)
    longer = fm.train(
        resume=first.run_dir,
        overrides=["train.epochs=2"],
        backbone=make(),
        log=_quiet,
        out=tmp_path,
    )
    assert longer.run_dir == first.run_dir
    assert fm.load_spec(first.run_dir / "spec.toml").train.epochs == 2
    result = CliRunner().invoke(cli, ["eval", str(first.run_dir)])
    assert result.exit_code == 2
    assert "'python.SmallCNN' was an object passed from Python" in result.output
    assert "fm.train(resume=RUN, ...)" in result.output


class _NoDim(torch.nn.Module):
    body: torch.nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.body(x) if hasattr(self, "body") else x


class _Dim(_NoDim):
    output_dim = 64


class _WrongDim(_NoDim):
    output_dim = 99


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ({"backbone": _NoDim()}, "needs an int attribute output_dim"),
        ({"backbone": 42}, "backbone must be an nn.Module or a callable"),
        ({"augmentation": "simclr"}, "augmentation must be a callable"),
        ({"eval_datasets": (digits(), digits())}, "pass dataset= too"),
        ({"dataset": TensorDataset(torch.rand(5, 3))}, "a tensor of shape (3,); an image is"),
        ({"dataset": TensorDataset(torch.randn(5, 1, 4, 4))}, "must be in [0, 1]"),
        (
            {"dataset": [torch.zeros(1, 4, 4, dtype=torch.uint8)] * 2 + [torch.zeros(1, 5, 5)]},
            "item 2 of the data set is an image of shape (1, 5, 5), but item 0's is (1, 4, 4)",
        ),
        ({"dataset": [], "backbone": None}, "is empty"),
        ({"backbone": _WrongDim()}, "says output_dim = 99, but for 2 images of shape (1, 8, 8)"),
        ({"backbone": _Dim}, "must take the input shape (C, H, W)"),
        ({"backbone": lambda shape: 3}, "returned a int, not an nn.Module"),
        ({"dataset": object()}, "needs __len__ and __getitem__"),
    ],
)
def test_wrong_objects_say_what_is_wrong(
    objects: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(fm.FmiclError) as error:
        fm.train(None, tmp_path, overrides=OBJECT_QUICK, log=_quiet, **objects)
    assert message in str(error.value)
    assert not any(tmp_path.iterdir())  # refused before a run folder exists


def test_the_objects_are_gone_after_the_call() -> None:
    with given_objects(backbone=_Dim()) as overrides:
        assert overrides == ["backbone.name=python._Dim"]
        assert "python._Dim" in fm.registry().names("backbones")
    assert "python._Dim" not in fm.registry().names("backbones")


def test_options_for_a_section_an_object_replaces_are_refused(tmp_path: Path) -> None:
    with pytest.raises(fm.SpecError, match=r"backbone\.width=8 does not apply"):
        fm.train(None, tmp_path, overrides=QUICK, backbone=_Dim(), log=_quiet)


def test_a_plain_uint8_tensor_is_a_data_set(tmp_path: Path) -> None:
    images = digits(split="pretrain").images  # uint8 (N, 1, 8, 8): Tensor.mean is a method
    from fmicl_registry.data.adapt import as_image_dataset

    adapted = as_image_dataset(images)
    assert adapted.input_shape == (1, 8, 8) and len(adapted) == len(images)
    expected = images.float().div(255).mean().item()
    assert abs(adapted.mean[0] - expected) < 0.02  # measured on a sample
