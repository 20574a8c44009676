"""Writers of small data sets in the real on-disk formats that torchvision's loaders read.

- CIFAR "python version": Python 2 pickles (protocol 2, keys and strings are Python 2
  ``str``, which Python 3 reads as ``b"data"`` with ``encoding="bytes"`` and as ``"data"`` with
  ``encoding="latin1"``, as torchvision does), ``data`` a ``uint8`` array ``(n, 3072)`` of
  1024 red, then green, then blue values, each channel row-major.
- STL-10 binary: ``*_X.bin`` raw ``uint8`` images ``(n, 3, 96, 96)`` stored column-major
  (each channel's pixels ordered by column), ``*_y.bin`` labels ``1..10`` as ``uint8``.
- Image folders of PNG (or JPEG) files, written with PIL.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
STL10_FOLDER = "stl10_binary"
CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


#: The pure-Python pickler: its dispatch table can be extended (the C one's cannot).
_PurePickler: Any = pickle._Pickler


class _Py2Pickler(_PurePickler):
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), like the official CIFAR files."""

    dispatch = _PurePickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj: Any) -> bytes:
    """``obj`` pickled as Python 2 would (protocol 2, ``bytes`` as ``str``)."""
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def random_images(n: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """``n`` random ``uint8`` images of ``shape`` ``(C, H, W)``."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def cifar_batch(images: np.ndarray, labels: list[int], label_key: bytes) -> bytes:
    """One CIFAR batch file: images ``(n, 3, 32, 32)`` flattened to rows (of 3072)."""
    entry = {
        b"batch_label": b"training batch 1 of 5",
        label_key: list(labels),
        b"data": images.reshape(len(images), -1),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    if label_key == b"fine_labels":
        entry[b"coarse_labels"] = [label // 5 for label in labels]
    return py2_pickle(entry)


def write_cifar10(root: Path, per_batch: int = 2, n_test: int = 3) -> dict[str, Any]:
    """``root/cifar-10-batches-py`` with five training batches, a test batch and the meta file.

    Returns the images ``(N, 3, 32, 32)`` and labels written, per split.
    """
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True)
    train_x, train_y = [], []
    for i, name in enumerate(CIFAR10_TRAIN):
        x = random_images(per_batch, (3, 32, 32), seed=i)
        y = [(i * per_batch + j) % 10 for j in range(per_batch)]
        (folder / name).write_bytes(cifar_batch(x, y, b"labels"))
        train_x.append(x)
        train_y.extend(y)
    test_x = random_images(n_test, (3, 32, 32), seed=99)
    test_y = [(9 - j) % 10 for j in range(n_test)]
    (folder / "test_batch").write_bytes(cifar_batch(test_x, test_y, b"labels"))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"label_names": names, b"num_cases_per_batch": 10000, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return {
        "train": (np.concatenate(train_x), train_y),
        "test": (test_x, test_y),
        "classes": [n.decode() for n in names],
    }


def write_cifar100(root: Path, n_train: int = 4, n_test: int = 2) -> dict[str, Any]:
    """``root/cifar-100-python`` with ``train``, ``test`` and ``meta``."""
    folder = root / CIFAR100_FOLDER
    folder.mkdir(parents=True)
    train_x = random_images(n_train, (3, 32, 32), seed=1)
    train_y = [99 - 7 * j for j in range(n_train)]
    test_x = random_images(n_test, (3, 32, 32), seed=2)
    test_y = [3 * j for j in range(n_test)]
    (folder / "train").write_bytes(cifar_batch(train_x, train_y, b"fine_labels"))
    (folder / "test").write_bytes(cifar_batch(test_x, test_y, b"fine_labels"))
    fine = [f"class_{i:02d}".encode() for i in range(100)]
    coarse = [f"super_{i:02d}".encode() for i in range(20)]
    (folder / "meta").write_bytes(
        py2_pickle({b"fine_label_names": fine, b"coarse_label_names": coarse})
    )
    return {"train": (train_x, train_y), "test": (test_x, test_y)}


def stl_images_bytes(images: np.ndarray) -> bytes:
    """STL-10's ``*_X.bin`` bytes of images ``(n, 3, 96, 96)`` (C, H, W): column-major."""
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes()


def write_stl10(
    root: Path, n_train: int = 3, n_test: int = 2, n_unlabeled: int = 4
) -> dict[str, Any]:
    """``root/stl10_binary`` with train, test and unlabeled binaries, class names and folds."""
    folder = root / STL10_FOLDER
    folder.mkdir(parents=True)
    written: dict[str, Any] = {}
    for split, n, seed in (("train", n_train, 10), ("test", n_test, 11)):
        x = random_images(n, (3, 96, 96), seed=seed)
        y = np.array([(7 * i + seed) % 10 + 1 for i in range(n)], dtype=np.uint8)  # 1..10
        (folder / f"{split}_X.bin").write_bytes(stl_images_bytes(x))
        (folder / f"{split}_y.bin").write_bytes(y.tobytes())
        written[split] = (x, [int(v) - 1 for v in y])
    unlabeled = random_images(n_unlabeled, (3, 96, 96), seed=12)
    (folder / "unlabeled_X.bin").write_bytes(stl_images_bytes(unlabeled))
    written["unlabeled"] = unlabeled
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    folds = [" ".join(str((i + k) % n_train) for k in range(2)) for i in range(10)]
    (folder / "fold_indices.txt").write_text("\n".join(folds) + "\n")
    written["classes"] = names
    return written


def save_image(array: np.ndarray, path: Path, fmt: str | None = None) -> None:
    """Save an image ``(C, H, W)`` ``uint8`` array (C = 1 or 3) with PIL."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if array.shape[0] == 1:
        image = Image.fromarray(array[0])
    else:
        image = Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)))
    image.save(path, format=fmt)
