"""``cifar10`` and ``cifar100``: read with torchvision's ``CIFAR10``/``CIFAR100`` loaders.

The files are the official "python version" archives, extracted under ``root``::

    root/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta
    root/cifar-100-python/train, test, meta

torchvision checks the md5 sum of every file before reading; here the files only need to be
*present* (so a copy, a subset or a test fixture in the same format loads too), and a file
that cannot be read is named in the error. ``download=True`` still downloads and verifies
the official archive with torchvision. The whole split is converted once to a ``uint8``
tensor ``(N, 3, 32, 32)``, so indexing is cheap. The pickled files are read with
``pickle``, as torchvision does: load only files from a source you trust.
"""

from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import data_folder, ensure_present, unreadable
from .base import DatasetError, ImageDataset, check_split


@dataclass(frozen=True)
class _Cifar:
    name: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size: str
    label_key: str


_CIFAR = {
    "cifar10": _Cifar(
        "cifar10", 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "163 MB", "labels"
    ),
    "cifar100": _Cifar(
        "cifar100",
        100,
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        "161 MB",
        "fine_labels",
    ),
}


@functools.cache
def _loader(name: str) -> Any:
    """torchvision's loader class for ``name``, checking presence instead of md5 sums."""
    from torchvision.datasets import CIFAR10, CIFAR100

    base = CIFAR10 if name == "cifar10" else CIFAR100

    class PresentCIFAR(base):  # type: ignore[misc, valid-type]
        """The split's files (and the meta file) need only be present."""

        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            files = self.train_list if self.train else self.test_list
            names = [f for f, _ in files] + [self.meta["filename"]]
            return all((folder / f).is_file() for f in names)

        def _load_meta(self) -> None:
            path = Path(self.root) / self.base_folder / self.meta["filename"]
            with open(path, "rb") as infile:
                data = pickle.load(infile, encoding="latin1")
            self.classes = data[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    PresentCIFAR.__name__ = PresentCIFAR.__qualname__ = f"Present{base.__name__}"
    return PresentCIFAR


def _diagnose(spec: _Cifar, loader: Any, folder: Path, names: list[str]) -> DatasetError | None:
    """The first file of ``names`` that is not a CIFAR batch (or meta file) torchvision reads."""
    meta = loader.meta
    for file in names:
        path = folder / file
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
        except Exception as err:
            return unreadable(
                spec.name, path, f"not a pickle ({type(err).__name__}: {err})", folder
            )
        if not isinstance(entry, dict):
            return unreadable(
                spec.name, path, f"holds a {type(entry).__name__}, not a dict", folder
            )
        if file == meta["filename"]:
            if meta["key"] not in entry:
                return unreadable(spec.name, path, f"has no key {meta['key']!r}", folder)
            continue
        if "data" not in entry or spec.label_key not in entry:
            keys = ", ".join(repr(k) for k in list(entry)[:6])
            return unreadable(
                spec.name,
                path,
                f"needs the keys 'data' and {spec.label_key!r} (Python 2 str, as in the official "
                f"files), found {keys or 'none'}",
                folder,
            )
        data = entry["data"]
        labels = entry[spec.label_key]
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            got = getattr(data, "shape", type(data).__name__)
            return unreadable(
                spec.name, path, f"key 'data' must be an array (n, 3072), got {got}", folder
            )
        if len(labels) != len(data):
            return unreadable(
                spec.name, path, f"needs {spec.label_key!r} with one label per image", folder
            )
    return None


def _load(
    spec: _Cifar, root: str | os.PathLike[str] | None, split: str, download: bool
) -> ImageDataset:
    split = check_split(spec.name, split)
    loader = _loader(spec.name)
    root_path, folder = data_folder(root, loader.base_folder)
    train = split != "test"
    files = [f for f, _ in (loader.train_list if train else loader.test_list)]
    needed = [*files, loader.meta["filename"]]
    ensure_present(
        spec.name,
        root_path,
        folder,
        needed,
        download=download,
        url=loader.url,
        filename=loader.filename,
        md5=loader.tgz_md5,
        size=spec.size,
    )
    try:
        raw = loader(str(root_path), train=train, download=False)
    except Exception as err:
        found = _diagnose(spec, loader, folder, needed)
        if found is not None:
            raise found from err
        raise DatasetError(
            f"data set {spec.name!r}: torchvision could not read {folder}: "
            f"{type(err).__name__}: {err}"
        ) from err
    data = np.asarray(raw.data)  # (N, 32, 32, 3), a view of the (N, 3, 32, 32) batches
    if data.dtype != np.uint8:
        raise unreadable(
            spec.name, folder / files[0], f"pixels are {data.dtype}, not uint8", folder
        )
    images = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    labels = torch.as_tensor(np.asarray(raw.targets, dtype=np.int64))
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= spec.num_classes):
        raise unreadable(
            spec.name,
            folder / files[0],
            f"labels must lie in 0..{spec.num_classes - 1}, found {int(labels.min())}.."
            f"{int(labels.max())}",
            folder,
        )
    return ImageDataset(
        spec.name,
        images,
        labels,
        num_classes=spec.num_classes,
        mean=spec.mean,
        std=spec.std,
        default_recipe="simclr",
        split=split,
        classes=[c.decode() if isinstance(c, bytes) else str(c) for c in raw.classes],
        root=root_path,
    )


def cifar10(
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    download: bool = False,
) -> ImageDataset:
    """CIFAR-10: 50000 training and 10000 test images ``(3, 32, 32)`` in 10 classes.

    ``root`` holds ``cifar-10-batches-py`` (default: :func:`default_root`); ``split`` is
    ``"train"``, ``"test"`` or ``"pretrain"`` (= ``"train"``); ``download=True`` fetches
    https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz when the files are missing.

    Example:
        >>> import tempfile
        >>> from fmicl_registry.data import DatasetError, cifar10
        >>> try:
        ...     cifar10(root=tempfile.mkdtemp())
        ... except DatasetError as err:
        ...     print("download=True" in str(err), "cifar-10-batches-py" in str(err))
        True True
    """
    return _load(_CIFAR["cifar10"], root, split, download)


def cifar100(
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    download: bool = False,
) -> ImageDataset:
    """CIFAR-100: 50000 training and 10000 test images ``(3, 32, 32)``, 100 (fine) classes.

    ``root`` holds ``cifar-100-python`` (default: :func:`default_root`); ``split`` is
    ``"train"``, ``"test"`` or ``"pretrain"`` (= ``"train"``); ``download=True`` fetches
    https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz when the files are missing.

    Example:
        >>> import tempfile
        >>> from fmicl_registry.data import DatasetError, cifar100
        >>> try:
        ...     cifar100(root=tempfile.mkdtemp())
        ... except DatasetError as err:
        ...     print("cifar-100-python.tar.gz" in str(err))
        True
    """
    return _load(_CIFAR["cifar100"], root, split, download)
