"""What every data set factory returns (:class:`ImageDataset`), its error, and where data lives.

Every factory of the ``datasets`` kind has the signature
``factory(root=None, split="train", download=False, **options)`` and returns an
:class:`ImageDataset` of ``(image, label)`` pairs: ``image`` a ``uint8`` tensor ``(C, H, W)``,
``label`` an ``int`` (``-1`` for unlabeled images).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch.utils.data import Dataset

from ..errors import DatasetError

#: The environment variable that overrides the default data folder.
DATA_DIR_ENV = "FMICL_DATA_DIR"
#: The splits every data set has: ``pretrain`` is what self-supervised pretraining reads.
SPLITS = ("train", "test", "pretrain")
#: How users of the command line turn downloading on.
DOWNLOAD_HINT = "pass download=True (command line: --set data.download=true)"
#: How users point a data set at another folder.
ROOT_HINT = (
    "pass root=<folder> (command line: --set data.root=<folder>) or set the environment "
    f"variable {DATA_DIR_ENV}"
)


def default_root() -> Path:
    """The folder data sets live in when ``root`` is not given.

    ``$FMICL_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/fmicl-registry/data``, else
    ``~/.cache/fmicl-registry/data`` (read at call time, so changing an environment variable
    takes effect at once); each data set uses a subfolder of it, named as torchvision names
    them (``cifar-10-batches-py``, ``stl10_binary``, ...).

    Example:
        >>> import os
        >>> from fmicl_registry.data import default_root
        >>> saved = os.environ.pop("FMICL_DATA_DIR", None)
        >>> default_root().parts[-2:]
        ('fmicl-registry', 'data')
        >>> xdg = os.environ.get("XDG_CACHE_HOME")
        >>> os.environ["XDG_CACHE_HOME"] = "/var/cache/me"
        >>> str(default_root())
        '/var/cache/me/fmicl-registry/data'
        >>> _ = os.environ.pop("XDG_CACHE_HOME") if xdg is None else os.environ.update(
        ...     XDG_CACHE_HOME=xdg)
        >>> os.environ["FMICL_DATA_DIR"] = "/data"
        >>> str(default_root())
        '/data'
        >>> _ = os.environ.pop("FMICL_DATA_DIR")
        >>> if saved is not None:
        ...     os.environ["FMICL_DATA_DIR"] = saved
    """
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    from .._paths import user_cache_dir

    return user_cache_dir() / "data"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` as a :class:`~pathlib.Path` (``~`` expanded), or :func:`default_root`."""
    return default_root() if root is None else Path(root).expanduser()


def check_split(name: str, split: str, splits: Sequence[str] = SPLITS) -> str:
    """``split`` if ``name`` has it, else a :class:`DatasetError` listing the valid ones.

    Example:
        >>> from fmicl_registry.data.base import check_split
        >>> check_split("digits", "test")
        'test'
    """
    if split not in splits:
        valid = ", ".join(repr(s) for s in splits)
        raise DatasetError(
            f"data set {name!r} has no split {split!r}; the splits are: {valid} "
            "('pretrain' is the split self-supervised pretraining reads)"
        )
    return split


