"""Shared helpers of the file-backed data sets: finding files, downloading, clear errors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .base import DOWNLOAD_HINT, ROOT_HINT, DatasetError, missing_message, resolve_root


def data_folder(root: str | os.PathLike[str] | None, base_folder: str) -> tuple[Path, Path]:
    """``(root, root / base_folder)``; a ``root`` that *is* the data set's folder also works.

    torchvision's ``root`` is the folder that holds ``base_folder`` (``cifar-10-batches-py``,
    ...); users often point at the inner folder instead, so that is accepted too.
    """
    path = resolve_root(root)
    if not (path / base_folder).exists() and path.name == base_folder:
        path = path.parent
    return path, path / base_folder


def missing_files(folder: Path, names: Sequence[str]) -> list[str]:
    """The names in ``names`` that are not files in ``folder``."""
    return [n for n in names if not (folder / n).is_file()]


def archive_hint(root: Path, url: str, size: str) -> str:
    """How to get a data set distributed as one archive (the fix part of a missing error)."""
    return (
        f"{DOWNLOAD_HINT} to download {url} ({size}) and extract it into {root}, or download "
        f"and extract that archive there yourself; if the data is elsewhere, {ROOT_HINT}."
    )


def ensure_present(
    name: str,
    root: Path,
    folder: Path,
    needed: Sequence[str],
    *,
    download: bool,
    url: str,
    filename: str,
    md5: str,
    size: str,
) -> None:
    """Raise a :class:`DatasetError` unless every file of ``needed`` is in ``folder``;
    with ``download``, first fetch and extract the official archive with torchvision."""
    missing = missing_files(folder, needed)
    if not missing:
        return
    if not download:
        raise DatasetError(missing_message(name, folder, missing, archive_hint(root, url, size)))
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        root.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(url, str(root), filename=filename, md5=md5)
    except Exception as err:
        raise DatasetError(
            f"data set {name!r}: could not download {url} into {root}: "
            f"{type(err).__name__}: {err}. Download and extract the archive by hand so that "
            f"{folder} holds {', '.join(needed)}, then run again without download."
        ) from err
    missing = missing_files(folder, needed)
    if missing:
        raise DatasetError(
            f"data set {name!r}: downloaded {url} into {root}, but {folder} still lacks "
            f"{', '.join(missing)}; delete {folder} and the archive and try again."
        )


def unreadable(name: str, path: Path, problem: str, folder: Path) -> DatasetError:
    """The error for a data file that is present but cannot be read."""
    return DatasetError(
        f"data set {name!r}: cannot read {path}: {problem}. The file is damaged or not from "
        f"the official archive; delete {folder} and {DOWNLOAD_HINT} to download it again."
    )
