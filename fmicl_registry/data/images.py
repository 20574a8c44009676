"""``images``: any folder of image files, searched recursively, no labels; for pretraining.

Every file under ``root`` with an image extension (exactly ``.bmp``, ``.gif``, ``.jpeg``,
``.jpg``, ``.pgm``, ``.png``, ``.ppm``, ``.tif``, ``.tiff``, ``.webp``, in any case) is one
image, wherever it is; an animated GIF or WebP or a multi-page TIFF is its first frame. Folder
names mean nothing (no classes: labels are ``-1``, ``num_classes`` 0). The order is the sorted
relative paths, so it is the same on every machine. Hidden files and folders (``.*``) and
other files are ignored.

Two kinds of folder under ``root`` are not entered, with one warning naming them: links to
folders (links to files are read), since a link may lead outside ``root`` (``/etc``, or ``..``,
the parent that holds the runs being written) or loop, as :func:`os.walk` does not follow
them; and fmicl run folders (``spec.toml`` with ``checkpoints/`` or ``metrics.jsonl``, what
``fmicl train`` writes), so that ``data.root=.`` with ``--out runs`` under it does not train on
the plots of earlier runs. ``root`` itself is read even if it is either.

Each file is checked when the folder is scanned: PIL reads its header (no pixel decoding, so
scanning stays fast). Files that fail (empty, not an image, unsupported mode) are left out
with one warning naming them (``fmicl_registry.data.images`` logs nothing else). A file that
passes but fails to decode later (usually a truncated one) is replaced by the next readable
image and counted; the run's report lists both kinds. A folder is scanned and checked once
per process while its files are unchanged (same paths, sizes and modification times).

Images are read lazily, converted to RGB (grey, palette, CMYK, 16-bit and transparent images
as :mod:`._image_files` documents), and their central square is resized to ``image_size``, at
most 4096 (``_image_files.MAX_IMAGE_SIZE``; a larger one is refused: its images would not fit
a batch in memory).
``mean`` and ``std`` are ImageNet's: estimating them would read a sample of images on every
construction and make the normalisation depend on that sample, while for natural photographs
ImageNet's are close, and they are what torchvision's models and the usual SimCLR code use.

Splits (an unlabelled folder has no held-out part): ``pretrain`` and ``train`` are every image;
``test`` is at most ``test_size`` of them (evenly spaced in file order, deterministic) — the
images a run's label-free evaluation (alignment, uniformity, distance plots) reads, whose
uniformity costs ``O(n^2)``. To evaluate on other images, point ``data.eval_root`` at another
folder (or ``data.eval_name = "imagefolder"`` at a labelled one, for kNN and linear probes).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

from ._image_files import (
    IMAGE_EXTENSIONS,
    FolderImages,
    FoundImages,
    check_image,
    check_image_size,
    find_images,
    name_some,
)
from .base import SPLITS, DatasetError, ImageDataset, check_split, resolve_root

#: ImageNet's per-channel statistics (see the module docstring for why they are fixed).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: The most images the ``test`` split holds by default.
TEST_SIZE = 1024

#: Scans already made in this process: fingerprint of the file list -> files that failed.
_checked: dict[str, list[tuple[str, str]]] = {}
#: Folders passed over that a warning has named in this process: (root, links, run folders).
_warned: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()


def _fingerprint(root: Path, files: list[str]) -> str:
    """A digest of the paths, sizes and modification times of ``files``."""
    digest = hashlib.sha256(str(root.resolve()).encode())
    for name in files:
        try:
            info = os.stat(root / name)
            digest.update(f"{name}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{name}\0missing\n".encode())
    return digest.hexdigest()


def _passed_over(found: FoundImages) -> str:
    """What :func:`find_images` did not enter, for messages (empty when nothing)."""
    parts = []
    if found.linked_folders:
        parts.append(f"links to folders, not followed: {name_some(found.linked_folders)}")
    if found.run_folders:
        parts.append(f"fmicl run folders, not read: {name_some(found.run_folders)}")
    return "; ".join(parts)


def _warn_passed_over(root: Path, found: FoundImages) -> None:
    """One warning per process naming the links to folders and run folders under ``root``
    that were not entered (not repeated for the same folder)."""
    from .. import distributed

    key = (str(root.resolve()), tuple(found.linked_folders), tuple(found.run_folders))
    if not (found.linked_folders or found.run_folders) or key in _warned:
        return
    if len(_warned) >= 64:
        _warned.clear()
    _warned.add(key)
    if distributed.rank() != 0:  # one warning, not one per process
        return
    parts = []
    if found.linked_folders:
        parts.append(
            f"not following {len(found.linked_folders)} link(s) to folders "
            f"({name_some(found.linked_folders)}): a link may lead outside the folder or loop; "
            "move or copy a folder into it to read its images"
        )
    if found.run_folders:
        parts.append(
            f"not reading {len(found.run_folders)} fmicl run folder(s) "
            f"({name_some(found.run_folders)}): they hold what fmicl train writes (checkpoints, "
            "plots), not training data; give --out a folder outside data.root"
        )
    warnings.warn(f"data set 'images' under {root}: " + "; ".join(parts), stacklevel=4)


def scan(root: Path, *, check: bool = True) -> tuple[list[str], list[tuple[str, str]], FoundImages]:
    """``(readable, skipped, found)``: the image files under ``root`` (relative, sorted) whose
    header reads, ``(file, reason)`` of those that do not, and what :func:`find_images` found
    (with the links to folders and run folders passed over). Warns once per new scan that
    skipped files or passed folders over (in process 0 of a multi-process run); an unchanged
    folder is not checked again in this process."""
    from .. import distributed

    found = find_images(root)
    _warn_passed_over(root, found)
    files = found.files
    if not check:
        return files, [], found
    key = _fingerprint(root, files)
    if key in _checked:
        skipped = _checked[key]
    else:
        skipped = [(f, why) for f in files if (why := check_image(root / f)) is not None]
        if len(_checked) >= 16:
            _checked.pop(next(iter(_checked)))
        _checked[key] = skipped
        if skipped and distributed.rank() == 0:  # one warning, not one per process
            shown = "; ".join(f"{f} ({why})" for f, why in skipped[:3])
            more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            warnings.warn(
                f"data set 'images': skipped {len(skipped)} of {len(files)} image files under "
                f"{root} that cannot be read: {shown}{more}",
                stacklevel=3,
            )
    bad = {f for f, _ in skipped}
    return [f for f in files if f not in bad], skipped, found


def images(
    root: str | os.PathLike[str] | None = None,
    split: str = "pretrain",
    download: bool = False,
    image_size: int = 32,
    test_size: int = TEST_SIZE,
    check_files: bool = True,
) -> ImageDataset:
    """Every image file under ``root`` (recursively), unlabelled, ``uint8``
    ``(3, image_size, image_size)``.

    ``root`` is required (a folder of your images; there is no default folder; links to
    folders and fmicl run folders under it are not read, with a warning); ``image_size`` is
    at most 4096; ``split`` is ``"pretrain"`` or ``"train"`` (every image) or ``"test"`` (at
    most ``test_size`` of them, evenly spaced); ``download`` cannot fetch anything;
    ``check_files`` reads each file's header while scanning (skipping unreadable files with
    one warning). ``dataset.files`` lists the images' paths relative to ``root``.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> from fmicl_registry.data import images
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "holiday" / "day1").mkdir(parents=True)
        >>> Image.new("RGB", (40, 30), "red").save(root / "holiday" / "day1" / "a.jpg")
        >>> Image.new("L", (8, 8), 128).save(root / "b.png")
        >>> ds = images(root, image_size=16)
        >>> ds.files, ds.labels.tolist(), ds.num_classes, ds[0][0].shape
        (['b.png', 'holiday/day1/a.jpg'], [-1, -1], 0, torch.Size([3, 16, 16]))
    """
    split = check_split("images", split, SPLITS)
    check_image_size("images", image_size)
    if not isinstance(test_size, int) or isinstance(test_size, bool) or test_size < 1:
        raise DatasetError(
            f"data set 'images': test_size must be a positive int, got {test_size!r}"
        )
    how = (
        "point it at a folder that holds image files (.png, .jpg, ...; in any subfolders): "
        "--set data.root=<folder> on the command line, root=<folder> in Python"
    )
    if root is None:
        raise DatasetError(f"data set 'images' needs a folder of images; {how}")
    folder = resolve_root(root)
    if not folder.is_dir():
        raise DatasetError(f"data set 'images': the folder {folder} does not exist; {how}")
    files, skipped, found = scan(folder, check=check_files)
    if not files:
        what = (
            f"{len(skipped)} image files, none readable ({name_some([f for f, _ in skipped])})"
            if skipped
            else "no image files"
        )
        passed = _passed_over(found)
        raise DatasetError(
            f"data set 'images': found {what} under {folder} (searched recursively for "
            f"{', '.join(IMAGE_EXTENSIONS)}; hidden files and folders are ignored"
            + (f"; {passed}" if passed else "")
            + f"); {how}"
        )
    if split == "test" and len(files) > test_size:
        step = len(files) / test_size
        files = [files[int(i * step)] for i in range(test_size)]
    source = FolderImages(folder, files, image_size, name="images", replace_unreadable=True)
    return ImageDataset(
        "images",
        source,
        [-1] * len(files),
        num_classes=0,
        mean=MEAN,
        std=STD,
        input_shape=(3, image_size, image_size),
        default_recipe="simclr",
        split=split,
        root=folder,
        files=files,
        skipped_files=[f for f, _ in skipped],
    )
