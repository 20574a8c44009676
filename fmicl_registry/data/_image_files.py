"""Image files on disk: finding them under a folder, checking them, and reading them lazily.

Shared by the folder-backed data sets (``images``, ``imagefolder``).

- :func:`find_images` lists the image files under a folder, recursively, in sorted order:
  hidden files and folders (names starting with ``.``) and files without an image extension
  (:data:`IMAGE_EXTENSIONS`, any case) are ignored. Links to files are read; links to folders
  are not followed (as :func:`os.walk` does by default: a link may lead outside the folder,
  to ``/etc`` or to the parent that holds the runs being written, or loop), and neither are
  fmicl run folders (:func:`is_run_folder`, so ``data.root=.`` does not train on the plots of
  earlier runs written under it); both are returned, for a warning naming them.
- :func:`check_image` is the cheap check made while scanning: PIL opens the file and reads
  its header only (no pixel decoding). Zero-byte files, random bytes with an image name,
  unsupported modes and decompression bombs (more than twice PIL's ``MAX_IMAGE_PIXELS``)
  fail it; a truncated file usually passes and fails only when decoded.
- :class:`FolderImages` reads one image per item and converts it with :func:`to_rgb`, then
  resizes and center-crops it. With ``replace_unreadable`` an image that fails to decode is
  replaced by the next readable one (deterministic) and recorded in a shared-memory flag per
  file, so failures in data-loader worker processes are seen by the main process.

Multi-frame files (animated GIF or WebP, multi-page TIFF) are read as their first frame.

Colour conversion (:func:`to_rgb`): orientation from the EXIF tag is applied; 8-bit modes
(grey ``L``, ``1``, palette ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``) are converted by
PIL; an alpha channel (``RGBA``, ``LA``, ``PA``, palette transparency) is composited over white,
as an image viewer shows it, rather than dropped (which would show the hidden colour of
transparent pixels, often black); 16-bit grey (``I;16*``, and ``I`` as PIL opens 16-bit PNGs)
is scaled to 8 bits by ``round(v / 257)`` and clipped to ``[0, 65535]`` first (PIL's own
conversion clips to 255, making most of such an image white); 32-bit float images (``F``)
have no natural range and are refused as unsupported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .base import DatasetError

#: The modes :func:`to_rgb` converts (what PIL may return for the files it reads).
SUPPORTED_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
    | {"I", "I;16", "I;16L", "I;16B", "I;16N"}
)
#: How many unreadable files a message names before it counts the rest.
SHOWN = 5


#: The file name endings read as images (compared in lower case): torchvision's
#: ``IMG_EXTENSIONS`` and ``.gif``, listed here so that they do not change with torchvision.
IMAGE_EXTENSIONS = (
    ".bmp",
    ".gif",
    ".jpeg",
    ".jpg",
    ".pgm",
    ".png",
    ".ppm",
    ".tif",
    ".tiff",
    ".webp",
)
#: The largest ``image_size``: a ``4096 x 4096`` image is 48 MiB as ``uint8`` and 192 MiB as
#: the ``float32`` a model reads, per image of a batch; larger sizes would run out of memory.
MAX_IMAGE_SIZE = 4096


def image_extensions() -> tuple[str, ...]:
    """The file name endings read as images (lower case): :data:`IMAGE_EXTENSIONS`."""
    return IMAGE_EXTENSIONS


def is_image_name(name: str) -> bool:
    """Whether ``name`` ends with an image extension (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def check_image_size(name: str, size: object) -> int:
    """``size`` if it is a valid ``image_size`` (an int from 1 to :data:`MAX_IMAGE_SIZE`), else
    a :class:`DatasetError` saying why, for the data set ``name``."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise DatasetError(f"data set {name!r}: image_size must be a positive int, got {size!r}")
    if size > MAX_IMAGE_SIZE:
        mib = 3 * size * size * 4 / 2**20
        raise DatasetError(
            f"data set {name!r}: image_size {size} is too large (at most {MAX_IMAGE_SIZE}): "
            f"every image would be resized to {size} x {size}, {mib:,.0f} MiB of float32 pixels "
            "each, more than a batch can hold in memory; use a size the model expects (32, 64, "
            "96, 224, ...), e.g. --set data.image_size=224"
        )
    return size


def is_run_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is a run folder that ``fmicl train`` wrote: it holds ``spec.toml`` and
    a ``checkpoints/`` folder or ``metrics.jsonl``."""
    path = Path(folder)
    try:
        return (path / "spec.toml").is_file() and (
            (path / "checkpoints").is_dir() or (path / "metrics.jsonl").is_file()
        )
    except OSError:
        return False


class FoundImages(NamedTuple):
    """What :func:`find_images` found under a folder: paths relative to it, ``/``-separated,
    sorted."""

    #: The image files (links to files included).
    files: list[str]
    #: Links to folders, not followed.
    linked_folders: list[str]
    #: fmicl run folders (:func:`is_run_folder`), not read.
    run_folders: list[str]


def find_images(root: Path) -> FoundImages:
    """The image files under ``root``, recursively, and what was passed over (see
    :class:`FoundImages`). Hidden names (``.*``) and non-image names are skipped; links to
    folders and run folders below ``root`` are not entered (``root`` itself is read even if
    it is a link or a run folder: it was named explicitly); each real folder is read once."""
    files: list[str] = []
    links: list[str] = []
    runs: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            info = folder.stat()
            key = (info.st_dev, info.st_ino)
            if key in seen:  # a bind mount of a folder above: read once
                continue
            seen.add(key)
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            relative = prefix + entry.name
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir()  # follows a link, to tell links to folders apart
            except OSError:
                is_link = is_dir = False
            if is_dir and is_link:
                links.append(relative)
            elif is_dir:
                if is_run_folder(entry.path):
                    runs.append(relative)
                else:
                    stack.append((Path(entry.path), relative + "/"))
            elif is_image_name(entry.name):
                files.append(relative)
    return FoundImages(sorted(files), sorted(links), sorted(runs))


def check_image(path: str | os.PathLike[str]) -> str | None:
    """Why the file at ``path`` cannot be read as an image, or None if its header is fine.

    Example:
        >>> import tempfile, pathlib
        >>> bad = pathlib.Path(tempfile.mkdtemp()) / "x.png"
        >>> _ = bad.write_bytes(b"")
        >>> check_image(bad)
        'empty file'
    """
    from PIL import Image

    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as image:
            mode, (width, height) = image.mode, image.size
    except Exception as err:  # PIL raises many types for a bad file; each is a reason
        return f"{type(err).__name__}: {err}"
    if mode not in SUPPORTED_MODES:
        return f"unsupported image mode {mode!r}"
    if width < 1 or height < 1:
        return f"empty image ({width}x{height})"
    return None


def to_rgb(image: Any) -> Any:
    """``image`` (a PIL image) as 8-bit RGB, converted as the module docstring says.

    Example:
        >>> from PIL import Image
        >>> to_rgb(Image.new("RGBA", (1, 1), (0, 0, 0, 0))).getpixel((0, 0))  # transparent
        (255, 255, 255)
        >>> to_rgb(Image.new("I;16", (1, 1), 65535)).getpixel((0, 0))
        (255, 255, 255)
    """
    import numpy as np
    from PIL import Image, ImageOps

    transposed = ImageOps.exif_transpose(image)
    if transposed is not None:
        image = transposed
    mode = image.mode
    if mode not in SUPPORTED_MODES:
        raise ValueError(f"unsupported image mode {mode!r}")
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        scaled = np.rint(np.clip(values, 0, 65535) / 257).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB") if mode != "RGB" else image


def load_rgb(path: str | os.PathLike[str], size: int) -> torch.Tensor:
    """The image file at ``path`` as a ``uint8`` tensor ``(3, size, size)``: :func:`to_rgb`,
    then its central square (the shorter side) resized to ``size x size`` (bilinear,
    antialiased); an image already ``size x size`` is unchanged. Cropping before resizing
    keeps an extreme shape (``10000 x 1``) cheap."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    with Image.open(path) as opened:
        image = to_rgb(opened)
        image.load()
    width, height = image.size
    if (width, height) != (size, size):
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        box = (left, top, left + side, top + side)
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
    return F.pil_to_tensor(image)


class FolderImages:
    """Image files under ``root`` read on demand as ``uint8`` tensors ``(3, size, size)``
    (an ``ImageSource``; :func:`load_rgb` reads each).

    ``files`` are paths relative to ``root``. An image that fails to decode raises a
    :class:`DatasetError` naming it, unless ``replace_unreadable``: then the next file (in
    order, wrapping around) that decodes is returned instead, and the failure is recorded in
    :attr:`unreadable`, a ``bool`` tensor in shared memory (one flag per file), so that a data
    loader's worker processes record into the same flags the main process reads.
    """

    def __init__(
        self,
        root: Path,
        files: Sequence[str],
        size: int,
        *,
        name: str,
        replace_unreadable: bool = False,
    ) -> None:
        self.root = root
        self.files = list(files)
        self.size = check_image_size(name, size)
        self.name = name
        self.replace_unreadable = replace_unreadable
        self.unreadable = torch.zeros(len(self.files), dtype=torch.bool)
        if replace_unreadable:
            self.unreadable.share_memory_()

    def __len__(self) -> int:
        return len(self.files)

    def path(self, index: int) -> Path:
        """The full path of image ``index``."""
        return self.root / self.files[index]

    def __getitem__(self, index: int) -> torch.Tensor:
        try:
            return load_rgb(self.path(index), self.size)
        except Exception as err:
            if not self.replace_unreadable:
                raise DatasetError(
                    f"data set {self.name!r}: cannot read the image {self.path(index)}: "
                    f"{type(err).__name__}: {err}"
                ) from err
        self.unreadable[index] = True
        count = len(self.files)
        for step in range(1, count):
            other = (index + step) % count
            if bool(self.unreadable[other]):
                continue
            try:
                return load_rgb(self.path(other), self.size)
            except Exception:
                self.unreadable[other] = True
        raise DatasetError(
            f"data set {self.name!r}: none of the {count} image files under {self.root} can "
            "be decoded; check that they are images (PNG, JPEG, ...)"
        )

    def unreadable_files(self) -> list[str]:
        """The files (relative to ``root``) that failed to decode so far, in this process or
        any worker process sharing :attr:`unreadable`."""
        return [self.files[i] for i in torch.nonzero(self.unreadable).flatten().tolist()]


def name_some(files: Sequence[str], shown: int = SHOWN) -> str:
    """``a.png, b.png and 3 more``: the first ``shown`` of ``files`` and how many others.

    Example:
        >>> name_some(["a.png", "b.png", "c.png"], shown=2)
        'a.png, b.png and 1 more'
    """
    head = ", ".join(files[:shown])
    return head + (f" and {len(files) - shown} more" if len(files) > shown else "")
