"""An image run's evaluation: kNN and linear probes on frozen features, alignment and
uniformity of two augmented views of each test image, and the distance distributions, for
the trained encoder and two baselines (the raw inputs, and the encoder before training).

When the evaluation data set has no labels (``images``: your own folder), the probes are
skipped (:class:`LabelFreeEvaluation`): alignment, uniformity and the distance distributions
remain, the curve during training (``eval.every``) is the uniformity, and the report says why
the probes were skipped. Either way the report counts the image files that could not be read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..evaluation import (
    alignment,
    distance_distribution,
    extract_features,
    knn_accuracy,
    linear_probe,
    raw_features,
    uniformity,
)
from .evaluate import Evaluation, Scores
from .schema import EvalSection
from .views import SeededViews

#: Features and labels of a data set.
Features = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ImageEvaluation(Evaluation):
    """Scores on ``train_set`` and ``test_set`` (images with the evaluation transform) and on
    ``test_views`` (two augmented views of each test image), as ``settings`` says."""

    train_set: Any
    test_set: Any
    test_views: SeededViews
    settings: EvalSection
    seed: int
    untrained: Callable[[], nn.Module] | None = None
    #: The data sets read from files, whose unreadable files the report counts.
    sources: Sequence[Any] = field(default_factory=list)

    curve: ClassVar[str] = "knn_top1"

    def features(self, encoder: nn.Module, device: torch.device) -> tuple[Features, Features]:
        """``encoder``'s features of the train and the test set."""
        size = self.settings.batch_size
        train = extract_features(encoder, self.train_set, batch_size=size, device=device)
        test = extract_features(encoder, self.test_set, batch_size=size, device=device)
        return train, test

    def probe(self, train: Features, test: Features) -> dict[str, float]:
        """kNN and linear-probe accuracy of the test features, trained on the train ones."""
        cfg = self.settings
        knn = knn_accuracy(*train, *test, k=cfg.knn_k, temperature=cfg.knn_temperature)
        probe = linear_probe(*train, *test, epochs=cfg.linear_epochs, seed=self.seed)
        return {"knn_top1": knn, "linear_top1": probe.top1, "linear_train_top1": probe.train_top1}

    def curve_point(self, encoder: nn.Module, device: torch.device) -> float:
        train, test = self.features(encoder, device)
        cfg = self.settings
        return knn_accuracy(*train, *test, k=cfg.knn_k, temperature=cfg.knn_temperature)

    def describe(self, value: float) -> str:
        return f"kNN {100 * value:.2f}%"

    def measure(
        self, encoder: nn.Module, device: torch.device
    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """``encoder``'s probe accuracies, the alignment and uniformity of its features of the
        test views, and the distance distribution of those pairs."""
        metrics = self.probe(*self.features(encoder, device))
        z1, z2 = paired_features(encoder, self.test_views, device, self.settings.batch_size)
        metrics["alignment"] = alignment(z1, z2)
        metrics["uniformity"] = uniformity(torch.cat([z1, z2]))
        return metrics, distance_distribution(z1, z2)

    def score(self, encoder: nn.Module, device: torch.device) -> Scores:
        self.test_views.set_epoch(0)
        metrics, distances = self.measure(encoder, device)
        scores = Scores(metrics, distances={"pretrained": distances})
        if self.untrained is not None:
            raw = self.probe(raw_features(self.train_set), raw_features(self.test_set))
            scores.baselines["raw_input"] = raw
            random_encoder = self.untrained().to(device)
            random, distances = self.measure(random_encoder, device)
            scores.baselines["random_encoder"] = random
            scores.distances["random encoder"] = distances
        scores.notes.update(unreadable_note(self.sources))
        return scores

    def summary(self, scores: Scores) -> str:
        metrics, baselines = scores.metrics, scores.baselines
        raw = (
            f" (raw input: {100 * baselines['raw_input']['linear_top1']:.2f}% linear)"
            if baselines
            else ""
        )
        return (
            f"kNN top-1 {100 * metrics['knn_top1']:.2f}%, linear top-1 "
            f"{100 * metrics['linear_top1']:.2f}%" + raw
        )


@dataclass
class LabelFreeEvaluation(Evaluation):
    """Scores without labels: alignment and uniformity of the features of ``test_views`` (two
    augmented views of each evaluation image) and their distance distributions, for the
    trained encoder and the baselines (the raw pixels of the views, and the untrained
    encoder). ``reason`` says why the kNN and linear probes are skipped (the report shows it).
    """

    test_views: SeededViews
    settings: EvalSection
    reason: str
    untrained: Callable[[], nn.Module] | None = None
    #: The data sets read from files, whose unreadable files the report counts.
    sources: Sequence[Any] = field(default_factory=list)

    #: The label-free curve: uniformity falls as features spread, and rises to 0 on collapse.
    curve: ClassVar[str] = "uniformity"

    def measure(
        self, encoder: nn.Module, device: torch.device
    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Alignment and uniformity of ``encoder``'s features of the views, and their
        distance distribution."""
        self.test_views.set_epoch(0)  # the same views at every measurement
        z1, z2 = paired_features(encoder, self.test_views, device, self.settings.batch_size)
        metrics = {"alignment": alignment(z1, z2), "uniformity": uniformity(torch.cat([z1, z2]))}
        return metrics, distance_distribution(z1, z2)

    def curve_point(self, encoder: nn.Module, device: torch.device) -> float:
        return self.measure(encoder, device)[0]["uniformity"]

    def describe(self, value: float) -> str:
        return f"uniformity {value:.4f}"

    def score(self, encoder: nn.Module, device: torch.device) -> Scores:
        metrics, distances = self.measure(encoder, device)
        scores = Scores(metrics, distances={"pretrained": distances})
        if self.untrained is not None:
            raw, _ = self.measure(nn.Flatten(), torch.device("cpu"))
            scores.baselines["raw_input"] = raw
            random, distances = self.measure(self.untrained().to(device), device)
            scores.baselines["random_encoder"] = random
            scores.distances["random encoder"] = distances
        scores.notes["probes_skipped"] = self.reason
        scores.notes.update(unreadable_note(self.sources))
        return scores

    def summary(self, scores: Scores) -> str:
        metrics = scores.metrics
        return (
            f"alignment {metrics['alignment']:.4f}, uniformity {metrics['uniformity']:.4f} "
            f"(kNN and linear probes skipped: {self.reason})"
        )


#: How many unreadable files the report lists by name.
LISTED = 100


def unreadable_note(sources: Sequence[Any]) -> dict[str, Any]:
    """``{"unreadable_images": {"count", "files"}}``: the image files of ``sources`` (data sets
    read from files) that could not be read, left out or replaced (full paths, the first
    :data:`LISTED`); empty when no source reads files."""
    paths: list[str] = []
    folder_backed = False
    for source in sources:
        files = getattr(source, "unreadable_files", None)
        if getattr(source, "files", None) is None or not callable(files):
            continue
        folder_backed = True
        for name in files():
            path = str(source.root / name)
            if path not in paths:
                paths.append(path)
    if not folder_backed:
        return {}
    return {"unreadable_images": {"count": len(paths), "files": paths[:LISTED]}}


def paired_features(
    encoder: nn.Module, views: SeededViews, device: torch.device, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of two views of every test image (for alignment and the distance plots); each
    pair of views is drawn once and both go through the encoder in the same batch."""
    both, _ = extract_features(
        _EachView(encoder), _BothViews(views), batch_size=batch_size, device=device
    )
    z1, z2 = both.chunk(2, dim=1)
    return z1, z2


class _BothViews(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """The two views of :class:`SeededViews` stacked, ``(2, C, H, W)``, as an ``(input, label)``
    data set."""

    def __init__(self, views: SeededViews) -> None:
        self.views = views

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        first, second, label = self.views[index]
        return torch.stack([first, second]), label


class _EachView(nn.Module):
    """``encoder`` applied to each view of a ``(B, 2, ...)`` batch: ``(B, 2 * F)`` features,
    the first view's then the second's."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(0, 1)).reshape(len(x), -1)