class ImageSource(Protocol):
    """Images read on demand: ``len()`` and ``source[i]`` -> ``uint8`` tensor ``(C, H, W)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> torch.Tensor: ...


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """A labelled set of images, the one type every data set factory returns.

    Items are ``(image, label)``: ``image`` a ``uint8`` tensor ``(C, H, W)``, ``label`` an
    ``int`` (``-1`` for an unlabeled image). ``images`` is either a ``uint8`` tensor
    ``(N, C, H, W)`` held in memory (fast to index) or an :class:`ImageSource` that reads each
    image when asked (large folders of image files).

    Attributes:
        name: the registered name of the data set (``"cifar10"``, ...).
        split: the split it holds (``"train"``, ``"test"`` or ``"pretrain"``).
        num_classes: the number of classes (labels are ``0 .. num_classes - 1`` or ``-1``).
        input_shape: ``(C, H, W)`` of every image.
        mean, std: per-channel statistics in ``[0, 1]`` units, for ``Normalize``.
        default_recipe: the augmentation recipe that suits it (``get_augmentation``).
        classes: the class names, when the data set has them.
        labels: the labels as an ``int64`` tensor ``(N,)``.
        root: the folder the data was read from, when there is one.
        files: for a data set read from image files, each image's path relative to ``root``
            (``/`` separators), in item order; None for data held in memory.
        skipped_files: image files under ``root`` left out because they could not be read
            (see :meth:`unreadable_files`).

    Example:
        >>> import torch
        >>> from fmicl_registry.data import ImageDataset
        >>> ds = ImageDataset(
        ...     "toy", torch.zeros(4, 1, 2, 2, dtype=torch.uint8), [0, 1, 0, 1], num_classes=2,
        ...     mean=(0.5,), std=(0.25,),
        ... )
        >>> image, label = ds[1]
        >>> image.shape, image.dtype, label, ds.input_shape
        (torch.Size([1, 2, 2]), torch.uint8, 1, (1, 2, 2))
    """

    def __init__(
        self,
        name: str,
        images: torch.Tensor | ImageSource,
        labels: Sequence[int] | torch.Tensor,
        *,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        input_shape: tuple[int, int, int] | None = None,
        default_recipe: str = "simclr",
        split: str = "train",
        classes: Sequence[str] | None = None,
        root: Path | None = None,
        files: Sequence[str] | None = None,
        skipped_files: Sequence[str] = (),
    ) -> None:
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if len(images) != len(labels):
            raise DatasetError(f"data set {name!r}: {len(images)} images but {len(labels)} labels")
        if files is not None and len(files) != len(labels):
            raise DatasetError(f"data set {name!r}: {len(labels)} images but {len(files)} files")
        if isinstance(images, torch.Tensor):
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise DatasetError(
                    f"data set {name!r}: images must be a uint8 tensor (N, C, H, W), got "
                    f"{images.dtype} of shape {tuple(images.shape)}"
                )
            shape = (int(images.shape[1]), int(images.shape[2]), int(images.shape[3]))
            if input_shape is not None and tuple(input_shape) != shape:
                raise DatasetError(
                    f"data set {name!r}: images have shape {shape}, not {tuple(input_shape)}"
                )
            input_shape = shape
        if input_shape is None:
            raise DatasetError(f"data set {name!r}: input_shape is needed for images on disk")
        if len(mean) != input_shape[0] or len(std) != input_shape[0]:
            raise DatasetError(
                f"data set {name!r}: mean and std need one value per channel "
                f"({input_shape[0]}), got {len(mean)} and {len(std)}"
            )
        self.name = name
        self.split = split
        self.images = images
        self.labels = labels
        self._label_list: list[int] = labels.tolist()
        self.num_classes = int(num_classes)
        self.input_shape: tuple[int, int, int] = (
            int(input_shape[0]),
            int(input_shape[1]),
            int(input_shape[2]),
        )
        self.mean: tuple[float, ...] = tuple(float(m) for m in mean)
        self.std: tuple[float, ...] = tuple(float(s) for s in std)
        self.default_recipe = default_recipe
        self.classes: list[str] | None = None if classes is None else list(classes)
        self.root = root
        self.files: list[str] | None = None if files is None else list(files)
        self.skipped_files: list[str] = list(skipped_files)

    def __len__(self) -> int:
        return len(self._label_list)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self._label_list[index]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        for index in range(len(self)):
            yield self[index]

    @property
    def in_memory(self) -> bool:
        """Whether every image is held in one tensor (else each is read when indexed)."""
        return isinstance(self.images, torch.Tensor)

    def unreadable_files(self) -> list[str]:
        """The image files (relative to ``root``) that could not be read: those left out when
        the folder was scanned (:attr:`skipped_files`), then those that failed to decode
        since and were replaced by another image (in this process or a data-loader worker);
        empty for data held in memory.

        Example:
            >>> from fmicl_registry.data import digits
            >>> digits().unreadable_files()
            []
        """
        failed = getattr(self.images, "unreadable_files", None)
        later = failed() if callable(failed) else []
        return [*self.skipped_files, *(f for f in later if f not in self.skipped_files)]

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ImageDataset:
        """The items at ``indices``, as an :class:`ImageDataset` with the same attributes.

        Example:
            >>> from fmicl_registry.data import digits
            >>> small = digits(split="test").subset(range(10))
            >>> len(small), small.num_classes, small.name
            (10, 10, 'digits')
        """
        index = torch.as_tensor(list(indices), dtype=torch.int64)
        if isinstance(self.images, torch.Tensor):
            images: torch.Tensor | ImageSource = self.images[index]
        else:
            images = _IndexedSource(self.images, index.tolist())
        files = None if self.files is None else [self.files[i] for i in index.tolist()]
        return ImageDataset(
            self.name,
            images,
            self.labels[index],
            num_classes=self.num_classes,
            mean=self.mean,
            std=self.std,
            input_shape=self.input_shape,
            default_recipe=self.default_recipe,
            split=self.split,
            classes=self.classes,
            root=self.root,
            files=files,
            skipped_files=self.skipped_files,
        )

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, size={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


class _IndexedSource:
    """The images of ``source`` at ``indices`` (a lazy subset)."""

    def __init__(self, source: ImageSource, indices: list[int]) -> None:
        self.source = source
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.source[self.indices[index]]

    def unreadable_files(self) -> list[str]:
        """What the whole source failed to decode (see :meth:`ImageDataset.unreadable_files`)."""
        failed = getattr(self.source, "unreadable_files", None)
        return failed() if callable(failed) else []


def missing_message(name: str, folder: Path, missing: Sequence[str], how: str) -> str:
    """The text of a missing-data error: what, where, which files, and how to fix it."""
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    return (
        f"data set {name!r} not found: expected the folder {folder} with the files "
        f"{shown}, which are missing. To fix it, {how}"
    )
