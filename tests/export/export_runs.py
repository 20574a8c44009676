"""Tiny trained runs for the export and embed tests, and the reference every test compares with:
the run's own encoder, rebuilt through ``training.build`` and its checkpoint (not through the
export code)."""

from __future__ import annotations

import atexit
import functools
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import fmicl_registry as fm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))  # the data writers
from data_formats import save_image, write_cifar10

#: The bundled CIFAR-10 ResNet-18 spec.
CIFAR_SPEC = (
    Path(__file__).resolve().parents[2] / "specs" / "experiments" / "cifar10_simclr_resnet18.toml"
)
#: A small_cnn run on the embedded digits: a few seconds.
DIGITS = [
    "train.epochs=1",
    "train.batch_size=128",
    "train.warmup_epochs=0.0",
    "train.progress=false",
    "backbone.width=8",
    "backbone.output_dim=16",
    "architecture.out_dim=16",
    "eval.linear_epochs=1",
    "eval.knn_k=5",
    "eval.baselines=false",
]


def quiet(message: str) -> None:
    """A log that drops the messages."""


def digits_run(out: Path) -> Path:
    """A trained small_cnn run folder on the digits."""
    return fm.train(fm.load_spec(None, DIGITS), out, log=quiet).run_dir


def cifar_run(out: Path) -> tuple[Path, Path, dict[str, object]]:
    """A resnet18 run (CIFAR stem) for 1 step on a tiny CIFAR-10 written in the real format;
    returns the run folder, the data root and what was written."""
    root = out / "data"
    written = write_cifar10(root, per_batch=2, n_test=4)
    overrides = [
        f"data.root={root}",
        "data.num_workers=0",
        "run.name=cifar",
        "train.epochs=1",
        "train.batch_size=2",
        "train.max_steps=1",
        "train.lr=0.001",  # one small step: the features stay of order 1
        "train.warmup_epochs=0.0",
        "train.progress=false",
        "architecture.out_dim=16",
        "eval.linear_epochs=1",
        "eval.knn_k=3",
        "eval.baselines=false",
        "eval.every=0",
        "eval.batch_size=16",
    ]
    spec = fm.load_spec(CIFAR_SPEC, overrides)
    run = fm.train(spec, out / "runs", log=quiet).run_dir
    return run, root, written


def _scratch() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fmicl-export-test-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.cache
def shared_digits_run() -> Path:
    """One digits run per test process (tests that change a run copy it first)."""
    return digits_run(_scratch())


@functools.cache
def shared_cifar_run() -> tuple[Path, Path, dict[str, object]]:
    """One CIFAR resnet18 run per test process, with its data root and written images."""
    return cifar_run(_scratch())


def reference_encoder(run: Path) -> nn.Module:
    """The run's encoder as training built it, with the checkpoint's weights (eval mode)."""
    from fmicl_registry.training.build import build
    from fmicl_registry.training.run_folder import open_run

    opened = open_run(run, [], quiet)
    parts = build(opened.spec)
    opened.load_weights(parts.model)
    return parts.encoder.eval()


def normalise(
    images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> float, ``(x / 255 - mean) / std``, written out by hand."""
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def features(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return encoder(x).float()


def write_folder(root: Path, images: np.ndarray, names: list[str]) -> None:
    """PNG files ``root/<name>`` of ``images`` ``(N, C, H, W)``."""
    for image, name in zip(images, names, strict=True):
        save_image(image, root / name)
