"""``images``: a folder of your own image files, recursive, unlabelled, read lazily; unreadable
files skipped with one warning; ``dataset.files`` for every folder-backed data set."""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fmicl_registry as fm
from fmicl_registry.data import DatasetError, digits, imagefolder, images


def _png(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _noise(height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _truncated_png(path: Path, seed: int = 0) -> None:
    """A real PNG of noise cut in half: its header reads, its pixels do not decode."""
    buffer = io.BytesIO()
    _noise(40, 40, seed).save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _modes_folder(root: Path) -> None:
    """Nested folders of PNG/JPEG files in several modes and sizes, with things to ignore."""
    _png(root / "rgb" / "wide.png", _noise(30, 60, 0))
    _png(root / "rgb" / "deeper" / "photo.jpg", _noise(50, 40, 1))
    _png(root / "gray.png", Image.new("L", (20, 20), 77))
    _png(root / "modes" / "clear.png", Image.new("RGBA", (9, 9), (0, 0, 0, 0)))
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 200, 10, 10])  # colour 1 is (200, 10, 10)
    _png(root / "modes" / "palette.png", palette)
    sixteen = Image.fromarray(np.full((6, 6), 32896, dtype=np.uint16))  # 32896 / 257 = 128
    _png(root / "modes" / "sixteen.png", sixteen)
    _png(root / "tiny" / "one.png", Image.new("RGB", (1, 1), (1, 2, 3)))
    _png(root / "tiny" / "line.png", _noise(1, 10000, 2))
    _png(root / ".hidden" / "secret.png", _noise(8, 8, 3))
    _png(root / ".dotfile.png", _noise(8, 8, 4))
    (root / "notes.txt").write_text("not an image")
    (root / "folder.png").mkdir()  # a directory with an image's name
    os.symlink(root, root / "modes" / "loop")  # a link back to the top: a loop


EXPECTED = [
    "gray.png",
    "modes/clear.png",
    "modes/palette.png",
    "modes/sixteen.png",
    "rgb/deeper/photo.jpg",
    "rgb/wide.png",
    "tiny/line.png",
    "tiny/one.png",
]


def test_finds_images_recursively_in_sorted_order_and_ignores_the_rest(tmp_path: Path) -> None:
    _modes_folder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every file here is readable: no warning
        ds = images(tmp_path, image_size=16)
    assert ds.files == EXPECTED and ds.root == tmp_path
    assert len(ds) == 8 and not ds.in_memory and ds.unreadable_files() == []
    assert ds.labels.tolist() == [-1] * 8 and ds.num_classes == 0 and ds.classes is None
    assert ds.input_shape == (3, 16, 16) and ds.split == "pretrain"
    for index in range(len(ds)):
        image, label = ds[index]
        assert image.dtype == torch.uint8 and image.shape == (3, 16, 16) and label == -1


def test_modes_are_converted_to_rgb_as_documented(tmp_path: Path) -> None:
    _modes_folder(tmp_path)
    ds = images(tmp_path, image_size=8)
    by_name = {name: ds[i][0] for i, name in enumerate(ds.files or [])}
    assert set(by_name["gray.png"].unique().tolist()) == {77}  # grey copied to R, G and B
    assert set(by_name["modes/clear.png"].unique().tolist()) == {255}  # transparent -> white
    assert by_name["modes/palette.png"][:, 0, 0].tolist() == [200, 10, 10]
    assert set(by_name["modes/sixteen.png"].unique().tolist()) == {128}  # 16 bit scaled, not 255
    assert by_name["tiny/one.png"][:, 3, 5].tolist() == [1, 2, 3]  # 1x1 blown up to 8x8


def test_central_square_of_a_wide_image(tmp_path: Path) -> None:
    """60x30, left third red, middle green, right third blue: the central square is green."""
    array = np.zeros((30, 90, 3), dtype=np.uint8)
    array[:, :30, 0] = array[:, 30:60, 1] = array[:, 60:, 2] = 255
    _png(tmp_path / "wide.png", Image.fromarray(array))
    image, _ = images(tmp_path, image_size=10)[0]
    assert image[1].min() > 200 and image[0].max() < 50 and image[2].max() < 50


