"""Embed images with a trained encoder: one feature vector per image, with its file and label.

:func:`embed` takes a run folder or a safetensors export (:mod:`.encoder_export`) and a folder of
images (read by the registered data set ``images``, or any registered data set by name), or a
data set object; it resizes nothing itself: the data set reads images at the size the encoder
was trained on, and they are normalised with the encoder's own statistics (its training data's
mean and std). :meth:`Embeddings.save` writes them by suffix:

- ``.npy``: the features, ``float32 (N, D)``, and beside it ``<stem>.csv`` with
  ``index,file,label`` per row (the array stays a plain ``np.load``-able array);
- ``.npz``: ``features``, ``index``, ``labels`` and ``files`` in one file (``np.load`` with no
  pickle);
- ``.pt``: ``{"features": Tensor (N, D), "files": list[str] | None, "labels": Tensor (N,)}``
  (``torch.load`` reads it with ``weights_only=True``);
- ``.parquet``: columns ``index``, ``file``, ``label``, ``embedding`` (a fixed-size list of
  float32), with pyarrow: ``pip install 'fmicl-registry[parquet]'``.

``file`` is the image's path relative to the data set's root where the data set lists its
files (``dataset.files``), else empty and ``index`` identifies the image; ``label`` is ``-1``
for unlabelled images. An existing output is never replaced unless ``force``.
"""

from __future__ import annotations

import csv
import inspect
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .encoder_export import EncoderInfo, check_outputs, load_encoder, write_atomic
from .errors import DatasetError, FmiclError

#: The output suffixes :meth:`Embeddings.save` writes.
SUFFIXES = (".npy", ".npz", ".pt", ".parquet")
#: The data set a folder of images is read with by default.
DEFAULT_DATASET = "images"
PARQUET_EXTRA = "pip install 'fmicl-registry[parquet]'"


@dataclass
class Embeddings:
    """Features of a data set's items, in its order.

    Attributes:
        features: ``float32 (N, D)`` on the CPU.
        labels: ``int64 (N,)``; ``-1`` for unlabelled items.
        files: the items' paths relative to the data set's root, or None when it has none.
    """

    features: torch.Tensor
    labels: torch.Tensor
    files: list[str] | None

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
        """Write the embeddings in the format ``path``'s suffix names; return the files.

        Example:
            >>> import tempfile, torch, pathlib
            >>> e = Embeddings(torch.ones(2, 3), torch.tensor([0, -1]), ["a.png", "b.png"])
            >>> [p.name for p in e.save(pathlib.Path(tempfile.mkdtemp()) / "emb.npy")]
            ['emb.npy', 'emb.csv']
        """
        paths = output_paths(path)
        check_outputs(paths, force)  # every file, before any is written
        target = paths[0]
        features = self.features.detach().cpu().float()
        files = self.files if self.files is not None else [""] * len(self)
        labels = self.labels.tolist()
        if target.suffix == ".parquet":
            _write_parquet(target, features, files, labels, has_files=self.files is not None)
        elif target.suffix == ".pt":
            data = {"features": features, "files": self.files, "labels": self.labels.clone()}
            write_atomic(target, lambda tmp: torch.save(data, tmp))
        elif target.suffix == ".npz":
            arrays = {
                "features": features.numpy(),
                "index": np.arange(len(self), dtype=np.int64),
                "labels": np.asarray(labels, dtype=np.int64),
                "files": np.asarray(files, dtype=str),
            }
            write_atomic(target, lambda tmp: _savez(tmp, arrays))
        else:
            write_atomic(target, lambda tmp: _save_npy(tmp, features.numpy()))
            write_atomic(paths[1], lambda tmp: _write_csv(tmp, files, labels))
        return paths


def output_paths(path: str | os.PathLike[str]) -> list[Path]:
    """The files :meth:`Embeddings.save` writes for ``path`` (``.npy`` has a CSV beside it).

    Example:
        >>> [p.name for p in output_paths("out/emb.npy")]
        ['emb.npy', 'emb.csv']
    """
    target = Path(path)
    if target.suffix not in SUFFIXES:
        raise FmiclError(
            f"cannot tell the format of {target}: name it .npy (with a .csv of files and "
            "labels beside it), .npz, .pt or .parquet"
        )
    return [target, target.with_suffix(".csv")] if target.suffix == ".npy" else [target]


