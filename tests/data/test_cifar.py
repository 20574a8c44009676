"""CIFAR-10/100 written in the official pickled format and read through torchvision's loaders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from data_formats import (
    CIFAR10_FOLDER,
    CIFAR10_TRAIN,
    CIFAR100_FOLDER,
    cifar_batch,
    write_cifar10,
    write_cifar100,
)

import fmicl_registry as fm
from fmicl_registry.data import DatasetError, ImageDataset, cifar10, cifar100


def test_fixture_is_the_official_python_format(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    # As the CIFAR page documents: pickle.load(fo, encoding="bytes") gives b"data", b"labels".
    with open(tmp_path / CIFAR10_FOLDER / "data_batch_1", "rb") as fo:
        entry = pickle.load(fo, encoding="bytes")
    assert entry[b"data"].shape == (2, 3072) and entry[b"data"].dtype == np.uint8
    assert isinstance(entry[b"labels"], list)


def test_cifar10_round_trips_pixels_labels_and_classes(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path)
    for split in ("train", "test"):
        ds = cifar10(root=tmp_path, split=split)
        want_x, want_y = written[split]
        assert isinstance(ds, ImageDataset) and ds.in_memory
        assert len(ds) == len(want_y)
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
            assert torch.equal(image, torch.from_numpy(want_x[i]))
            assert label == want_y[i] and isinstance(label, int)
        assert ds.classes == written["classes"]
        assert ds.split == split
    assert len(cifar10(root=tmp_path, split="train")) == 10


def test_cifar10_attributes(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    ds = cifar10(root=tmp_path)
    assert ds.name == "cifar10"
    assert ds.num_classes == 10
    assert ds.input_shape == (3, 32, 32)
    assert len(ds.mean) == len(ds.std) == 3
    assert all(0.4 < m < 0.5 for m in ds.mean) and all(0.2 < s < 0.3 for s in ds.std)
    assert ds.default_recipe == "simclr"


def test_cifar_rows_are_red_green_blue_planes_row_major(tmp_path: Path) -> None:
    """A user would notice a transposed or channel-swapped image: pin the layout."""
    write_cifar10(tmp_path)
    folder = tmp_path / CIFAR10_FOLDER
    image = np.zeros((1, 3, 32, 32), dtype=np.uint8)
    row = image.reshape(1, 3072)  # a view: the file's layout
    row[0, :32] = 255  # the first 32 red values: the top row of the red plane
    row[0, 1024 + 31] = 200  # green plane, top row, last column
    (folder / "test_batch").write_bytes(cifar_batch(image, [4], b"labels"))
    loaded, label = cifar10(root=tmp_path, split="test")[0]
    assert label == 4
    assert bool((loaded[0, 0, :] == 255).all()) and int(loaded[0, 1:, :].sum()) == 0
    assert int(loaded[1, 0, 31]) == 200 and int(loaded[1].sum()) == 200
    assert int(loaded[2].sum()) == 0


def test_pretrain_is_the_training_split(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    train, pretrain = cifar10(root=tmp_path), cifar10(root=tmp_path, split="pretrain")
    assert torch.equal(train.images, pretrain.images)
    assert pretrain.split == "pretrain"


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    written = write_cifar100(tmp_path)
    for split in ("train", "test", "pretrain"):
        ds = cifar100(root=tmp_path, split=split)
        want_x, want_y = written["test" if split == "test" else "train"]
        assert torch.equal(ds.images, torch.from_numpy(want_x))
        assert [ds[i][1] for i in range(len(ds))] == want_y
        assert ds.num_classes == 100 and ds.input_shape == (3, 32, 32) and ds.name == "cifar100"
        assert ds.classes is not None and ds.classes[99] == "class_99"


def test_missing_data_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        cifar10(root=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / CIFAR10_FOLDER) in message
    assert "data_batch_1" in message and "batches.meta" in message
    assert "download=True" in message and "data.download=true" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    with pytest.raises(DatasetError, match=r"cifar-100-python\.tar\.gz"):
        cifar100(root=tmp_path, split="test")


def test_one_missing_file_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / CIFAR10_FOLDER / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="data_batch_4") as caught:
        cifar10(root=tmp_path)
    assert "data_batch_1" not in str(caught.value).split("files")[1].split("which")[0]
    assert len(cifar10(root=tmp_path, split="test")) == 3  # the test split needs no batch 4


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a pickle at all", "not a pickle"),
        (None, "(n, 3072)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}), "b'data'"),
    ],
)
def test_unreadable_file_is_named(tmp_path: Path, content: bytes | None, problem: str) -> None:
    write_cifar10(tmp_path)
    path = tmp_path / CIFAR10_FOLDER / CIFAR10_TRAIN[2]
    if content is None:  # a pickle of the wrong shape
        content = cifar_batch(np.zeros((2, 3, 16, 16), dtype=np.uint8), [0, 1], b"labels")
    path.write_bytes(content)
    with pytest.raises(DatasetError) as caught:
        cifar10(root=tmp_path)
    assert str(path) in str(caught.value) and problem in str(caught.value)
    assert "download=True" in str(caught.value)


def test_present_files_are_not_downloaded_again(tmp_path: Path) -> None:
    """download=True with the files there reads them (no network needed, md5 not checked)."""
    written = write_cifar10(tmp_path)
    ds = cifar10(root=tmp_path, split="test", download=True)
    assert torch.equal(ds.images, torch.from_numpy(written["test"][0]))


def test_root_may_be_the_data_set_folder_itself(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    assert len(cifar10(root=tmp_path / CIFAR10_FOLDER, split="test")) == 3


def test_default_root_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar100(tmp_path)
    monkeypatch.setenv("FMICL_DATA_DIR", str(tmp_path))
    assert len(cifar100(split="test")) == 2
    monkeypatch.setenv("FMICL_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(DatasetError, match="elsewhere"):
        cifar100(split="test")


def test_without_fmicl_data_dir_the_xdg_cache_folder_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The XDG Base Directory specification: data that can be fetched again lives under
    ``$XDG_CACHE_HOME``; a relative value is ignored; ``FMICL_DATA_DIR`` comes first."""
    monkeypatch.delenv("FMICL_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    write_cifar100(tmp_path / "xdg" / "fmicl-registry" / "data")
    assert len(cifar100(split="test")) == 2
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    with pytest.raises(DatasetError, match=r"\.cache/fmicl-registry/data") as error:
        cifar100(split="test")
    assert "relative/cache" not in str(error.value)
    monkeypatch.setenv("FMICL_DATA_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DatasetError, match="mine"):
        cifar100(split="test")


def test_the_divergence_cache_follows_xdg_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmicl_registry.dsl.cache import cache_dir

    monkeypatch.delenv("FMICL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "fmicl-registry"


def test_unknown_split_lists_the_splits(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    with pytest.raises(DatasetError, match=r"'train', 'test', 'pretrain'"):
        cifar10(root=tmp_path, split="validation")


def test_registered_factory_reads_the_same_files(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path)
    ds = fm.get_component("datasets", "cifar10", root=tmp_path, split="test")
    assert torch.equal(ds.images, torch.from_numpy(written["test"][0]))
    with pytest.raises(fm.FmiclError, match=CIFAR100_FOLDER):
        fm.get_component("datasets", "cifar100", root=tmp_path)


def test_download_uses_torchvision_with_the_official_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """download=True hands the official URL and md5 to torchvision's downloader (faked here:
    no network in tests), then reads what it extracted."""
    import torchvision.datasets.utils as tv_utils

    calls: list[tuple[str, str, str | None, str | None]] = []

    def fake_download(url: str, root: str, filename: str | None = None, md5: str | None = None):
        calls.append((url, root, filename, md5))
        write_cifar10(Path(root))

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    ds = cifar10(root=tmp_path / "new", split="test", download=True)
    assert len(ds) == 3
    assert calls == [
        (
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            str(tmp_path / "new"),
            "cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
        )
    ]


def test_failed_download_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    import torchvision.datasets.utils as tv_utils

    def offline(url: str, root: str, filename: str | None = None, md5: str | None = None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DatasetError) as caught:
        cifar100(root=tmp_path, download=True)
    message = str(caught.value)
    assert "could not download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    assert "no network" in message and str(tmp_path / CIFAR100_FOLDER) in message
