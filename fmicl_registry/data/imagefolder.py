"""``imagefolder``: a folder of image files per class (TinyImageNet, ImageNet, your own).

The layout, under ``root`` (default: ``default_root() / "tiny-imagenet-200"``)::

    root/train/<class>/**/*.png|jpg|JPEG|...    torchvision's ImageFolder
    root/val/<class>/**/*.JPEG                  class folders (ImageNet's val, usually)
    root/val/images/*.JPEG + root/val/val_annotations.txt    or TinyImageNet's val layout
    root/test/...                               optional, the same layouts as val

Classes are the sorted names of the folders of ``train`` (labels ``0 .. num_classes - 1``),
and val/test images get the label of their class there. ``split="test"`` reads ``test`` when
it is labelled (class folders, or an annotations file) and ``val`` otherwise (TinyImageNet's
``test`` has no labels). Images are read lazily, one per item, converted to RGB (as
:mod:`._image_files` says), their central square resized to ``image_size x image_size`` (64 by
default, TinyImageNet's size; pass 224 for ImageNet); an image that cannot be decoded is an
error naming it. ``dataset.files`` are the images' paths relative to ``root``
(``train/<class>/...``). Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._image_files import FolderImages, is_image_name
from .base import ROOT_HINT, SPLITS, DatasetError, ImageDataset, check_split, resolve_root

#: The splits of ``imagefolder``: the common ones and ``val`` (what ``test`` falls back to).
IMAGEFOLDER_SPLITS = (*SPLITS, "val")
#: ImageNet's per-channel statistics, used for every image folder.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
ANNOTATIONS = "val_annotations.txt"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
LAYOUT = (
    "<root>/train/<class>/<image files> and <root>/val/<class>/<image files> (or TinyImageNet's "
    f"<root>/val/images/*.JPEG with <root>/val/{ANNOTATIONS})"
)


def _subfolders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir())


def _labelled(folder: Path) -> bool:
    """Whether ``folder`` has labels: an annotations file or class folders (not just images/)."""
    if (folder / ANNOTATIONS).is_file():
        return True
    subs = _subfolders(folder)
    return bool(subs) and subs != ["images"]


def _annotated(folder: Path, class_to_idx: dict[str, int] | None) -> list[tuple[str, str]]:
    """``(path, class name)`` of TinyImageNet's ``val_annotations.txt`` layout."""
    pairs = []
    annotations = folder / ANNOTATIONS
    for number, line in enumerate(annotations.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("\t") if "\t" in line else line.split()
        if not fields or not line.strip():
            continue
        if len(fields) < 2:
            raise DatasetError(
                f"data set 'imagefolder': {annotations} line {number} must be "
                f"'<file>\\t<class>\\t...', got {line!r}"
            )
        name, label = fields[0], fields[1]
        path = folder / "images" / name
        if not path.is_file():
            path = folder / name
        if not path.is_file():
            raise DatasetError(
                f"data set 'imagefolder': {annotations} line {number} names {name}, which is "
                f"neither in {folder / 'images'} nor in {folder}"
            )
        pairs.append((str(path), label))
    if class_to_idx is not None:
        unknown = sorted({c for _, c in pairs} - set(class_to_idx))
        if unknown:
            raise DatasetError(
                f"data set 'imagefolder': {annotations} names classes that train lacks: "
                f"{', '.join(unknown[:5])}"
            )
    return pairs


def _class_folders(folder: Path, class_to_idx: dict[str, int] | None) -> list[tuple[str, str]]:
    """``(path, class name)`` of every image file under ``folder/<class>/`` (recursive)."""
    from torchvision.datasets.folder import make_dataset

    classes = _subfolders(folder)
    if class_to_idx is not None:
        unknown = [c for c in classes if c not in class_to_idx]
        if unknown:
            raise DatasetError(
                f"data set 'imagefolder': {folder} has class folders that "
                f"{folder.parent / 'train'} lacks: {', '.join(unknown[:5])}"
            )
    index = {c: i for i, c in enumerate(classes)}
    samples = make_dataset(str(folder), index, is_valid_file=is_image_name, allow_empty=True)
    return [(path, classes[i]) for path, i in samples]


def _missing(root: Path, what: str) -> DatasetError:
    return DatasetError(
        f"data set 'imagefolder' not found: {what}. It expects {LAYOUT}, with root = {root}. "
        "imagefolder does not download (download=True cannot help); to fix it, get TinyImageNet "
        f"from {TINY_IMAGENET_URL} and unzip it (root is then its tiny-imagenet-200 folder), or "
        "ImageNet from https://image-net.org (train/ and val/ with one folder per class), and "
        f"{ROOT_HINT} — for imagefolder, root is the folder that holds train/ and val/."
    )


def imagefolder(
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    download: bool = False,
    image_size: int = 64,
) -> ImageDataset:
    """Images in class folders (TinyImageNet, ImageNet), ``uint8`` ``(3, image_size, image_size)``.

    ``root`` is the folder holding ``train/`` and ``val/`` (default:
    ``default_root() / "tiny-imagenet-200"``); ``split`` is ``"train"``, ``"test"`` (``test/``
    if labelled, else ``val/``), ``"val"`` or ``"pretrain"`` (= ``"train"``); ``download`` is
    accepted but cannot fetch anything (the error says where to get the data).

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> from fmicl_registry.data import imagefolder
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for cls in ("cat", "dog"):
        ...     (root / "train" / cls).mkdir(parents=True)
        ...     Image.new("RGB", (40, 30), "red").save(root / "train" / cls / "a.png")
        >>> ds = imagefolder(root=root, image_size=16)
        >>> len(ds), ds.num_classes, ds.classes, ds[0][0].shape
        (2, 2, ['cat', 'dog'], torch.Size([3, 16, 16]))
    """
    split = check_split("imagefolder", split, IMAGEFOLDER_SPLITS)
    if not isinstance(image_size, int) or image_size < 1:
        raise DatasetError(
            f"data set 'imagefolder': image_size must be a positive int, got {image_size!r}"
        )
    root_path = resolve_root(root) if root is not None else resolve_root(None) / "tiny-imagenet-200"
    train_dir = root_path / "train"
    class_to_idx: dict[str, int] | None = None
    classes: list[str] | None = None
    if train_dir.is_dir():
        from torchvision.datasets.folder import find_classes

        try:
            classes, class_to_idx = find_classes(str(train_dir))
        except FileNotFoundError as err:
            raise _missing(root_path, f"{train_dir} has no class folders") from err
    if split in ("train", "pretrain"):
        if class_to_idx is None:
            raise _missing(root_path, f"the folder {train_dir} does not exist")
        from torchvision.datasets import ImageFolder

        try:
            found = ImageFolder(str(train_dir), is_valid_file=is_image_name, allow_empty=True)
        except FileNotFoundError as err:
            raise _missing(root_path, str(err)) from err
        pairs = [(path, found.classes[label]) for path, label in found.samples]
        folder = train_dir
    else:
        folder = root_path / "val"
        test_dir = root_path / "test"
        if split == "test" and test_dir.is_dir() and _labelled(test_dir):
            folder = test_dir
        if not folder.is_dir():
            if split == "test":
                what = f"neither {test_dir} (with labels) nor {folder} exists"
            else:
                what = f"the folder {folder} does not exist"
            raise _missing(root_path, what)
        if (folder / ANNOTATIONS).is_file():
            pairs = _annotated(folder, class_to_idx)
        else:
            pairs = _class_folders(folder, class_to_idx)
        if classes is None:  # no train folder: the classes of this folder
            classes = sorted({c for _, c in pairs})
            class_to_idx = {c: i for i, c in enumerate(classes)}
    if not pairs:
        raise _missing(root_path, f"{folder} holds no image files")
    assert class_to_idx is not None and classes is not None
    files = [Path(path).relative_to(root_path).as_posix() for path, _ in pairs]
    labels = [class_to_idx[c] for _, c in pairs]
    return ImageDataset(
        "imagefolder",
        FolderImages(root_path, files, image_size, name="imagefolder"),
        labels,
        num_classes=len(classes),
        mean=MEAN,
        std=STD,
        input_shape=(3, image_size, image_size),
        default_recipe="simclr",
        split=split,
        classes=classes,
        root=root_path,
        files=files,
    )
