"""``images``: any folder of image files, searched recursively, no labels; for pretraining.

Every file under ``root`` with an image extension (``.png``, ``.jpg``, ``.jpeg``, ``.webp``,
``.bmp``, ``.tif``, ...) is one image, wherever it is; folder names mean nothing (no classes:
labels are ``-1``, ``num_classes`` 0). The order is the sorted relative paths, so it is the
same on every machine. Hidden files and folders (``.*``) and other files are ignored; links
are followed, and a link loop is read once.

Each file is checked when the folder is scanned: PIL reads its header (no pixel decoding, so
scanning stays fast). Files that fail (empty, not an image, unsupported mode) are left out
with one warning naming them (``fmicl_registry.data.images`` logs nothing else). A file that
passes but fails to decode later (usually a truncated one) is replaced by the next readable
image and counted; the run's report lists both kinds. A folder is scanned and checked once
per process while its files are unchanged (same paths, sizes and modification times).

Images are read lazily, converted to RGB (grey, palette, CMYK, 16-bit and transparent images
as :mod:`._image_files` documents), and their central square is resized to ``image_size``.
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

from ._image_files import FolderImages, check_image, find_images, name_some
from .base import SPLITS, DatasetError, ImageDataset, check_split, resolve_root

#: ImageNet's per-channel statistics (see the module docstring for why they are fixed).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: The most images the ``test`` split holds by default.
TEST_SIZE = 1024

#: Scans already made in this process: fingerprint of the file list -> files that failed.
_checked: dict[str, list[tuple[str, str]]] = {}


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


def scan(root: Path, *, check: bool = True) -> tuple[list[str], list[tuple[str, str]]]:
    """``(readable, skipped)``: the image files under ``root`` (relative, sorted) whose header
    reads, and ``(file, reason)`` of those that do not. Warns once per new scan that skipped
    files (in process 0 of a multi-process run); an unchanged folder is not checked again in
    this process."""
    from .. import distributed

    files = find_images(root)
    if not check:
        return files, []
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
    return [f for f in files if f not in bad], skipped


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

    ``root`` is required (a folder of your images; there is no default folder);
    ``split`` is ``"pretrain"`` or ``"train"`` (every image) or ``"test"`` (at most
    ``test_size`` of them, evenly spaced); ``download`` cannot fetch anything;
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
    for key, value in (("image_size", image_size), ("test_size", test_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DatasetError(f"data set 'images': {key} must be a positive int, got {value!r}")
    how = (
        "point it at a folder that holds image files (.png, .jpg, ...; in any subfolders): "
        "--set data.root=<folder> on the command line, root=<folder> in Python"
    )
    if root is None:
        raise DatasetError(f"data set 'images' needs a folder of images; {how}")
    folder = resolve_root(root)
    if not folder.is_dir():
        raise DatasetError(f"data set 'images': the folder {folder} does not exist; {how}")
    files, skipped = scan(folder, check=check_files)
    if not files:
        what = (
            f"{len(skipped)} image files, none readable ({name_some([f for f, _ in skipped])})"
            if skipped
            else "no image files"
        )
        raise DatasetError(
            f"data set 'images': found {what} under {folder} (searched recursively for "
            f"{', '.join(_extensions())}; hidden files and folders are ignored); {how}"
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


def _extensions() -> list[str]:
    from ._image_files import image_extensions

    return sorted({e.lower() for e in image_extensions()})
