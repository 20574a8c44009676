"""``stl10``: read with torchvision's ``STL10`` loader.

The files are the official binary archive, extracted under ``root``::

    root/stl10_binary/train_X.bin, train_y.bin        5000 labelled images
    root/stl10_binary/test_X.bin, test_y.bin          8000 labelled images
    root/stl10_binary/unlabeled_X.bin                 100000 unlabeled images
    root/stl10_binary/class_names.txt, fold_indices.txt

Images are ``uint8`` ``(3, 96, 96)`` stored column-major, labels ``1..10`` (read as
``0..9``). The ``pretrain`` split is ``train`` + ``unlabeled`` (105000 images; the unlabeled
ones have label ``-1``), as in SimCLR's STL-10 runs. Only the files a split reads must be
present (md5 sums are not checked, unlike torchvision; ``download=True`` still downloads and
verifies the official 2.5 GB archive).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import data_folder, ensure_present, unreadable
from .base import SPLITS, DatasetError, ImageDataset, check_split

#: The splits of ``stl10``: the common ones and ``unlabeled`` alone.
STL10_SPLITS = (*SPLITS, "unlabeled")
_TORCHVISION_SPLIT = {
    "train": "train",
    "test": "test",
    "pretrain": "train+unlabeled",
    "unlabeled": "unlabeled",
}
_FILES = {
    "train": ["train_X.bin", "train_y.bin"],
    "test": ["test_X.bin", "test_y.bin"],
    "pretrain": ["train_X.bin", "train_y.bin", "unlabeled_X.bin"],
    "unlabeled": ["unlabeled_X.bin"],
}
_IMAGE_BYTES = 3 * 96 * 96
MEAN = (0.4467, 0.4398, 0.4066)
STD = (0.2603, 0.2566, 0.2713)


@functools.cache
def _loader() -> Any:
    """torchvision's ``STL10``, checking the presence of the split's files, not md5 sums."""
    from torchvision.datasets import STL10

    class PresentSTL10(STL10):
        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            return all((folder / f).is_file() for f in _FILES[_split_of(self.split)])

    return PresentSTL10


def _split_of(torchvision_split: str) -> str:
    return {v: k for k, v in _TORCHVISION_SPLIT.items()}[torchvision_split]


def _diagnose(folder: Path, names: list[str]) -> DatasetError | None:
    """The first binary file of ``names`` whose size or labels are not STL-10's."""
    counts: dict[str, int] = {}
    for file in names:
        path = folder / file
        size = path.stat().st_size
        if file.endswith("_X.bin"):
            if size == 0 or size % _IMAGE_BYTES:
                return unreadable(
                    "stl10",
                    path,
                    f"{size} bytes is not a whole number of 3x96x96 images ({_IMAGE_BYTES} bytes)",
                    folder,
                )
            counts[file[: -len("_X.bin")]] = size // _IMAGE_BYTES
        else:
            labels = np.fromfile(path, dtype=np.uint8)
            if labels.size and (labels.min() < 1 or labels.max() > 10):
                return unreadable("stl10", path, "labels must lie in 1..10", folder)
            images = counts.get(file[: -len("_y.bin")])
            if images is not None and images != labels.size:
                return unreadable(
                    "stl10", path, f"{labels.size} labels for {images} images", folder
                )
    return None


def stl10(
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    download: bool = False,
    folds: int | None = None,
) -> ImageDataset:
    """STL-10: ``uint8`` images ``(3, 96, 96)`` in 10 classes, and 100000 unlabeled images.

    ``root`` holds ``stl10_binary`` (default: :func:`default_root`); ``split`` is
    ``"train"`` (5000), ``"test"`` (8000), ``"pretrain"`` (train + unlabeled, 105000, the
    unlabeled with label ``-1``) or ``"unlabeled"``; ``folds`` (0-9) keeps one of the ten
    predefined 1000-image training folds (reads ``fold_indices.txt``). ``download=True``
    fetches http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz when files are missing.

    Example:
        >>> import tempfile
        >>> from fmicl_registry.data import DatasetError, stl10
        >>> try:
        ...     stl10(root=tempfile.mkdtemp(), split="pretrain")
        ... except DatasetError as err:
        ...     print("unlabeled_X.bin" in str(err), "download=True" in str(err))
        True True
    """
    split = check_split("stl10", split, STL10_SPLITS)
    loader = _loader()
    root_path, folder = data_folder(root, loader.base_folder)
    needed = list(_FILES[split])
    if folds is not None:
        if not isinstance(folds, int) or not 0 <= folds <= 9:
            raise DatasetError(f"data set 'stl10': folds must be an int in 0..9, got {folds!r}")
        if split in ("train", "pretrain"):
            needed.append(loader.folds_list_file)
    ensure_present(
        "stl10",
        root_path,
        folder,
        needed,
        download=download,
        url=loader.url,
        filename=loader.filename,
        md5=loader.tgz_md5,
        size="2.5 GB",
    )
    try:
        raw = loader(str(root_path), split=_TORCHVISION_SPLIT[split], folds=folds, download=False)
        data = np.asarray(raw.data)
        labels = torch.as_tensor(np.asarray(raw.labels).astype(np.int64))
        if len(data) != len(labels):
            raise ValueError(f"{len(data)} images but {len(labels)} labels")
    except Exception as err:
        found = _diagnose(folder, [f for f in needed if f.endswith(".bin")])
        if found is not None:
            raise found from err
        raise DatasetError(
            f"data set 'stl10': torchvision could not read {folder}: {type(err).__name__}: {err}"
        ) from err
    bad = (labels < -1) | (labels >= 10)
    if bool(bad.any()):
        label_file = next(f for f in needed if f.endswith("_y.bin"))
        raise unreadable("stl10", folder / label_file, "labels must lie in 1..10", folder)
    classes = getattr(raw, "classes", None)
    return ImageDataset(
        "stl10",
        torch.from_numpy(np.ascontiguousarray(data)),  # (N, 3, 96, 96): torchvision transposed
        labels,
        num_classes=10,
        mean=MEAN,
        std=STD,
        default_recipe="simclr",
        split=split,
        classes=None if classes is None else [str(c) for c in classes],
        root=root_path,
    )
