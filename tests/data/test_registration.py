"""The built-in plugin registers the five data sets through the register_datasets hook."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_formats import write_stl10

import fmicl_registry as fm
from fmicl_registry.data import DatasetError, ImageDataset

NAMES = ["cifar10", "cifar100", "digits", "imagefolder", "stl10"]


def test_all_five_are_registered_by_the_builtin_plugin() -> None:
    assert set(NAMES) <= set(fm.registry().names("datasets"))
    for name in NAMES:
        spec = fm.registry().get("datasets", name)
        assert isinstance(spec, fm.ComponentSpec)
        assert spec.plugin.endswith("datasets") and spec.description


def test_digits_builds_without_any_files() -> None:
    ds = fm.get_component("datasets", "digits", split="test")
    assert isinstance(ds, ImageDataset) and len(ds) == 360


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagefolder", "stl10"])
def test_file_backed_sets_say_where_the_data_should_be(name: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        fm.get_component("datasets", name, root=tmp_path, split="test")
    assert str(tmp_path) in str(caught.value)
    assert isinstance(caught.value, fm.FmiclError)


def test_registered_stl10_reads_files(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    ds = fm.get_component("datasets", "stl10", root=tmp_path, split="pretrain", download=False)
    assert len(ds) == 7 and ds.labels.tolist()[-4:] == [-1] * 4


def test_unknown_name_is_a_registry_error() -> None:
    with pytest.raises(fm.RegistryError, match="cifar10"):
        fm.get_component("datasets", "cifar11")
