"""A tiny tuning budget: digits runs of two epochs, a few seconds each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY = [
    "train.epochs=3",
    "train.batch_size=128",
    "train.warmup_epochs=0.0",
    "train.log_every=5",
    "backbone.width=4",
    "backbone.output_dim=16",
    "architecture.out_dim=16",
    "eval.linear_epochs=3",
    "eval.knn_k=20",
    "eval.every=1",
]


def quiet(message: str) -> None:
    """A ``log`` that drops the progress lines."""


def trials(storage: Any, name: str) -> list[Any]:
    """The study's trials as the storage holds them (read with Optuna itself)."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def sqlite(out: Path) -> str:
    return f"sqlite:///{(out / 'study.db').resolve()}"