def _save_npy(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:  # a handle: np.save would append .npy to the name
        np.save(handle, array)


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with path.open("wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def _write_csv(path: Path, files: Sequence[str], labels: Sequence[int]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "file", "label"])
        writer.writerows((i, f, y) for i, (f, y) in enumerate(zip(files, labels, strict=True)))


def _write_parquet(
    path: Path, features: torch.Tensor, files: list[str], labels: list[int], *, has_files: bool
) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:
        raise FmiclError(
            f"writing {path.name} needs pyarrow, which is not installed ({err}); install the "
            f"parquet extra: {PARQUET_EXTRA}, or name the output .npy, .npz or .pt"
        ) from None
    n, dim = features.shape
    values = pa.array(features.numpy().reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "index": pa.array(np.arange(n, dtype=np.int64)),
            "file": pa.array(files if has_files else [None] * n, type=pa.string()),
            "label": pa.array(labels, type=pa.int64()),
            "embedding": pa.FixedSizeListArray.from_arrays(values, dim),
        }
    )
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))


# ------------------------------------------------------------------------------ embedding


def _accepts(kind: str, name: str, option: str) -> bool:
    """Whether the registered factory ``name`` of ``kind`` takes ``option``."""
    from .components import ComponentSpec, registry

    spec = registry().get(kind, name)
    if not isinstance(spec, ComponentSpec):
        return False
    try:
        parameters = inspect.signature(spec.factory).parameters
    except (TypeError, ValueError):
        return False
    return option in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def open_dataset(
    data: str | os.PathLike[str],
    info: EncoderInfo,
    *,
    dataset: str | None = None,
    split: str | None = None,
) -> Any:
    """The registered data set ``dataset`` (default ``images``) at ``data``, its images at the
    size the encoder was trained on when the data set takes ``image_size``."""
    from .components import build

    name = dataset or DEFAULT_DATASET
    folder = Path(data).expanduser()
    if not folder.exists():
        raise DatasetError(f"--data {folder} does not exist; give the folder of the images")
    options: dict[str, Any] = {"root": str(folder)}
    if split is not None or name == DEFAULT_DATASET:
        options["split"] = split or "pretrain"
    assert info.input_shape is not None
    _, height, width = info.input_shape
    if _accepts("datasets", name, "image_size") and height == width:
        options["image_size"] = height
    return build("datasets", name, **options)


