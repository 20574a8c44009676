"""Image folders of PNG/JPEG files (ImageNet-style and TinyImageNet-style) read lazily."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_formats import random_images, save_image

from fmicl_registry.data import DatasetError, imagefolder


def _imagenet_style(root: Path, size: int = 64) -> dict[str, list[tuple[np.ndarray, int]]]:
    """train/{ant,bee,cat}/ (2 PNGs each) and val/ with only bee and cat (1 PNG each)."""
    written: dict[str, list[tuple[np.ndarray, int]]] = {"train": [], "val": []}
    for label, cls in enumerate(("ant", "bee", "cat")):
        for j, x in enumerate(random_images(2, (3, size, size), seed=label)):
            save_image(x, root / "train" / cls / f"{cls}_{j}.png")
            written["train"].append((x, label))
        if cls != "ant":
            x = random_images(1, (3, size, size), seed=10 + label)[0]
            save_image(x, root / "val" / cls / f"val_{cls}.png")
            written["val"].append((x, label))
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    return written


def test_png_folder_round_trips_exactly(tmp_path: Path) -> None:
    written = _imagenet_style(tmp_path)
    for split in ("train", "val"):
        ds = imagefolder(root=tmp_path, split=split)
        assert len(ds) == len(written[split]) and not ds.in_memory
        for i, (want, label) in enumerate(written[split]):
            image, got = ds[i]
            assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)
            assert torch.equal(image, torch.from_numpy(want))
            assert got == label


def test_val_labels_follow_the_training_classes(tmp_path: Path) -> None:
    """val lacks 'ant': its 'bee' must still be label 1, as in train, not 0."""
    _imagenet_style(tmp_path)
    ds = imagefolder(root=tmp_path, split="val")
    assert ds.classes == ["ant", "bee", "cat"] and ds.num_classes == 3
    assert ds.labels.tolist() == [1, 2]


def test_attributes_and_splits(tmp_path: Path) -> None:
    _imagenet_style(tmp_path)
    ds = imagefolder(root=tmp_path, image_size=32)
    assert ds.name == "imagefolder" and ds.input_shape == (3, 32, 32)
    assert ds[0][0].shape == (3, 32, 32)
    assert ds.mean == pytest.approx((0.485, 0.456, 0.406))
    assert ds.std == pytest.approx((0.229, 0.224, 0.225))
    assert ds.default_recipe == "simclr"
    assert len(imagefolder(root=tmp_path, split="pretrain")) == 6
    test = imagefolder(root=tmp_path, split="test")  # no test/: val
    assert test.labels.tolist() == [1, 2] and test.split == "test"


def test_resize_shorter_side_then_center_crop(tmp_path: Path) -> None:
    """A 60x30 image, left half red, right half blue, and a grey column in the middle."""
    image = np.zeros((3, 30, 60), dtype=np.uint8)
    image[0, :, :30] = 255
    image[2, :, 30:] = 255
    image[:, :, 29:31] = 128
    save_image(image, tmp_path / "train" / "a" / "wide.png")
    gray = np.full((1, 20, 20), 77, dtype=np.uint8)
    save_image(gray, tmp_path / "train" / "b" / "gray.png")
    ds = imagefolder(root=tmp_path, image_size=16)
    wide, _ = ds[0]
    assert wide.shape == (3, 16, 16)  # 30x60 -> 16x32 -> center 16x16
    assert int(wide[0, 8, 0]) > 200 and int(wide[2, 8, 0]) < 50  # left stays red
    assert int(wide[2, 8, 15]) > 200 and int(wide[0, 8, 15]) < 50  # right stays blue
    flat, _ = ds[1]
    assert flat.shape == (3, 16, 16) and set(flat.unique().tolist()) == {77}  # grey -> RGB


def test_tiny_imagenet_layout(tmp_path: Path) -> None:
    """train/<wnid>/images/*.JPEG (+ boxes), val/images + val_annotations.txt, unlabeled test/."""
    wnids = ["n01443537", "n01629819"]
    for k, wnid in enumerate(wnids):
        for j, x in enumerate(random_images(2, (3, 64, 64), seed=k)):
            save_image(x, tmp_path / "train" / wnid / "images" / f"{wnid}_{j}.JPEG")
        (tmp_path / "train" / wnid / f"{wnid}_boxes.txt").write_text("x\t0\t0\t1\t1\n")
    val = random_images(3, (3, 64, 64), seed=5)
    lines = []
    for j, (x, wnid) in enumerate(zip(val, [wnids[1], wnids[0], wnids[1]], strict=True)):
        save_image(x, tmp_path / "val" / "images" / f"val_{j}.JPEG")
        lines.append(f"val_{j}.JPEG\t{wnid}\t0\t0\t63\t63")
    (tmp_path / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    save_image(val[0], tmp_path / "test" / "images" / "test_0.JPEG")  # no labels
    (tmp_path / "wnids.txt").write_text("\n".join(wnids) + "\n")

    train = imagefolder(root=tmp_path)
    assert len(train) == 4 and train.classes == wnids and train.labels.tolist() == [0, 0, 1, 1]
    for split in ("val", "test"):
        ds = imagefolder(root=tmp_path, split=split)
        assert ds.labels.tolist() == [1, 0, 1] and ds.num_classes == 2
        image, _ = ds[2]
        assert image.shape == (3, 64, 64)
        # JPEG is lossy on random noise, but the image is the one written, not another.
        error = (image.float() - torch.from_numpy(val[2]).float()).abs().mean()
        other = (image.float() - torch.from_numpy(val[0]).float()).abs().mean()
        assert error < other


def test_labelled_test_folder_is_used(tmp_path: Path) -> None:
    _imagenet_style(tmp_path)
    x = random_images(1, (3, 64, 64), seed=42)[0]
    save_image(x, tmp_path / "test" / "cat" / "t.png")
    ds = imagefolder(root=tmp_path, split="test")
    assert len(ds) == 1 and ds.labels.tolist() == [2]
    assert torch.equal(ds[0][0], torch.from_numpy(x))


def test_val_class_unknown_to_train_is_an_error(tmp_path: Path) -> None:
    _imagenet_style(tmp_path)
    save_image(random_images(1, (3, 8, 8), 0)[0], tmp_path / "val" / "zebra" / "z.png")
    with pytest.raises(DatasetError, match="zebra"):
        imagefolder(root=tmp_path, split="val")


def test_missing_folder_gives_the_layout_and_sources(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        imagefolder(root=tmp_path / "tiny", download=True)
    message = str(caught.value)
    assert str(tmp_path / "tiny" / "train") in message
    assert "<root>/train/<class>/" in message and "val_annotations.txt" in message
    assert "tiny-imagenet-200.zip" in message and "does not download" in message
    _imagenet_style(tmp_path / "only-train")
    for cls in ("bee", "cat"):
        for path in (tmp_path / "only-train" / "val" / cls).iterdir():
            path.unlink()
        (tmp_path / "only-train" / "val" / cls).rmdir()
    (tmp_path / "only-train" / "val").rmdir()
    with pytest.raises(DatasetError, match="val"):
        imagefolder(root=tmp_path / "only-train", split="test")


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    _imagenet_style(tmp_path)
    broken = tmp_path / "val" / "cat" / "val_cat.png"
    broken.write_bytes(b"\x89PNG broken")
    ds = imagefolder(root=tmp_path, split="val")  # lazy: the list loads
    with pytest.raises(DatasetError, match=r"val_cat\.png"):
        ds[1]


def test_default_root_is_tiny_imagenet_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _imagenet_style(tmp_path / "tiny-imagenet-200")
    monkeypatch.setenv("FMICL_DATA_DIR", str(tmp_path))
    assert len(imagefolder()) == 6


def test_bad_options_are_errors(tmp_path: Path) -> None:
    _imagenet_style(tmp_path)
    with pytest.raises(DatasetError, match="image_size"):
        imagefolder(root=tmp_path, image_size=0)
    with pytest.raises(DatasetError, match="'val'"):
        imagefolder(root=tmp_path, split="valid")
