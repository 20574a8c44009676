"""STL-10 written as the official binaries and read through torchvision's loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_formats import STL10_FOLDER, random_images, stl_images_bytes, write_stl10

from fmicl_registry.data import DatasetError, stl10


def test_train_and_test_round_trip_exactly(tmp_path: Path) -> None:
    written = write_stl10(tmp_path)
    for split in ("train", "test"):
        ds = stl10(root=tmp_path, split=split)
        want_x, want_y = written[split]
        assert len(ds) == len(want_y)
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (3, 96, 96)
        for i in range(len(ds)):
            image, label = ds[i]
            assert torch.equal(image, torch.from_numpy(want_x[i]))
            assert label == want_y[i] and 0 <= label < 10
        assert ds.classes == written["classes"]


def test_column_major_files_give_upright_images(tmp_path: Path) -> None:
    """The binaries store each channel column by column: the top row must stay the top row."""
    write_stl10(tmp_path)
    image = np.zeros((1, 3, 96, 96), dtype=np.uint8)
    image[0, 0, 0, :] = 255  # red top row
    image[0, 2, :, 5] = 100  # blue column 5
    folder = tmp_path / STL10_FOLDER
    (folder / "test_X.bin").write_bytes(stl_images_bytes(image))
    (folder / "test_y.bin").write_bytes(bytes([3]))
    # In the file, the red top row is every 96th byte of the first plane.
    raw = np.frombuffer((folder / "test_X.bin").read_bytes(), dtype=np.uint8)
    assert bool((raw[: 96 * 96 : 96] == 255).all()) and int(raw[:96].sum()) == 255
    loaded, label = stl10(root=tmp_path, split="test")[0]
    assert label == 2
    assert bool((loaded[0, 0, :] == 255).all()) and int(loaded[0, 1:].sum()) == 0
    assert bool((loaded[2, :, 5] == 100).all()) and int(loaded[2].sum()) == 100 * 96


def test_pretrain_is_train_plus_unlabeled(tmp_path: Path) -> None:
    written = write_stl10(tmp_path, n_train=3, n_unlabeled=4)
    ds = stl10(root=tmp_path, split="pretrain")
    assert len(ds) == 7
    labels = [ds[i][1] for i in range(len(ds))]
    assert labels[:3] == written["train"][1] and labels[3:] == [-1] * 4
    assert torch.equal(ds.images[:3], torch.from_numpy(written["train"][0]))
    assert torch.equal(ds.images[3:], torch.from_numpy(written["unlabeled"]))
    assert ds.num_classes == 10 and ds.split == "pretrain"
    unlabeled = stl10(root=tmp_path, split="unlabeled")
    assert len(unlabeled) == 4 and set(unlabeled.labels.tolist()) == {-1}


def test_attributes(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    ds = stl10(root=tmp_path)
    assert ds.name == "stl10" and ds.input_shape == (3, 96, 96) and ds.num_classes == 10
    assert len(ds.mean) == len(ds.std) == 3 and all(0 < s < 1 for s in ds.std)
    assert ds.default_recipe == "simclr"


def test_folds_select_the_listed_training_images(tmp_path: Path) -> None:
    written = write_stl10(tmp_path, n_train=3)
    ds = stl10(root=tmp_path, split="train", folds=1)  # line 2 of fold_indices.txt: "1 2"
    assert torch.equal(ds.images, torch.from_numpy(written["train"][0][[1, 2]]))
    assert ds.labels.tolist() == [written["train"][1][1], written["train"][1][2]]
    with pytest.raises(DatasetError, match=r"0\.\.9"):
        stl10(root=tmp_path, folds=10)


def test_pretraining_without_the_unlabeled_file_names_it(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    (tmp_path / STL10_FOLDER / "unlabeled_X.bin").unlink()
    assert len(stl10(root=tmp_path, split="train")) == 3  # train does not need it
    with pytest.raises(DatasetError) as caught:
        stl10(root=tmp_path, split="pretrain")
    message = str(caught.value)
    assert "unlabeled_X.bin" in message and str(tmp_path / STL10_FOLDER) in message
    assert "train_X.bin" not in message.split("files")[1].split("which")[0]
    assert "download=True" in message and "stl10_binary.tar.gz" in message


def test_missing_data_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        stl10(root=tmp_path / "nowhere", split="test")
    message = str(caught.value)
    assert str(tmp_path / "nowhere" / STL10_FOLDER) in message
    assert "test_X.bin" in message and "test_y.bin" in message
    assert "download=True" in message and "http://ai.stanford.edu/~acoates/stl10" in message


def test_truncated_binary_is_named(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    path = tmp_path / STL10_FOLDER / "train_X.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError) as caught:
        stl10(root=tmp_path)
    assert str(path) in str(caught.value) and "3x96x96" in str(caught.value)


def test_label_count_mismatch_is_named(tmp_path: Path) -> None:
    write_stl10(tmp_path)
    folder = tmp_path / STL10_FOLDER
    (folder / "test_X.bin").write_bytes(stl_images_bytes(random_images(3, (3, 96, 96), 0)))
    with pytest.raises(DatasetError) as caught:
        stl10(root=tmp_path, split="test")
    assert str(folder / "test_y.bin") in str(caught.value)
    assert "2 labels for 3 images" in str(caught.value)


def test_unknown_split_lists_the_splits(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"'train', 'test', 'pretrain', 'unlabeled'"):
        stl10(root=tmp_path, split="train+unlabeled")