def test_unreadable_files_are_skipped_with_one_warning_naming_them(tmp_path: Path) -> None:
    for i in range(4):
        _png(tmp_path / "good" / f"{i}.png", _noise(12, 12, i))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "sub" / "random.jpg").parent.mkdir()
    (tmp_path / "sub" / "random.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    Image.fromarray(np.ones((4, 4), dtype=np.float32)).save(tmp_path / "float.tif")  # mode F
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = images(tmp_path, image_size=8)
        again = images(tmp_path, split="test", image_size=8)  # the same folder: no new warning
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "skipped 3 of 7 image files" in messages[0]
    for name in ("empty.png (empty file)", "float.tif (unsupported image mode 'F')", "random"):
        assert name in messages[0]
    assert ds.files == [f"good/{i}.png" for i in range(4)] == again.files
    assert ds.unreadable_files() == ["empty.png", "float.tif", "sub/random.jpg"]


def test_a_file_that_fails_to_decode_is_replaced_and_counted(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / f"{i}.png", _noise(8, 8, i))
    _truncated_png(tmp_path / "1b.png")  # sorted between 1.png and 2.png; its header reads
    ds = images(tmp_path, image_size=8)
    assert ds.files == ["0.png", "1.png", "1b.png", "2.png"] and ds.unreadable_files() == []
    replaced, _ = ds[2]
    assert torch.equal(replaced, ds[3][0])  # the next readable image, deterministically
    assert ds.unreadable_files() == ["1b.png"]
    assert ds.subset([0, 2]).unreadable_files() == ["1b.png"]


def test_decoding_failures_in_loader_workers_reach_the_main_process(tmp_path: Path) -> None:
    for i in range(6):
        _png(tmp_path / f"{i}.png", _noise(8, 8, i))
    _truncated_png(tmp_path / "3x.png")
    _truncated_png(tmp_path / "5x.png", seed=1)
    ds = images(tmp_path, image_size=8)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    assert sum(len(labels) for _, labels in loader) == 8  # no crash: every item comes back
    assert ds.unreadable_files() == ["3x.png", "5x.png"]


def test_every_file_unreadable_is_an_error_naming_them(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(DatasetError) as caught:
        images(tmp_path)
    assert "1 image files, none readable (a.png)" in str(caught.value)
    _truncated_png(tmp_path / "only" / "cut.png")
    only = images(tmp_path / "only", image_size=8)
    with pytest.raises(DatasetError, match="none of the 1 image files"):
        only[0]


def test_missing_or_empty_folder_says_what_was_searched_and_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"needs a folder of images.*data\.root=<folder>"):
        images()
    with pytest.raises(
        DatasetError, match=re.escape(f"the folder {tmp_path / 'nope'} does not exist")
    ):
        images(tmp_path / "nope")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no images")
    (tmp_path / ".cache").mkdir()
    _png(tmp_path / ".cache" / "hidden.png", _noise(4, 4, 0))
    with pytest.raises(DatasetError) as caught:
        images(tmp_path)
    message = str(caught.value)
    assert f"found no image files under {tmp_path}" in message
    assert "searched recursively" in message and ".png" in message and "hidden" in message
    assert "data.root=<folder>" in message


def test_test_split_is_an_evenly_spaced_deterministic_sample(tmp_path: Path) -> None:
    for i in range(10):
        _png(tmp_path / f"{i:02d}.png", _noise(4, 4, i))
    whole = images(tmp_path, split="train", image_size=4)
    test = images(tmp_path, split="test", image_size=4, test_size=4)
    assert whole.files == [f"{i:02d}.png" for i in range(10)]
    assert test.files == ["00.png", "02.png", "05.png", "07.png"]  # floor(i * 10 / 4)
    assert images(tmp_path, split="test", image_size=4).files == whole.files  # 10 <= 1024
    with pytest.raises(DatasetError, match="test_size must be a positive int"):
        images(tmp_path, test_size=0)
    with pytest.raises(DatasetError, match="has no split 'val'"):
        images(tmp_path, split="val")


def test_registered_and_files_of_every_data_set(tmp_path: Path) -> None:
    _png(tmp_path / "pics" / "a.png", _noise(8, 8, 0))
    built = fm.build("datasets", "images", root=tmp_path / "pics", image_size=8)
    assert built.files == ["a.png"] and built.name == "images"
    for cls in ("cat", "dog"):
        _png(tmp_path / "labelled" / "train" / cls / "x" / f"{cls}.png", _noise(8, 8, 1))
    folder = imagefolder(root=tmp_path / "labelled", image_size=8)
    assert folder.files == ["train/cat/x/cat.png", "train/dog/x/dog.png"]
    assert folder.subset([1]).files == ["train/dog/x/dog.png"]
    assert all((folder.root / f).is_file() for f in folder.files)
    assert digits().files is None  # held in memory


def test_a_decompression_bomb_is_skipped_not_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PIL refuses images over twice MAX_IMAGE_PIXELS at open; lowered here to 1000 pixels."""
    _png(tmp_path / "small.png", _noise(10, 10, 0))
    _png(tmp_path / "huge.png", _noise(100, 100, 1))  # 10000 pixels > 2 * 1000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.warns(UserWarning, match=r"huge\.png \(DecompressionBombError"):
        ds = images(tmp_path, image_size=4)
    assert ds.files == ["small.png"] and ds.unreadable_files() == ["huge.png"]
