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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = images(tmp_path, image_size=16)
    # Every file here is readable; the one warning names the link, which is not followed.
    assert [str(w.message) for w in caught] == [
        f"data set 'images' under {tmp_path}: not following 1 link(s) to folders (modes/loop): "
        "a link may lead outside the folder or loop; move or copy a folder into it to read its "
        "images"
    ]
    assert ds.files == EXPECTED and ds.root == tmp_path
    assert len(ds) == 8 and not ds.in_memory and ds.unreadable_files() == []
    assert ds.labels.tolist() == [-1] * 8 and ds.num_classes == 0 and ds.classes is None
    assert ds.input_shape == (3, 16, 16) and ds.split == "pretrain"
    for index in range(len(ds)):
        image, label = ds[index]
        assert image.dtype == torch.uint8 and image.shape == (3, 16, 16) and label == -1


@pytest.mark.filterwarnings("ignore:data set 'images' under")  # the link modes/loop
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


def _passed_over_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "data set 'images' under" in str(w.message)]


def test_links_to_folders_are_not_followed_links_to_files_are(tmp_path: Path) -> None:
    """``zoo/loop -> ..`` would reach the parent (and the runs written there), ``zoo/outside``
    a folder elsewhere (``/etc``): neither is read, one warning names both; a link to a file
    is read."""
    zoo, elsewhere = tmp_path / "zoo", tmp_path / "elsewhere"
    _png(zoo / "a.png", _noise(8, 8, 0))
    _png(zoo / "sub" / "b.png", _noise(8, 8, 1))
    _png(tmp_path / "runs" / "digits" / "loss.png", _noise(8, 8, 2))  # in the parent
    _png(elsewhere / "secret.png", _noise(8, 8, 3))
    os.symlink("..", zoo / "loop")
    os.symlink(elsewhere, zoo / "outside")
    os.symlink(zoo / "sub", zoo / "alias")  # inside root, but a link too: not followed
    os.symlink(elsewhere / "secret.png", zoo / "file_link.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = images(zoo, image_size=4)
        again = images(zoo, split="test", image_size=4)  # the same folder: no new warning
    assert ds.files == ["a.png", "file_link.png", "sub/b.png"] == again.files
    (message,) = _passed_over_warnings(caught)
    assert "not following 3 link(s) to folders (alias, loop, outside)" in message
    assert "move or copy a folder into it" in message
    # Nothing but links to folders: the error says they were not followed.
    (tmp_path / "only_links").mkdir()
    os.symlink(zoo, tmp_path / "only_links" / "zoo")
    with pytest.warns(UserWarning), pytest.raises(DatasetError) as error:
        images(tmp_path / "only_links")
    assert "links to folders, not followed: zoo" in str(error.value)
    # The root may itself be a link: it was named explicitly.
    os.symlink(zoo / "sub", tmp_path / "root_link")
    assert images(tmp_path / "root_link", image_size=4).files == ["b.png"]


def _run_folder(path: Path) -> None:
    """What ``fmicl train`` leaves in a run folder, with plots."""
    path.mkdir(parents=True)
    (path / "spec.toml").write_text("[run]\nname = 'x'\n")
    (path / "checkpoints").mkdir()
    _png(path / "loss.png", _noise(8, 8, 5))
    _png(path / "nested" / "distances.png", _noise(8, 8, 6))


def test_run_folders_under_root_are_not_read_with_one_warning(tmp_path: Path) -> None:
    _png(tmp_path / "photos" / "a.png", _noise(8, 8, 0))
    _run_folder(tmp_path / "runs" / "digits")
    _run_folder(tmp_path / "runs" / "digits-2")
    # A spec.toml alone does not make a run folder: these images are read.
    _png(tmp_path / "notes" / "b.png", _noise(8, 8, 1))
    (tmp_path / "notes" / "spec.toml").write_text("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = images(tmp_path, image_size=4)
        images(tmp_path, split="test", image_size=4)
    assert ds.files == ["notes/b.png", "photos/a.png"]
    (message,) = _passed_over_warnings(caught)
    assert "not reading 2 fmicl run folder(s) (runs/digits, runs/digits-2)" in message
    assert "give --out a folder outside data.root" in message
    # The root itself is read even if it is a run folder (named explicitly).
    assert images(tmp_path / "runs" / "digits", image_size=4).files == [
        "loss.png",
        "nested/distances.png",
    ]


def test_a_second_run_with_root_dot_does_not_read_the_first_runs_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fmicl train --set data.root=. --out runs`` twice: the second sees the same images."""
    from click.testing import CliRunner

    from fmicl_registry.cli import cli

    for i in range(12):
        _png(tmp_path / "photos" / f"{i:02d}.png", _noise(10, 12, i))
    monkeypatch.chdir(tmp_path)
    settings = [
        "data.name=images",
        "data.root=.",
        "data.image_size=8",
        "train.epochs=1",
        "train.batch_size=6",
        "train.warmup_epochs=0.0",
        "train.progress=false",
        "backbone.width=4",
        "backbone.output_dim=8",
        "architecture.out_dim=8",
        "run.name=first",
    ]
    args = [a for s in settings for a in ("--set", s)]
    first = CliRunner().invoke(cli, ["train", *args, "--out", "runs"])
    assert first.exit_code == 0, first.output
    assert list((tmp_path / "runs" / "first").glob("*.png"))  # plots the next run could read
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = CliRunner().invoke(cli, ["train", *args, "--out", "runs", "--dry-run"])
    assert second.exit_code == 0, second.output
    assert "# data: images, 12 items" in second.output
    (message,) = _passed_over_warnings(caught)
    assert "fmicl run folder(s) (runs/first)" in message


def test_image_size_above_the_limit_is_refused_saying_why(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fmicl_registry.cli import cli
    from fmicl_registry.data._image_files import MAX_IMAGE_SIZE

    _png(tmp_path / "a.png", _noise(8, 8, 0))
    assert MAX_IMAGE_SIZE == 4096 and images(tmp_path, image_size=4096).input_shape[1] == 4096
    with pytest.raises(DatasetError) as caught:
        images(tmp_path, image_size=4097)
    message = str(caught.value)
    assert "image_size 4097 is too large (at most 4096)" in message
    assert "MiB of float32 pixels each" in message and "--set data.image_size=224" in message
    with pytest.raises(DatasetError, match="image_size must be a positive int"):
        images(tmp_path, image_size=True)
    for cls in ("cat", "dog"):  # imagefolder shares the limit
        _png(tmp_path / "labelled" / "train" / cls / "x.png", _noise(8, 8, 1))
    with pytest.raises(DatasetError, match=r"'imagefolder': image_size 5000 is too large"):
        imagefolder(root=tmp_path / "labelled", image_size=5000)
    args = ["--set", "data.name=images", "--set", f"data.root={tmp_path}"]
    result = CliRunner().invoke(
        cli, ["train", *args, "--set", "data.image_size=100000", "--dry-run"]
    )
    assert result.exit_code == 2, result.output
    assert "image_size 100000 is too large (at most 4096)" in result.output
    assert "Traceback" not in result.output


def test_gif_files_are_read_as_their_first_frame(tmp_path: Path) -> None:
    red, blue = Image.new("RGB", (10, 10), (255, 0, 0)), Image.new("RGB", (10, 10), (0, 0, 255))
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[blue], duration=100)
    clear = Image.new("P", (6, 6), 0)
    clear.putpalette([0, 0, 0, 0, 200, 0])
    clear.save(tmp_path / "CLEAR.GIF", transparency=0)  # upper case, transparent
    Image.new("L", (6, 6), 90).save(tmp_path / "grey.gif")
    ds = images(tmp_path, image_size=4)
    assert ds.files == ["CLEAR.GIF", "anim.gif", "grey.gif"] and ds.unreadable_files() == []
    assert set(ds[0][0].unique().tolist()) == {255}  # transparent over white
    assert ds[1][0][:, 0, 0].tolist() == [255, 0, 0]  # the first frame, not the blue one
    assert set(ds[2][0].unique().tolist()) == {90}


def test_readme_and_docstring_list_exactly_the_extensions_read() -> None:
    import importlib

    from fmicl_registry.data._image_files import IMAGE_EXTENSIONS, is_image_name

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Your own images", 1)[1].split("\n### ", 1)[0]
    listed = re.findall(r"`(\.[a-z]+)`", section)
    assert tuple(listed) == IMAGE_EXTENSIONS
    doc = importlib.import_module("fmicl_registry.data.images").__doc__ or ""
    assert tuple(re.findall(r"``(\.[a-z]+)``", doc.split("\n\n")[1])) == IMAGE_EXTENSIONS
    assert all(is_image_name(f"x{e.upper()}") for e in IMAGE_EXTENSIONS)
    assert not any(is_image_name(f"x{e}") for e in (".txt", ".svg", ".heic", ".pdf"))