def embed(
    source: str | os.PathLike[str] | nn.Module,
    data: str | os.PathLike[str] | Any,
    *,
    dataset: str | None = None,
    split: str | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> Embeddings:
    """Features of every image of ``data`` by the encoder of ``source``.

    Args:
        source: a run folder, a safetensors export (``fmicl export``), or an encoder that
            :func:`~fmicl_registry.load_encoder` returned.
        data: a folder of images (read by the registered data set ``dataset``, default
            ``images``: every image under it, at the encoder's image size), or a data set
            object of ``(uint8 image (C, H, W), label)`` items.
        dataset: a registered data set to read ``data`` with, e.g. ``"cifar10"``.
        split: its split (default: ``pretrain`` for ``images``, the data set's own default
            otherwise).
        batch_size, device, num_workers: how the images are batched, where the encoder runs,
            and the data loader's worker processes.
        overrides: for a run folder, where its training data is now (``["data.root=..."]``):
            the encoder's image shape and normalisation are read from it.
        log: where the messages go (``print`` to see the progress). By default (None) none
            is printed, and those that need attention (image files that could not be
            decoded, a checkpoint that fell back to ``previous.pt``) are Python warnings.

    Returns an :class:`Embeddings` (features, labels, files), in the data set's order. An
    image file that fails to decode (a truncated PNG) has no row: the data set reads the
    next image in its place, and those rows are dropped, with one message naming the files.

    Example (the encoder of a tiny digits run, on the digits test split):
        >>> import tempfile, fmicl_registry as fm
        >>> from fmicl_registry.data import digits
        >>> tiny = ["train.epochs=1", "train.warmup_epochs=0.0", "train.progress=false",
        ...         "backbone.width=8",
        ...         "eval.linear_epochs=1", "eval.baselines=false"]
        >>> run = fm.train(fm.load_spec(None, tiny), tempfile.mkdtemp(), log=lambda m: None)
        >>> result = fm.embed(run.run_dir, digits(split="test"))
        >>> result.features.shape, result.labels[:3].tolist(), result.files
        (torch.Size([360, 128]), [1, 4, 8], None)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise FmiclError(f"batch_size must be an int >= 1, got {batch_size!r}")
    notify = _warn if log is None else log  # what needs attention
    encoder = (
        source
        if isinstance(source, nn.Module)
        else load_encoder(source, overrides=overrides, log=notify)
    )
    info = getattr(encoder, "encoder_info", None)
    if not isinstance(info, EncoderInfo):
        raise FmiclError(
            "embed needs an encoder from fm.load_encoder (it carries the image shape and "
            "normalisation the encoder was trained with), a run folder or an export"
        )
    if info.input_shape is None:
        raise FmiclError(
            f"the encoder (backbone {info.backbone!r}) reads sentences; embed reads images. "
            "Call the encoder on a list of sentences: fm.load_encoder(path)(sentences)"
        )
    data_set: Any = (
        open_dataset(data, info, dataset=dataset, split=split)
        if isinstance(data, str | os.PathLike)
        else data
    )
    shape = getattr(data_set, "input_shape", None)
    if shape is not None and tuple(shape) != info.input_shape:
        raise DatasetError(
            f"the encoder was trained on images of shape {info.input_shape} (channels, height, "
            f"width), but the data set gives {tuple(shape)}; read the images at that size "
            "(data sets with an image_size option get it from the encoder)"
        )
    files = getattr(data_set, "files", None)
    if files is not None:
        files = [str(f) for f in files]
        if len(files) != len(data_set):
            raise DatasetError(f"the data set lists {len(files)} files for {len(data_set)} items")
    features, labels = _features(encoder, info, data_set, batch_size, device, num_workers)
    dropped = _undecodable(data_set, files)
    if dropped:
        keep = [i for i, f in enumerate(files or []) if f not in dropped]
        features, labels = features[keep], labels[keep]
        files = [files[i] for i in keep] if files is not None else None
        notify(_dropped_line(data_set, files, dropped))
    if log is not None:
        log(f"embedded {len(labels)} images: {info.output_dim} features each")
    return Embeddings(features, labels, files)


def _warn(message: str) -> None:
    warnings.warn(message.removeprefix("warning: "), UserWarning, stacklevel=3)


def _undecodable(data_set: Any, files: list[str] | None) -> set[str]:
    """The files of ``data_set``'s items that failed to decode while read (the data set
    returned another image in their place): ``data_set.unreadable_files()`` that are items."""
    failed = getattr(data_set, "unreadable_files", None)
    if files is None or not callable(failed):
        return set()
    return set(failed()) & set(files)


def _dropped_line(data_set: Any, kept: list[str] | None, dropped: set[str]) -> str:
    """The message naming the image files left out of the embeddings (first few + count)."""
    from .data._image_files import name_some

    names = sorted(dropped)
    root = getattr(data_set, "root", None)
    where = f" under {root}" if root is not None else ""
    if not kept:
        raise DatasetError(
            f"none of the image files{where} could be decoded ({name_some(names)}); check "
            "that they are images (PNG, JPEG, ...)"
        )
    return (
        f"warning: left out {len(names)} image file{'s' if len(names) != 1 else ''}{where} "
        f"that could not be decoded (truncated or corrupted), so the output has "
        f"{len(kept)} rows, one per readable image: {name_some(names)}"
    )


def _features(
    encoder: nn.Module,
    info: EncoderInfo,
    data_set: Any,
    batch_size: int,
    device: str | torch.device,
    num_workers: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    from torch.utils.data import DataLoader

    from .data import get_augmentation

    assert info.input_shape is not None and info.mean is not None and info.std is not None
    normalise = get_augmentation("none", info.input_shape, info.mean, info.std)  # eval's
    encoder = encoder.to(device).eval()
    loader = DataLoader(data_set, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    features, labels = [], []
    with torch.inference_mode():
        for batch in loader:
            images, label = batch[0], batch[1]
            if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8):
                raise DatasetError(
                    "the data set's items must be (uint8 image tensor (C, H, W), label), as "
                    f"every registered image data set gives; got {type(images).__name__}"
                )
            x = normalise(images.to(device))
            features.append(encoder(x).float().cpu())
            labels.append(torch.as_tensor(label, dtype=torch.int64).reshape(-1))
    if not features:
        raise DatasetError("the data set has no items to embed")
    return torch.cat(features), torch.cat(labels)
